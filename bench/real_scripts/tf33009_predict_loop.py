# Source: https://github.com/tensorflow/tensorflow/issues/33009 ("Memory leak") and
# https://github.com/keras-team/keras/issues/13118 ("Repeatedly calling model.predict(...)
# results in memory leak"): a trivially small model, then model.predict in a loop.
# Truth (TF 2.21 / Keras 3): measured by the runner (RSS at start and end, calls).
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow.keras import Input, Model
from tensorflow.keras.layers import Dense

inp = Input(shape=(10,))
out = Dense(2)(Dense(32)(inp))
model = Model(inp, out)
_hook.mark()
x = np.random.rand(1, 10).astype("float32")
for _i in range(250):
    model.predict(x, verbose=0)
