# ruff: noqa: B007  (a user's script, kept as written)
# Source: https://github.com/keras-team/keras-tuner/issues/338 ("CV and training times -
# exponential growth"): a tuning search per CV split, in a for loop over splits, then the
# best configuration retrained. Written by hand (random search over units/dropout/lr) with
# validation_data, as the tuner does per trial. Synthetic data.
import keras
import numpy as np

rng = np.random.default_rng(1)
x = rng.normal(size=(2400, 30)).astype("float32")
y = (x @ rng.normal(size=(30,)) > 0).astype("float32")
splits = np.array_split(rng.permutation(len(x)), 4)


def build(hp):
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(hp["units"], activation="relu"),
            keras.layers.Dropout(hp["dropout"]),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(hp["lr"]), "binary_crossentropy", metrics=["accuracy"])
    return model


for split_index, val_idx in enumerate(splits):
    train_idx = np.setdiff1d(np.arange(len(x)), val_idx)
    best = None
    for trial in range(3):
        hp = {
            "units": int(rng.choice([32, 64, 128])),
            "dropout": float(rng.choice([0.0, 0.2])),
            "lr": float(rng.choice([1e-3, 3e-3])),
        }
        model = build(hp)
        hist = model.fit(
            x[train_idx],
            y[train_idx],
            validation_data=(x[val_idx], y[val_idx]),
            epochs=4,
            batch_size=64,
            verbose=0,
        )
        score = max(hist.history["val_accuracy"])
        if best is None or score > best[0]:
            best = (score, hp)
    final = build(best[1])
    final.fit(x[train_idx], y[train_idx], epochs=6, batch_size=64, verbose=0)
    print("split", split_index, "best", best)
