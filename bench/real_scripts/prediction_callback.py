# Source: https://github.com/tensorflow/tensorflow/issues/59218 ("How to design tf.keras
# callback to save model predictions for each batch and each epoch"): a callback that predicts
# the whole training set at every epoch's end and keeps each epoch's predictions (to a numpy
# array, as the issue asks), rebuilding the stacked array every epoch. One fit, 30 epochs.
import keras
import numpy as np

rng = np.random.default_rng(8)
X_train = rng.normal(size=(8000, 32)).astype("float32")
y_train = keras.utils.to_categorical(rng.integers(0, 10, size=8000), 10)


class PredictionCallback(keras.callbacks.Callback):
    def __init__(self, x):
        super().__init__()
        self.x, self.preds = x, []

    def on_epoch_end(self, epoch, logs=None):
        self.preds.append(self.model.predict(self.x, batch_size=1024, verbose=0))
        self.all = np.stack(self.preds)  # epochs x samples x classes, rebuilt each epoch


model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile("adam", "categorical_crossentropy")
cb = PredictionCallback(X_train)
model.fit(X_train, y_train, epochs=30, batch_size=128, verbose=0, callbacks=[cb])
print(cb.all.shape)
