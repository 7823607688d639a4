# Source: https://github.com/keras-team/keras/issues/13195 ("Memory leak during keras training"):
# the Keras 2 example mnist_siamese.py (a shared base network of three Dense(128) layers, a Lambda
# euclidean distance, contrastive loss, RMSprop) with a `MemoryCallback` printing
# `resource.getrusage(...).ru_maxrss` at each `on_epoch_end`; the user saw it rise every epoch. Here
# the same script on legacy Keras 2 (`import tf_keras as keras`, tf_keras 2.21), MNIST-shaped
# synthetic pairs (12,000 pairs of 784 floats), 20 epochs. Default: healthy (RSS flat after warm-up;
# ru_maxrss printed as in the issue). `RS_LEAK=1`: the callback also keeps the base network's
# embedding of the 6,000 validation images each epoch (`base.predict(xv)`, 3 MB) "to plot how the
# embedding moves" -- a real growth. Truth: RSS (statm) after epochs 1, 5 and 20.
import os
import resource

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tf_keras as keras
from tf_keras import backend as K

LEAK = os.environ.get("RS_LEAK") == "1"
rng = np.random.default_rng(13195)
pairs_a = rng.random((12000, 784), dtype=np.float32)
pairs_b = rng.random((12000, 784), dtype=np.float32)
labels = rng.integers(0, 2, 12000).astype(np.float32)
xv = rng.random((6000, 784), dtype=np.float32)
rss = []


def euclidean_distance(vects):
    a, b = vects
    return K.sqrt(K.maximum(K.sum(K.square(a - b), axis=1, keepdims=True), K.epsilon()))


def contrastive_loss(y_true, y_pred):
    margin = 1.0
    return K.mean(y_true * K.square(y_pred) + (1 - y_true) * K.square(K.maximum(margin - y_pred, 0)))


def create_base_network(input_shape):
    inp = keras.layers.Input(shape=input_shape)
    h = keras.layers.Dense(128, activation="relu")(inp)
    h = keras.layers.Dropout(0.1)(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    h = keras.layers.Dropout(0.1)(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    return keras.models.Model(inp, h)


class MemoryCallback(keras.callbacks.Callback):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.embeddings = []

    def on_epoch_end(self, epoch, log=None):
        if LEAK:
            self.embeddings.append(self.base.predict(xv, batch_size=512, verbose=0))
        if os.environ.get("PLAIN") == "1":
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * resource.getpagesize() / 2**20)


base = create_base_network((784,))
input_a = keras.layers.Input(shape=(784,))
input_b = keras.layers.Input(shape=(784,))
distance = keras.layers.Lambda(euclidean_distance)([base(input_a), base(input_b)])
model = keras.models.Model([input_a, input_b], distance)
model.compile(loss=contrastive_loss, optimizer=keras.optimizers.RMSprop())
_hook.mark()
model.fit(
    [pairs_a, pairs_b],
    labels,
    batch_size=128,
    epochs=20,
    validation_split=0.1,
    callbacks=[MemoryCallback(base)],
    verbose=0,
)
if os.environ.get("PLAIN") == "1":
    per = (rss[-1] - rss[4]) / (len(rss) - 5)
    print(
        f"TRUTH tf_keras {'embeddings kept' if LEAK else 'healthy'}: RSS after epoch 1 {rss[0]:.0f},"
        f" 5 {rss[4]:.0f}, 20 {rss[-1]:.0f} MiB ({per:.2f} MiB/epoch from epoch 5)"
    )
