# Source: https://github.com/tensorflow/tensorflow/issues/43219 ("LR Custom Scheduler not working
# TF 2.3": a `LearningRateSchedule` subclass (Transformer warm-up) passed to the optimizer, which
# "decays the lr during training"), and the two callbacks users reach for instead:
# `LearningRateScheduler` (step decay: halve every 5 epochs) and `ReduceLROnPlateau` (factor 0.5,
# patience 2). An MLP regression on 4,096 rows whose loss plateaus, 20 epochs. Healthy in every
# variant; the point is what the trace records as the learning rate, epoch by epoch.
# Default: `LearningRateScheduler`. RS_LR=plateau: `ReduceLROnPlateau(monitor="loss")`.
# RS_LR=schedule: the issue's `CustomSchedule(d_model=64, warmup_steps=200)` object as the
# optimizer's learning_rate (a per-step rate: 128 steps an epoch).
# Truth: the learning rate in effect at each epoch's end (printed by the plain run).
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

MODE = os.environ.get("RS_LR", "scheduler")
rng = np.random.default_rng(43219)
x = rng.random((4096, 16), dtype=np.float32)
y = (x @ rng.random(16, dtype=np.float32) + 0.3 * rng.standard_normal(4096)).astype(np.float32)


class CustomSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, d_model=64, warmup_steps=200):
        super().__init__()
        self.d_model, self.warmup_steps = float(d_model), float(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        arg1 = keras.ops.rsqrt(step)
        arg2 = step * (self.warmup_steps**-1.5)
        return keras.ops.rsqrt(self.d_model) * keras.ops.minimum(arg1, arg2)


lr = CustomSchedule() if MODE == "schedule" else 0.01
model = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
model.compile(keras.optimizers.Adam(lr), "mse")
seen = []


class Record(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        seen.append(float(np.asarray(opt.learning_rate)))


cbs = [Record()]
if MODE == "scheduler":
    cbs.insert(
        0,
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch and epoch % 5 == 0 else lr),
    )
elif MODE == "plateau":
    cbs.insert(0, keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=1e-3))
_hook.mark()
model.fit(x, y, batch_size=32, epochs=20, verbose=0, callbacks=cbs)
print(f"TRUTH mode={MODE}; lr at each epoch's end {[float(f'{v:.3g}') for v in seen]}")
