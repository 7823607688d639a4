# Source: keras.io example "Character-level text generation with LSTM"
# (examples/generative/lstm_character_level_text_generation.py, keras-team/keras-io; its
# generation loop is the subject of keras-team/keras#16292 / tensorflow#33009-style "predict is
# slow in a loop" reports): `for epoch in range(epochs): model.fit(x, y, batch_size=128,
# epochs=1)`, then for each diversity in [0.2, 0.5, 1.0, 1.2] 400 characters, each by
# `preds = model.predict(x_pred, verbose=0)[0]` on ONE sequence. Keras' FAQ: predict() is for
# batches; for a single small input `model(x, training=False)` is much faster. Synthetic text of
# the same alphabet size; 3 rounds, 25 characters per diversity (300 predict calls).
# RS_CALL=1: `model(x_pred, training=False)` (the FAQ's answer).
# Truth: the share of the run spent generating, seconds per generated character, and the same
# measured for the other call on 50 characters.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
from keras import layers

CALL = os.environ.get("RS_CALL") == "1"
rng = np.random.default_rng(1000)
chars = [chr(c) for c in range(32, 32 + 57)]
text = "".join(
    rng.choice(chars, 60000, p=np.linspace(2, 1, len(chars)) / np.linspace(2, 1, len(chars)).sum())
)
char_indices = {c: i for i, c in enumerate(chars)}
maxlen, step = 40, 3
sentences = [text[i : i + maxlen] for i in range(0, len(text) - maxlen, step)]
next_chars = [text[i + maxlen] for i in range(0, len(text) - maxlen, step)]
x = np.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
y = np.zeros((len(sentences), len(chars)), dtype="bool")
for i, sentence in enumerate(sentences):
    for t, char in enumerate(sentence):
        x[i, t, char_indices[char]] = 1
    y[i, char_indices[next_chars[i]]] = 1

model = keras.Sequential(
    [
        keras.Input(shape=(maxlen, len(chars))),
        layers.LSTM(128),
        layers.Dense(len(chars), activation="softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=0.01))
_hook.mark()


def sample(preds, temperature=1.0):
    preds = np.log(np.asarray(preds).astype("float64") + 1e-9) / temperature
    exp_preds = np.exp(preds)
    return np.argmax(rng.multinomial(1, exp_preds / np.sum(exp_preds), 1))


def next_probs(x_pred, call):
    return model(x_pred, training=False)[0].numpy() if call else model.predict(x_pred, verbose=0)[0]


gen_s, fit_s, n_gen = 0.0, 0.0, 0
for _epoch in range(3):
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    fit_s += time.perf_counter() - t0
    start_index = int(rng.integers(0, len(text) - maxlen - 1))
    t0 = time.perf_counter()
    for diversity in [0.2, 0.5, 1.0, 1.2]:
        generated = ""
        sentence = text[start_index : start_index + maxlen]
        for _i in range(25):
            x_pred = np.zeros((1, maxlen, len(chars)))
            for t, char in enumerate(sentence):
                x_pred[0, t, char_indices[char]] = 1.0
            next_char = chars[sample(next_probs(x_pred, CALL), diversity)]
            sentence = sentence[1:] + next_char
            generated += next_char
            n_gen += 1
    gen_s += time.perf_counter() - t0
t0 = time.perf_counter()
for _ in range(50):
    next_probs(x_pred, not CALL)
other = (time.perf_counter() - t0) / 50
print(
    f"TRUTH call={CALL}: generating took {100 * gen_s / (gen_s + fit_s):.0f}% of fit+generate "
    f"({gen_s:.1f} s for {n_gen} characters, {1e3 * gen_s / n_gen:.2f} ms each; fits {fit_s:.1f} s); "
    f"the other call ({'predict' if CALL else 'model(x)'}) {1e3 * other:.2f} ms each",
    file=sys.stderr,
)
