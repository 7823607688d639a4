# Source: machinelearningmastery.com "How to Update LSTM Networks During Training for Time Series
# Forecasting" (J. Brownlee, 2017; its `update_model` is asked about in many Stack Overflow
# threads on walk-forward validation with Keras) and "How To Backtest Machine Learning Models
# for Time Series Forecasting": a walk-forward test, one model, and at each test step the
# observation just seen is added to the training history and the model is updated with
# `model.fit(train, epochs=update_epochs, batch_size=1)` on ALL the history so far (an expanding
# window), then `model.predict` forecasts the next step. Each update fits a growing data set,
# so each update takes longer, by design: the time per sample is flat. Healthy.
# (Here batch 8 instead of 1, 2 update epochs, 24 test steps, to stay near a minute.)
# Truth: the seconds of the first and the last updates and their sizes (time per sample).
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from keras.layers import LSTM, Dense, Input
from keras.models import Sequential

rng = np.random.default_rng(2017)
series = np.cumsum(rng.standard_normal(1300)).astype("float32")
diff = np.diff(series)
scaled = (diff - diff.mean()) / diff.std()
X_all, y_all = scaled[:-1].reshape(-1, 1, 1), scaled[1:]
n_train, n_test = 600, 24
model = Sequential([Input((1, 1)), LSTM(4), Dense(1)])
model.compile(loss="mean_squared_error", optimizer="adam")
_hook.mark()
model.fit(X_all[:n_train], y_all[:n_train], epochs=3, batch_size=8, verbose=0, shuffle=False)
per_sample, sizes, preds = [], [], []
for i in range(n_test):
    X_test = X_all[n_train + i : n_train + i + 1]
    preds.append(float(model.predict(X_test, batch_size=1, verbose=0)[0, 0]))
    end = n_train + (i + 1) * 25  # the history grows: 25 new observations per test step here
    t0 = time.perf_counter()
    model.fit(X_all[:end], y_all[:end], epochs=2, batch_size=8, verbose=0, shuffle=False)
    per_sample.append((time.perf_counter() - t0) / end)
    sizes.append(end)
rmse = float(np.sqrt(np.mean((np.array(preds) - y_all[n_train : n_train + n_test]) ** 2)))
print(
    f"TRUTH {n_test} updates on {sizes[0]} -> {sizes[-1]} samples; update seconds "
    f"{per_sample[0] * sizes[0]:.2f} -> {per_sample[-1] * sizes[-1]:.2f}; us per sample "
    f"{1e6 * np.median(per_sample[:6]):.0f} (first 6) -> {1e6 * np.median(per_sample[-6:]):.0f} (last 6); rmse {rmse:.3f}",
    file=sys.stderr,
)
