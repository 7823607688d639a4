# Source: https://github.com/keras-team/keras/issues/11478 ("Running a Keras model in gridsearchCV
# leads to increasingly longer run times"). A hand-written grid search: a new model per
# configuration, fit, evaluate; no clear_session. Synthetic data of a small tabular shape.
import itertools

import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.random((3000, 20), dtype=np.float32)
y = (x[:, :5].sum(axis=1) > 2.5).astype("float32")
x_val, y_val = x[:600], y[:600]


def create_model(units, lr):
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"])
    return model


results = []
for units, lr, batch in itertools.product([16, 64], [1e-3, 1e-2], [32, 128, 256]):
    model = create_model(units, lr)
    model.fit(x[600:], y[600:], epochs=6, batch_size=batch, verbose=0)
    loss, acc = model.evaluate(x_val, y_val, verbose=0)
    results.append(((units, lr, batch), acc))
print("best", max(results, key=lambda r: r[1]))
