# Source: https://github.com/keras-team/keras/issues/4168 ("Get current epoch predictions from
# inside callback (on_epoch_end)") and the answer it links: keep the model's predictions on the
# training set of every epoch, to study how they evolve. Here 100 classes on 12,000 samples
# (4.6 MiB an epoch), stacked into one array every epoch: memory and the callback's own time
# grow each epoch (a real, if modest, leak). One fit, 40 epochs. Synthetic data.
import keras
import numpy as np

rng = np.random.default_rng(10)
x = rng.normal(size=(12000, 32)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 100, size=12000), 100)


class PredictionHistory(keras.callbacks.Callback):
    def __init__(self, data):
        super().__init__()
        self.data, self.history = data, []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append(self.model.predict(self.data, batch_size=2048, verbose=0))
        self.stacked = np.stack(self.history)  # epochs x samples x classes


model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(100, activation="softmax"),
    ]
)
model.compile("adam", "categorical_crossentropy")
cb = PredictionHistory(x)
model.fit(x, y, epochs=40, batch_size=256, verbose=0, callbacks=[cb])
print(cb.stacked.shape)
