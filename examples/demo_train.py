"""A small Keras training traced by epochwatch, with two problems planted for the report to find.

- a callback keeps a copy of a batch of activations every epoch (host memory grows);
- ModelCheckpoint writes a new file every epoch into a watched directory (disk grows).

Run it with `make demo`, which then prints `epochwatch report` for the trace.
"""

from __future__ import annotations

import argparse
import os

import epochwatch.hook  # noqa: F401  (attaches to every Keras fit in this process)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np


class KeepsActivations(keras.callbacks.Callback):
    """The planted leak: a list that only grows (a classic 'debug history' bug)."""

    def __init__(self, megabytes_per_epoch: float) -> None:
        super().__init__()
        self.kept: list[np.ndarray] = []
        self.n = int(megabytes_per_epoch * 1024 * 1024 / 8)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.kept.append(np.random.rand(self.n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-run")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--leak-mb", type=float, default=8.0, help="MB kept per epoch (0: healthy)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 20)).astype("float32")
    y = (x[:, :5].sum(axis=1) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    checkpoints = os.path.join(args.workdir, "checkpoints")
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch-{epoch:03d}.weights.h5"), save_weights_only=True
        )
    ]
    if args.leak_mb > 0:
        callbacks.append(KeepsActivations(args.leak_mb))
    model.fit(x, y, batch_size=64, epochs=args.epochs, validation_split=0.2, callbacks=callbacks, verbose=0)
    # Where the trace is (embedded, or the daemon's) is said by epochwatch's closing line on stderr.
    print(f"trained {args.epochs} epochs")


if __name__ == "__main__":
    main()
