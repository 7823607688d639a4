# Source: https://github.com/keras-team/keras/issues/13710 ("Incremental training gets slower
# after each fit call of keras model"): an autoencoder fitted once per arriving sample,
# model.fit(sample, sample) in a loop, one model kept. Healthy here; on a loaded machine its
# fits slow down with the host (issue 23's open case: that is no warning). Synthetic samples.
import keras
import numpy as np

rng = np.random.default_rng(9)
model = keras.Sequential(
    [keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(64)]
)
model.compile("adam", "mse")
for _ in range(150):
    sample = rng.random((1, 64), dtype=np.float32)
    model.fit(sample, sample, epochs=1, verbose=0)
print("done")
