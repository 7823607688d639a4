# Source shapes: keras-team/keras#19179's docs example (`InterruptingCallback` raising
# RuntimeError at epoch 4), keras#12237 / StackOverflow "stop training with sys.exit() in a
# callback" (users stop a fit from a callback with `sys.exit(3)` when the loss is NaN or a time
# budget is spent, their job scheduler reading the exit code), and `os._exit(4)` (a watchdog that
# kills the process hard, no atexit). A 64-256-256-1 MLP, 4,096 rows, 12 epochs planned; the
# callback acts at the end of epoch 6.
# RS_MODE=raise (default): RuntimeError from on_epoch_end -> traceback, exit 1.
# RS_MODE=exit: sys.exit(3) from on_epoch_end -> exit 3.
# RS_MODE=osexit: os._exit(4) from on_epoch_end -> exit 4, no atexit handlers run.
# RS_MODE=kbd: KeyboardInterrupt (Ctrl-C) from on_train_batch_end in epoch 7 -> exit 1 (130 by
# a real SIGINT).
# Truth: the exit code (the runner prints it), epochs completed (6), the TRUTH line printed at the
# callback, before the process dies.
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

MODE = os.environ.get("RS_MODE", "raise")
rng = np.random.default_rng(0)
x = rng.random((4096, 64), dtype=np.float32)
y = (x.sum(axis=1) > 32).astype("float32")
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
_hook.mark()


class Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 5 and MODE != "kbd":
            print(f"TRUTH mode={MODE}: dying after epoch {epoch + 1} of 12", file=sys.stderr, flush=True)
            if MODE == "raise":
                raise RuntimeError("Interrupting!")
            if MODE == "exit":
                sys.exit(3)
            if MODE == "osexit":
                sys.stderr.flush()
                os._exit(4)

    def on_train_batch_end(self, batch, logs=None):
        if MODE == "kbd" and self.model.optimizer.iterations.numpy() == 6 * 64 + 10:
            print("TRUTH mode=kbd: Ctrl-C in epoch 7 of 12", file=sys.stderr, flush=True)
            raise KeyboardInterrupt


model.fit(x, y, batch_size=64, epochs=12, verbose=0, callbacks=[Stop()])
print("TRUTH not reached", file=sys.stderr)
