# Source: https://github.com/tensorflow/tensorflow/issues/44520 ("tf.lite.Interpreter ... the
# second [input] would be converted to audio full of noise. Only when I reload the interpreter,
# the model can be used for the next input"): a TFLite serving loop over inputs of varying
# length: `resize_tensor_input` + `allocate_tensors` + `invoke` per request on one interpreter;
# the workaround posted there builds a new `tf.lite.Interpreter(model_path=...)` per request.
# A small Conv1D model over (length, 32) frames, converted once to a .tflite file; 1,500
# requests of 20-200 frames, outputs kept as float means.
# RS_NEW=1: a new Interpreter (model file read again) per request, the "correct" form.
# RS_FIXED=1: inputs padded to 200 frames, one interpreter allocated once (the healthy form).
# Truth: ms per request in the first and last 300, RSS every 300 requests.
import os
import sys
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

NEW = os.environ.get("RS_NEW") == "1"
FIXED = os.environ.get("RS_FIXED") == "1"
REQUESTS = int(os.environ.get("RS_N", "1500"))
rng = np.random.default_rng(44520)
model = tf.keras.Sequential(
    [
        tf.keras.Input((None, 32)),
        tf.keras.layers.Conv1D(64, 5, padding="same", activation="relu"),
        tf.keras.layers.Conv1D(64, 5, padding="same", activation="relu"),
        tf.keras.layers.Dense(80),
    ]
)


@tf.function(input_signature=[tf.TensorSpec([1, None, 32], tf.float32)])
def serve(x):
    return model(x)


converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
path = os.path.join(tempfile.mkdtemp(prefix="tf44520_"), "model.tflite")
with open(path, "wb") as f:
    f.write(converter.convert())
_hook.mark()
interp = tf.lite.Interpreter(model_path=path)
inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
if FIXED:
    interp.resize_tensor_input(inp, [1, 200, 32])
    interp.allocate_tensors()
means, ms, rss = [], [], []
for i in range(REQUESTS):
    n = int(rng.integers(20, 201))
    x = rng.standard_normal((1, n, 32)).astype(np.float32)
    t0 = time.perf_counter()
    if FIXED:
        x = np.pad(x, ((0, 0), (0, 200 - n), (0, 0)))
    else:
        if NEW:
            interp = tf.lite.Interpreter(model_path=path)
        interp.resize_tensor_input(inp, x.shape)
        interp.allocate_tensors()
    interp.set_tensor(inp, x)
    interp.invoke()
    means.append(float(interp.get_tensor(out)[0, :n].mean()))
    ms.append(1000 * (time.perf_counter() - t0))
    if i % 300 == 299:
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH new={NEW} fixed={FIXED}: {REQUESTS} requests; ms/request first 300 {np.mean(ms[:300]):.2f}, "
    f"last 300 {np.mean(ms[-300:]):.2f}; RSS every 300 {rss} MiB",
    file=sys.stderr,
)
