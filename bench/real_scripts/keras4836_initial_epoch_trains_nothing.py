# Source: https://github.com/keras-team/keras/issues/4836 ("initial_epoch argument to fit() does
# not work"): the user trained keras' imdb_cnn_lstm example, `model.save('test_resume.h5')`, and
# in a new script `load_model(...)` then `fit(..., nb_epoch=3, initial_epoch=3)` to train "3
# more". With Keras 2+ `epochs` is the index to stop at, not a count (keras#1872, PR #4429), so
# that fit trains NOTHING: it returns at once with an empty history, and the "resumed" model is
# the saved one. A first process (started by this script, hooked when this one is) trains 3
# epochs and saves; this process loads and calls fit(epochs=3, initial_epoch=3).
# RS_FIXED=1: `epochs=initial_epoch + 3` (the resume the user meant: 3 epochs trained).
# Truth: the epochs the resumed fit ran and the optimizer's step before and after it.
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from keras.layers import LSTM, Conv1D, Dense, Dropout, Embedding, Input, MaxPooling1D
from keras.models import Sequential, load_model

max_features, maxlen = 5000, 100
rng = np.random.default_rng(4836)
X_train = rng.integers(1, max_features, (4000, maxlen))
y_train = (X_train[:, :10].mean(axis=1) > max_features / 2).astype("float32")
X_test, y_test = X_train[:500], y_train[:500]
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_4836_")
path = os.path.join(os.environ["RS_DIR"], "test_resume.keras")

if sys.argv[1:] == ["train"]:
    model = Sequential(
        [
            Input((maxlen,)),
            Embedding(max_features, 64),
            Dropout(0.25),
            Conv1D(32, 5, activation="relu"),
            MaxPooling1D(4),
            LSTM(35),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=30, epochs=3, validation_data=(X_test, y_test), verbose=0)
    model.save(path)
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))

batch_size, nb_epoch = 30, 3
model = load_model(path)
_hook.mark()
step0 = int(model.optimizer.iterations.numpy())
FIXED = os.environ.get("RS_FIXED") == "1"
h = model.fit(
    X_train,
    y_train,
    batch_size=batch_size,
    epochs=3 + nb_epoch if FIXED else nb_epoch,
    validation_data=(X_test, y_test),
    initial_epoch=3,
    verbose=0,
)
score, acc = model.evaluate(X_test, y_test, batch_size=batch_size, verbose=0)
print(
    f"TRUTH fixed={FIXED}: the resumed fit ran {len(h.history.get('loss', []))} epochs "
    f"(optimizer step {step0} -> {int(model.optimizer.iterations.numpy())}); test loss {score:.4f}",
    file=sys.stderr,
)
