# Source: https://github.com/alessiosavi/PyRecognizer/issues/10 ("Define a strategy in order to
# clean upload folder": "In order to avoid high disk usage ... This folder contains: Photos upload
# by the user for prediction; Photos that contains the photos uploaded from the user with a box
# where the face is located"), churchlab/millstone#700 ("Files uploaded through browser remain in
# /tmp after completion ... potentially runs to running out of disk space") and
# shankarj67/Water-classifier-fastai#3 ("Remove uploaded image once prediction done"). A Flask-
# style serving loop without Flask: each request's image (a 320x240 JPEG, ~60 KB) is saved to
# `uploads/<uuid>.jpg` as `request.files["file"].save(path)` does, read back, resized to 96x96
# and classified with `model(x, training=False)`; the annotated copy (the box drawn) is saved
# to `uploads/<uuid>_box.jpg` for the response page. 800 requests, nothing ever deleted.
# RS_FIXED=1: both files removed once the response is built.
# Truth: files and MiB in uploads/ every 200 requests, ms per request (printed plain).
import os
import sys
import tempfile
import time
import uuid

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
uploads = os.path.join(tempfile.mkdtemp(prefix="rs_pyrec10_"), "uploads")
os.makedirs(uploads)
rng = np.random.default_rng(10)
requests = [
    tf.io.encode_jpeg(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), quality=90).numpy()
    for _ in range(40)
]
model = keras.Sequential(
    [
        keras.Input((96, 96, 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ]
)
_hook.mark()


def du():
    files = os.listdir(uploads)
    return len(files), round(sum(os.path.getsize(os.path.join(uploads, f)) for f in files) / 2**20, 1)


def handle(data):
    name = uuid.uuid4().hex
    path = os.path.join(uploads, f"{name}.jpg")
    with open(path, "wb") as f:  # request.files["file"].save(path)
        f.write(data)
    img = tf.image.decode_jpeg(tf.io.read_file(path))
    x = tf.image.resize(tf.cast(img, tf.float32) / 255.0, (96, 96))[None]
    label = int(np.argmax(model(x, training=False)[0]))
    boxed = tf.image.draw_bounding_boxes(
        tf.cast(img, tf.float32)[None] / 255.0, [[[0.2, 0.2, 0.8, 0.8]]], [[1.0, 0.0, 0.0, 1.0]]
    )
    box_path = os.path.join(uploads, f"{name}_box.jpg")
    tf.io.write_file(box_path, tf.io.encode_jpeg(tf.cast(boxed[0] * 255, tf.uint8)))
    if FIXED:
        os.remove(path)
        os.remove(box_path)
    return label


t0, sizes = time.perf_counter(), []
for i in range(800):
    handle(requests[i % len(requests)])
    if i % 200 == 199:
        sizes.append(du())
dt = time.perf_counter() - t0
print(
    f"TRUTH fixed={FIXED}: 800 requests, {1000 * dt / 800:.1f} ms each; uploads/ (files, MiB) {sizes}",
    file=sys.stderr,
)
