# Source: https://github.com/tensorflow/tensorflow/issues/33995 ("ResourceExhausted while doing
# K-fold cross-validation regardless of the chosen K"): a new model per fold, augmented image
# batches from a generator (ImageDataGenerator there; a keras.utils.PyDataset with flips here),
# validation per fold, no clear_session. Small synthetic images.
import keras
import numpy as np

rng = np.random.default_rng(2)
images = rng.random((640, 32, 32, 3), dtype=np.float32)
labels = rng.integers(0, 4, size=640)


class Augmented(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=32, **kw):
        super().__init__(**kw)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        xb = self.x[i * self.batch_size : (i + 1) * self.batch_size]
        flip = np.random.rand(len(xb)) < 0.5
        xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
        return xb, keras.utils.to_categorical(self.y[i * self.batch_size : (i + 1) * self.batch_size], 4)


def build_model():
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


folds = np.array_split(np.arange(640), 5)
for j, val_idx in enumerate(folds):
    train_idx = np.setdiff1d(np.arange(640), val_idx)
    model = build_model()
    model.fit(
        Augmented(images[train_idx], labels[train_idx]),
        validation_data=Augmented(images[val_idx], labels[val_idx]),
        epochs=4,
        verbose=0,
    )
    print("fold", j, model.evaluate(Augmented(images[val_idx], labels[val_idx]), verbose=0))
