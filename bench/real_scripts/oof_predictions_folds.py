# Source: https://github.com/neptune-ai/open-solution-salt-identification/issues/82 ("Memory
# Allocation of Solution 4"): a cross-validation loop that appends each fold's out-of-fold
# predictions on the train set and its predictions on the test set to lists, to average at
# the end: the process keeps a test-set prediction per fold (here 12 MB each). New model per
# fold, no clear_session. Synthetic data.
import keras
import numpy as np

rng = np.random.default_rng(7)
x = rng.random((3000, 64), dtype=np.float32)
y = (x[:, 0] > 0.5).astype("float32")
x_test = rng.random((100_000, 64), dtype=np.float32)

oof, test_preds = [], []
folds = np.array_split(rng.permutation(len(x)), 8)
for k, val_idx in enumerate(folds):
    train_idx = np.setdiff1d(np.arange(len(x)), val_idx)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(30, activation="sigmoid"),
        ]
    )
    model.compile("adam", "binary_crossentropy")
    model.fit(x[train_idx], np.repeat(y[train_idx, None], 30, axis=1), epochs=3, batch_size=64, verbose=0)
    oof.append(model.predict(x[val_idx], verbose=0))
    test_preds.append(model.predict(x_test, batch_size=4096, verbose=0))  # 100k x 30 float32
    print("fold", k, len(test_preds))
print(np.mean(test_preds, axis=0).shape)
