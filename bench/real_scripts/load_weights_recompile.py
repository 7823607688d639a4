# ruff: noqa: SIM115  (a user's script, kept as written)
# Source: https://github.com/keras-team/keras/issues/2378 ("Not able to resume training after
# loading model + weights"), the second variant there: save the architecture as JSON and the
# weights, then in the next "session" model_from_json + load_weights + compile (a new
# optimizer, another learning rate and batch size) and fit again. Synthetic data.
import keras
import numpy as np

rng = np.random.default_rng(4)
x = rng.normal(size=(4000, 24)).astype("float32")
y = keras.utils.to_categorical((x[:, :3].sum(axis=1) > 0).astype(int) + (x[:, 3] > 1).astype(int), 3)


def save_model(model):
    open("trainingmodel.json", "w").write(model.to_json())
    model.save_weights("weights.weights.h5", overwrite=True)


def load_model():
    model = keras.models.model_from_json(open("trainingmodel.json").read())
    model.load_weights("weights.weights.h5")
    model.compile(
        optimizer=keras.optimizers.RMSprop(5e-4), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return model


model = keras.Sequential(
    [
        keras.Input((24,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ]
)
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=8, batch_size=32, verbose=0)
save_model(model)
del model

model = load_model()
hist = model.fit(x, y, epochs=8, batch_size=64, verbose=0)
print("resumed loss", hist.history["loss"][0], "->", hist.history["loss"][-1])
