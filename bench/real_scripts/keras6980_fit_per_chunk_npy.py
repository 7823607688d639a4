# Source: https://github.com/keras-team/keras/issues/6980 ("Use large dataset": "I had a problem
# with using a large dataset ... Is it possible to use this approach?": `for e in range(10):`
# load `imgs_train{part}.npy` / `mask_train{part}.npy` with `np.load`, `model.fit(x_train,
# y_train, batch_size=32, nb_epoch=1)` on each chunk, the last chunk's fit with
# `validation_data=(x_test, y_test)`), keras#11353 ("I have training data chunked into 5 parts
# ... load and unload every chunk") and keras#107 (fchollet: "for e in range(nb_epoch): for
# X_train, Y_train in BatchGenerator(): model.fit(X_batch, Y_batch, batch_size=32, nb_epoch=1)").
# Here 4 chunks of 3,000 x 32 x 32 x 1 float32 images (12 MiB each, written to .npy files first),
# a small conv net, an outer loop of 6 "epochs" over the chunks: 24 fits of one compiled model,
# each chunk loaded anew (the previous one dropped). A healthy loop of fits: the model, its
# optimizer and its compiled functions are reused; memory holds one chunk at a time.
# RS_MMAP=1: `np.load(..., mmap_mode="r")` (the pages stay in the page cache, not the heap).
# Truth: RSS after each outer epoch, validation loss after each outer epoch (printed plain).
import os
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

MMAP = os.environ.get("RS_MMAP") == "1"
d = tempfile.mkdtemp(prefix="rs_6980_")
rng = np.random.default_rng(6980)
for part in range(4):
    x = rng.random((3000, 32, 32, 1), dtype=np.float32)
    y = (x[:, 8:24, 8:24, 0].mean(axis=(1, 2)) > 0.5).astype("float32")[:, None]
    np.save(os.path.join(d, f"imgs_train{part}.npy"), x)
    np.save(os.path.join(d, f"mask_train{part}.npy"), y)
x_test = rng.random((600, 32, 32, 1), dtype=np.float32)
y_test = (x_test[:, 8:24, 8:24, 0].mean(axis=(1, 2)) > 0.5).astype("float32")[:, None]
del x, y

model = keras.Sequential(
    [
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy")
_hook.mark()


def get_image(count):
    kw = {"mmap_mode": "r"} if MMAP else {}
    return np.load(os.path.join(d, f"imgs_train{count}.npy"), **kw), np.load(
        os.path.join(d, f"mask_train{count}.npy"), **kw
    )


rss, val = [], []
for _ in range(6):
    for part in range(4):
        x_train, y_train = get_image(part)  # these are chunks of ~3k pictures
        kw = {"validation_data": (x_test, y_test)} if part == 3 else {}
        h = model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0, **kw)
    val.append(round(h.history["val_loss"][0], 4))
    rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH mmap={MMAP}: 24 fits of one model; val_loss per outer epoch {val}; RSS {rss} MiB", file=sys.stderr
)
