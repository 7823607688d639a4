# Source: https://github.com/keras-team/keras/issues/13118 ("Repeatedly calling
# model.predict(...) results in memory leak"), in the retraining shape its reporters describe:
# one model kept, retrained each round on new data, with many small model.predict calls on
# fresh inputs between the fits (online serving + periodic retraining). Synthetic data.
import keras
import numpy as np

rng = np.random.default_rng(6)
model = keras.Sequential(
    [keras.Input((12,)), keras.layers.Dense(48, activation="relu"), keras.layers.Dense(1)]
)
model.compile("adam", "mse")
w = rng.normal(size=(12, 1)).astype("float32")

for round_ in range(20):
    x_new = rng.normal(size=(800, 12)).astype("float32")
    model.fit(x_new, x_new @ w, epochs=3, batch_size=32, verbose=0)
    served = [model.predict(rng.normal(size=(4, 12)).astype("float32"), verbose=0) for _ in range(15)]
    print(round_, float(np.mean(served)))
