# Source: https://github.com/keras-team/keras/issues/9350 ("LSTM is responding slow"): the Kaggle
# sentiment notebook's model, `Embedding(max_features=2000, 128)` -> `LSTM(196, dropout)` ->
# `Dense(2, softmax)`, categorical_crossentropy, adam, batch 32, on tweets tokenized and padded
# to 28 tokens. Synthetic token ids (words of two vocab halves lean positive/negative) instead
# of Sentiment.csv; 4,000 tweets instead of ~10,000. Truth: an ordinary healthy fit.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

MAX_FEATURES, MAXLEN, N = 2000, 28, 4000
rng = np.random.default_rng(0)
y_int = rng.integers(0, 2, N)
lengths = rng.integers(5, MAXLEN + 1, N)
X = np.zeros((N, MAXLEN), dtype="int32")
for i in range(N):
    lean = rng.random(lengths[i]) < 0.6
    words = np.where(
        lean, rng.integers(1, 1000, lengths[i]) + 1000 * y_int[i], rng.integers(1, MAX_FEATURES, lengths[i])
    )
    X[i, MAXLEN - lengths[i] :] = words  # pad_sequences pads at the front
Y = keras.utils.to_categorical(y_int, 2)

model = keras.Sequential(
    [
        keras.Input((MAXLEN,)),
        layers.Embedding(MAX_FEATURES, 128),
        layers.SpatialDropout1D(0.4),
        layers.LSTM(196, dropout=0.2, recurrent_dropout=0.2),
        layers.Dense(2, activation="softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
_hook.mark()
t = time.perf_counter()
h = model.fit(X[:3200], Y[:3200], epochs=7, batch_size=32, validation_data=(X[3200:], Y[3200:]), verbose=2)
score, acc = model.evaluate(X[3200:], Y[3200:], verbose=0, batch_size=32)
print(
    "TRUTH 7 epochs {:.1f}s; val_acc {:.3f} -> {:.3f}; test acc {:.3f}".format(
        time.perf_counter() - t, h.history["val_accuracy"][0], h.history["val_accuracy"][-1], acc
    )
)
