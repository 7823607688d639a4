# Source: https://github.com/ludwig-ai/ludwig/issues/3733 ("Option to unfreeze encoder layers"),
# which asks for the TensorFlow transfer-learning tutorial's two rounds
# (https://www.tensorflow.org/tutorials/images/transfer_learning#fine_tuning): a classification
# head on a frozen base, `fit(epochs=5)`; then `base_model.trainable = True` (its first layers
# kept frozen), `compile` again with a 10x lower learning rate, and
# `fit(epochs=10, initial_epoch=history.epoch[-1])`. Here the "pretrained" base is a small CNN
# built in the script (no download), 96x96 images, synthetic two-class data. Truth: one model,
# two fits, healthy (no restore, no loop of models): the hook must stay quiet.
# `RS_RELOAD_BEST=1`: the Keras guide's variant: stage 1 keeps its best epoch with
# `ModelCheckpoint(save_best_only=True)`, and stage 2 starts from `keras.models.load_model` of
# that file, then unfreezes, compiles a new RMSprop at lr/10 and fits: a deliberate fresh
# optimizer and new hyperparameters after a restore (at most one info, no warning).
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

rng = np.random.default_rng(3)
x = rng.random((1280, 96, 96, 3), dtype=np.float32)
y = (x[:, :48, :48, 0].mean(axis=(1, 2)) > 0.5).astype("float32")
train = tf.data.Dataset.from_tensor_slices((x[:1024], y[:1024])).shuffle(1024).batch(32).prefetch(2)
val = tf.data.Dataset.from_tensor_slices((x[1024:], y[1024:])).batch(32)

base_model = keras.Sequential(
    [
        keras.Input((96, 96, 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(64, 3, activation="relu"),
    ],
    name="base",
)
base_model.trainable = False
inputs = keras.Input((96, 96, 3))
h = keras.layers.RandomFlip("horizontal")(inputs)
h = base_model(h, training=False)
h = keras.layers.GlobalAveragePooling2D()(h)
h = keras.layers.Dropout(0.2)(h)
outputs = keras.layers.Dense(1)(h)
model = keras.Model(inputs, outputs)
base_learning_rate = 1e-4
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=base_learning_rate),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
)
_hook.mark()
initial_epochs = 5
RELOAD = os.environ.get("RS_RELOAD_BEST") == "1"
best = os.path.join(tempfile.mkdtemp(prefix="rs_3733_"), "best.keras")
cbs = [keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True)] if RELOAD else []
history = model.fit(train, epochs=initial_epochs, validation_data=val, callbacks=cbs, verbose=0)
if RELOAD:
    model = keras.models.load_model(best)
    base_model = model.get_layer("base")

base_model.trainable = True
fine_tune_at = 2
for i, layer in enumerate(base_model.layers):  # each layer: a loaded model's base.trainable
    layer.trainable = i >= fine_tune_at  # does not reach its layers (Keras 3.15)
model.compile(
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    optimizer=keras.optimizers.RMSprop(learning_rate=base_learning_rate / 10),
    metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
)
fine_tune_epochs = 10
n_trainable = [65, sum(int(np.prod(v.shape)) for v in model.trainable_weights)]
history_fine = model.fit(
    train,
    epochs=initial_epochs + fine_tune_epochs,
    initial_epoch=history.epoch[-1],
    validation_data=val,
    verbose=0,
)
if os.environ.get("PLAIN") == "1":
    loss = history.history["loss"] + history_fine.history["loss"]
    print(
        f"TRUTH healthy two fits of one model; trainable {n_trainable}; losses {[round(v, 4) for v in loss]}"
    )
