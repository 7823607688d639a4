# Source: TensorFlow's TensorBoard tutorial "Hyperparameter Tuning with the HParams Dashboard"
# (tensorflow/tensorboard docs/hyperparameter_tuning_with_hparams.ipynb, asked about in
# tensorflow/tensorboard#3688 and many Stack Overflow threads): a grid over num_units x dropout
# x optimizer; for each session `run(run_dir, hparams)`: `with tf.summary.create_file_writer(
# run_dir).as_default(): hp.hparams(hparams); accuracy = train_test_model(hparams);
# tf.summary.scalar(METRIC_ACCURACY, accuracy, step=1)`, where train_test_model builds a NEW
# Sequential, compiles it with the session's optimizer, `fit(epochs=1)` and `evaluate`. No
# clear_session between sessions (the tutorial has none). A healthy sweep: small models, one
# tiny log directory per session. Fashion-MNIST replaced by random 28x28 images (12,000), 2
# epochs per session, 8 sessions.
# Truth: RSS after each session, the logs' size, each session's accuracy.
import os
import shutil
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

rng = np.random.default_rng(3688)
x_train = rng.random((12000, 28, 28), dtype=np.float32)
y_train = (x_train[:, :14].mean(axis=(1, 2)) * 20).astype("int64") % 10
x_test, y_test = x_train[:2000], y_train[:2000]
logdir = tempfile.mkdtemp(prefix="rs_hparams_")

HP_NUM_UNITS = hp.HParam("num_units", hp.Discrete([16, 32]))
HP_DROPOUT = hp.HParam("dropout", hp.RealInterval(0.1, 0.2))
HP_OPTIMIZER = hp.HParam("optimizer", hp.Discrete(["adam", "sgd"]))
METRIC_ACCURACY = "accuracy"
with tf.summary.create_file_writer(os.path.join(logdir, "hparam_tuning")).as_default():
    hp.hparams_config(
        hparams=[HP_NUM_UNITS, HP_DROPOUT, HP_OPTIMIZER],
        metrics=[hp.Metric(METRIC_ACCURACY, display_name="Accuracy")],
    )


def train_test_model(hparams):
    model = tf.keras.models.Sequential(
        [
            tf.keras.Input((28, 28)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(hparams[HP_NUM_UNITS], activation=tf.nn.relu),
            tf.keras.layers.Dropout(hparams[HP_DROPOUT]),
            tf.keras.layers.Dense(10, activation=tf.nn.softmax),
        ]
    )
    model.compile(
        optimizer=hparams[HP_OPTIMIZER], loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x_train, y_train, epochs=2, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return accuracy


def run(run_dir, hparams):
    with tf.summary.create_file_writer(run_dir).as_default():
        hp.hparams(hparams)  # record the values used in this trial
        accuracy = train_test_model(hparams)
        tf.summary.scalar(METRIC_ACCURACY, accuracy, step=1)
    return accuracy


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


_hook.mark()
rss, accs, session_num = [], [], 0
for num_units in HP_NUM_UNITS.domain.values:
    for dropout_rate in (HP_DROPOUT.domain.min_value, HP_DROPOUT.domain.max_value):
        for optimizer in HP_OPTIMIZER.domain.values:
            hparams = {HP_NUM_UNITS: num_units, HP_DROPOUT: dropout_rate, HP_OPTIMIZER: optimizer}
            run_name = f"run-{session_num}"
            print(f"--- Starting trial: {run_name}")
            accs.append(round(run(os.path.join(logdir, "hparam_tuning", run_name), hparams), 3))
            session_num += 1
            with open("/proc/self/statm") as f:
                rss.append(int(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))
print(
    f"TRUTH {session_num} sessions; RSS after each {rss} MiB; logs {du(logdir) / 1024:.0f} KiB; accuracies {accs}",
    file=sys.stderr,
)
shutil.rmtree(logdir)
