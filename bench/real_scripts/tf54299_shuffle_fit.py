# Source: https://github.com/tensorflow/tensorflow/issues/54299 ("tf.data shuffle uses 2.5x more
# memory than necessary during model.fit"): a Keras fit on from_tensor_slices(...).shuffle(half
# the examples) without a cache; the shuffle buffer refills every epoch. Healthy: RSS rises in
# the first epoch as the buffer fills, then stays.
import keras
import numpy as np
import tensorflow as tf

N = 40_000
x = np.random.rand(N, 256).astype("float32")
y = np.random.randint(0, 10, N)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N // 2).batch(256).prefetch(tf.data.AUTOTUNE)
model = keras.Sequential(
    [keras.Input((256,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(ds, epochs=15, verbose=2)
