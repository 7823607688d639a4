"""The input fingerprint never changes what a fit trains on (tensorflow#29123's shape).

`from_generator(lambda: gen)` over one Python generator: every iterator of the dataset pulls
from that generator, so a read-ahead for the fingerprint took the first batches from
training (it trained 98 of 100 batches with the hook, and warned that its input ran out).
A fresh interpreter with `import epochwatch.hook`, a few seconds of training.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import of_type, read_single_trace, run_python

SHARED_GENERATOR = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras

def batches():
    rng = np.random.default_rng(0)
    for _ in range(100):
        yield rng.random((8, 4), dtype=np.float32), rng.random((8, 1), dtype=np.float32)

gen = batches()  # one generator: each iterator of the dataset pulls from it
spec = (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None, 1), tf.float32))
ds = tf.data.Dataset.from_generator(lambda: gen, output_signature=spec)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
steps = []
count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))
model.fit(ds, epochs=1, verbose=0, callbacks=[count])
print("STEPS", len(steps))
"""


def test_a_dataset_over_one_generator_is_not_read_ahead(tmp_path: Path) -> None:
    proc = run_python(SHARED_GENERATOR, tmp_path)
    assert "STEPS 100" in proc.stdout, proc.stdout[-500:] + proc.stderr[-2000:]
    (fit,) = of_type(read_single_trace(tmp_path), "fit_start")
    skipped = fit["input_stats"]["skipped"]
    assert skipped.startswith("not read ahead") and "FlatMapDataset" in skipped, skipped
    assert fit["from_generator_datasets"] == 1  # counted for models_in_loop: one made each fold?
