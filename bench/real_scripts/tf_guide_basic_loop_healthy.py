# Source: https://www.tensorflow.org/guide/basic_training_loops ("Define a training loop"):
# a GradientTape loop with no optimizer, the variables updated by assign_sub, as in the guide
# and in tensorflow/tensorflow#45016 (variables stored in a list, updated by hand). Here the
# loop keeps only the loss as a float. Healthy: flat RSS, flat epochs.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import tensorflow as tf


class MyModel(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.random.normal([512, 256]))
        self.b = tf.Variable(tf.zeros([256]))

    def __call__(self, x):
        return tf.matmul(x, self.w) + self.b


model = MyModel()
_hook.mark()
x = tf.random.normal([6400, 512])
y = tf.random.normal([6400, 256])
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(128)
kept = []


def train(model, x, y, learning_rate):
    with tf.GradientTape() as t:
        current_loss = tf.reduce_mean(tf.square(y - model(x)))
    dw, db = t.gradient(current_loss, [model.w, model.b])
    model.w.assign_sub(learning_rate * dw)
    model.b.assign_sub(learning_rate * db)
    kept.append(float(current_loss))  # a float, not a tensor
    return current_loss


for epoch in range(12):
    for xb, yb in ds:
        loss = train(model, xb, yb, learning_rate=0.01)
    print(f"Epoch {epoch:2d}: loss={float(loss):.5f}")
