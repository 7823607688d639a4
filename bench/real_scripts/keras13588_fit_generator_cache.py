# Source: https://github.com/keras-team/keras/issues/13588 ("Keras fit_generator accumulates too
# much memory when used with Sequence Generator": `__getitem__` keeps a cache of decoded windows,
# "check if the cache holds enough values to feed the model", filled each batch and never
# trimmed) and https://github.com/keras-team/keras/issues/8393 ("generator seems to be memory
# leak": RSS up ~15 MB per batch with a custom generator). Here a plain Python generator passed
# to `fit` (Keras 3 still takes one, with `steps_per_epoch`), which decodes each batch of
# windows from a long series and appends them to a module-level cache "for reuse" that is never
# read back or trimmed: ~3 MiB kept per batch. `RS_BOUNDED=1`: the cache is a deque(maxlen=8).
# Truth (printed): cache entries and MiB at the end; RSS (the _hook line).
import collections
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

BOUNDED = os.environ.get("RS_BOUNDED") == "1"
rng = np.random.default_rng(0)
series = rng.standard_normal(200_000).astype("float32")
WIN, BATCH = 96, 64
cache = collections.deque(maxlen=8) if BOUNDED else []


def windows(start):
    idx = start + np.arange(BATCH)[:, None] * 7 + np.arange(WIN)[None, :]
    x = series[idx % len(series)]
    x = np.repeat(x[:, :, None], 8, axis=2) * np.linspace(0.5, 1.5, 8, dtype="float32")  # 8 "channels"
    return x, x[:, -1, :1].copy()


def gen():
    i = 0
    while True:
        x, y = windows(i * BATCH * 7)
        cache.append((x.copy(), np.fft.rfft(x, axis=1)))  # "keep decoded windows for reuse"
        i += 1
        yield x[:, :-1], y


model = keras.Sequential(
    [
        keras.Input((WIN - 1, 8)),
        keras.layers.Conv1D(32, 5, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1),
    ]
)
model.compile("adam", "mse")
_hook.mark()
model.fit(gen(), steps_per_epoch=25, epochs=14, verbose=0)
mib = sum(a.nbytes + b.nbytes for a, b in cache) / 2**20
print(
    f"TRUTH cache {'bounded' if BOUNDED else 'unbounded'}: {len(cache)} entries, {mib:.0f} MiB kept at the end"
)
