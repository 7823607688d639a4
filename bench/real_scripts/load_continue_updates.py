# ruff: noqa: B007  (a user's script, kept as written)
# Source: https://github.com/keras-team/keras/issues/9851 ("Continue in training after
# model.load()"): a time-series LSTM is saved, loaded back with load_model, evaluated, then
# updated in a loop of one-epoch fits with batch_size=1 (and reset_states), evaluated again.
# Restore-then-continue: the loaded model's optimizer state comes back with it. Synthetic series.
import keras
import numpy as np

rng = np.random.default_rng(3)
n_lag, n_features, n_seq = 4, 1, 2
series = np.sin(np.arange(400) / 8.0) + 0.1 * rng.normal(size=400)
rows = np.stack([series[i : i + n_lag + n_seq] for i in range(300)]).astype("float32")
X, y = rows[:, :n_lag].reshape(-1, n_lag, n_features), rows[:, n_lag:]

model = keras.Sequential([keras.Input((n_lag, n_features)), keras.layers.LSTM(16), keras.layers.Dense(n_seq)])
model.compile("adam", "mse")
model.fit(X, y, epochs=3, batch_size=16, verbose=0)
model.save("model_original.keras")
del model

model = keras.models.load_model("model_original.keras")
print("score original", model.evaluate(X, y, batch_size=1, verbose=0))
for i in range(8):
    model.fit(X[:120], y[:120], epochs=1, batch_size=1, verbose=0, shuffle=False)
    for layer in model.layers:
        if hasattr(layer, "reset_states"):
            layer.reset_states()
print("score updated", model.evaluate(X, y, batch_size=1, verbose=0))
