"""Custom training loops: `hook.epoch`, `hook.log`, `hook.watch`, and retraces with their causes."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import with_fake_nvml
from tests.support import child_env, of_type, read_single_trace, run_python

LOOP = """
import os
import time
from epochwatch import hook
import tensorflow as tf

w = tf.Variable(tf.ones([4, 1]))
opt = tf.keras.optimizers.SGD(0.01)

@tf.function
def train_step(x, y, lr):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
    grads = tape.gradient(loss, [w])
    w.assign_sub(lr * grads[0])
    return loss

x = tf.random.normal([32, 4]); y = tf.random.normal([32, 1])
out = os.path.join(os.getcwd(), "outputs")
os.makedirs(out)
hook.watch(out)
# What tf.data writes is watched from where the pipeline is built (never iterated here).
tf.data.Dataset.from_tensor_slices(x).snapshot(os.path.join(os.getcwd(), "snap"))
os.makedirs("cached")
tf.data.Dataset.from_tensor_slices(x).cache(os.path.join("cached", "c")).cache()
lr = 0.1
for n in range(6):
    with hook.epoch(n):
        for step in range(5):
            loss = train_step(x, y, lr)
            hook.log(loss=loss, step_loss_python=float(step))
        with open(os.path.join(out, f"dump-{n}.bin"), "wb") as f:
            f.write(b"x" * 100_000)
        time.sleep(0.2)  # an epoch's own length after its dump: the watcher's events come on
        # their own thread, and on a loaded machine epochs of a few ms ended two dumps early
    lr = lr * 0.9   # a Python float that changes every epoch: one retrace per epoch
"""


def test_custom_loop_records_epochs_metrics_retraces_and_watched_dir(tmp_path: Path) -> None:
    run_python(LOOP, tmp_path)
    records = read_single_trace(tmp_path)
    assert records[0]["type"] == "run_start" and "training" not in records[0]
    assert records[-1]["type"] == "run_end" and records[-1]["ended"] == "completed"
    data = {r["path"] for r in of_type(records, "watch") if r.get("role") == "data"}
    assert data == {str(tmp_path / "snap"), str(tmp_path / "cached")}, of_type(records, "watch")
    epochs = of_type(records, "epoch")
    assert [e["epoch"] for e in epochs] == list(range(6))
    for e in epochs:
        assert e["source"] == "loop" and "fit" not in e
        assert e["steps"] == 5
        assert e["metrics"]["step_loss_python"] == 2.0  # mean of 0..4
        assert e["metrics"]["loss"] > 0
        # Every epoch traces train_step once more, because `lr` changed value.
        fn = e["retraces"]["functions"]["train_step"]
        assert fn["new"] == 1 and fn["total"] == e["epoch"] + 1
    causes = epochs[3]["retraces"]["functions"]["train_step"]["causes"]
    assert causes == [
        {
            "arg": "lr",
            "change": "value",
            "was": "float 0.08100000000000002",
            "now": "float 0.07290000000000002",
        }
    ]
    assert epochs[0]["retraces"]["functions"]["train_step"]["causes"][0]["change"] == "new"
    assert all(e["retraces"]["graph_build_seconds"] > 0 for e in epochs)

    out = str(tmp_path / "outputs")
    assert {"path": out, "role": "user"}.items() <= next(
        r for r in of_type(records, "watch") if r["path"] == out
    ).items()
    sizes = [d["bytes"] for e in epochs for d in e.get("dirs", []) if d["path"] == out]
    # Events are processed off the training thread: a file written in the last moments of
    # an epoch may be counted in the next one, never lost.
    assert sizes == sorted(sizes) and sizes[-1] >= 500_000 and len(set(sizes)) >= 3


def test_epoch_whose_body_raises_is_not_recorded(tmp_path: Path) -> None:
    code = """
from epochwatch import hook
import tensorflow as tf
for n in range(3):
    try:
        with hook.epoch(n):
            hook.log(loss=tf.constant(1.0))
            if n == 1:
                raise RuntimeError("bad batch")
    except RuntimeError:
        pass
"""
    run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    assert [e["epoch"] for e in of_type(records, "epoch")] == [0, 2]
    assert records[-1]["ended"] == "completed"


HANGING_GPU = """
import time
from epochwatch import hook
for n in range(6):
    with hook.epoch(n):
        time.sleep(0.3)
        hook.log(loss=1.0 / (n + 1))
"""


def test_a_hanging_gpu_driver_does_not_slow_the_epochs(tmp_path: Path) -> None:
    """Every NVML utilisation query hangs 1 s: the epochs must not wait for it (they did:
    each epoch took the hang on the training thread)."""
    env = with_fake_nvml(child_env(tmp_path, FAKE_NVML_HANG_SECONDS="1"))
    run_python(HANGING_GPU, tmp_path, env=env)
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert [e["epoch"] for e in epochs] == list(range(6))
    # Epoch 0 also carries the run's start (imports, fingerprint, NVML's first answer).
    overheads = [e["overhead_seconds"] for e in epochs[1:]]
    assert max(overheads) < 0.5, overheads
    # The run's start does not wait for NVML either (issue 22): it starts without the GPUs'
    # inventory, and the epochs get GPU fields once NVML answers.
    assert "gpus" not in records[0]["env"]
    assert any("gpu" in e for e in epochs)  # the late readings still land in the trace


FORKED_FOLDS = """
import multiprocessing as mp
import os
import sys
from epochwatch import hook


def fold(k):
    for n in range(3):
        with hook.epoch(n):
            hook.log(loss=1.0 / (n + 1 + k))


if __name__ == "__main__":
    if os.environ.get("STARTED") == "1":  # the parent's own run, before the folds
        with hook.epoch(0):
            hook.log(loss=9.0)
    ctx = mp.get_context("fork")
    for k in range(2):
        p = ctx.Process(target=fold, args=(k,))
        p.start()
        p.join()
        assert p.exitcode == 0, p.exitcode
"""


def test_each_forked_fold_is_a_run_of_its_own_and_ends(tmp_path: Path) -> None:
    """keras#5223's folds, a multiprocessing Process each (fork, Linux's default): all folds
    but the first were lost ("trace writer disabled: File exists": each child took the
    parent's run id), and the one kept had no run_end (multiprocessing ends a child with
    os._exit, past atexit). With the parent's run started before the fork, a child would
    have written into its parent's trace."""
    import orjson

    for started in ("0", "1"):
        out = tmp_path / started
        out.mkdir()
        proc = run_python(FORKED_FOLDS, out, env=child_env(out, STARTED=started))
        assert "disabled" not in proc.stderr, proc.stderr
        runs = {}
        for trace in (out / "traces").glob("*.jsonl"):
            records = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
            assert [r["type"] for r in records].count("run_start") == 1, trace
            runs[trace.name] = records
        losses = sorted(
            tuple(r["metrics"]["loss"] for r in recs if r["type"] == "epoch") for recs in runs.values()
        )
        folds = [(1.0, 0.5, 1 / 3), (0.5, 1 / 3, 0.25)]
        expected = sorted(
            [*[tuple(round(v, 6) for v in f) for f in folds], *([(9.0,)] if started == "1" else [])]
        )
        assert sorted(tuple(round(v, 6) for v in t) for t in losses) == expected, losses
        for recs in runs.values():
            assert recs[-1]["type"] == "run_end" and recs[-1]["ended"] == "completed", recs[-1]


FORK_DURING_IMPORT = """
import os
import sys
import threading
import time
from epochwatch import hook

sys.path.insert(0, os.getcwd())
with open("slow_module.py", "w") as f:
    f.write("import time\\ntime.sleep(0.5)\\nVALUE = 1\\n")
importer = threading.Thread(target=lambda: __import__("slow_module"), name="epochwatch-importer")
importer.start()
time.sleep(0.1)  # inside its import
pid = os.fork()
if pid == 0:
    import slow_module
    os._exit(0 if getattr(slow_module, "VALUE", None) == 1 else 3)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit(4)
"""


def test_a_fork_waits_while_a_hook_thread_imports(tmp_path: Path) -> None:
    """A fold forked right after its parent's first epoch lost online detection ("partially
    initialized module ...slowdown": the analysis thread was importing the detectors at the
    fork), and one forked right after `import epochwatch.hook` hung (the warm-up's import).
    Here a thread named as the hook's imports a module that takes 0.5 s: the child, which
    imports it too, gets it whole (exit 3: half made; 4: hung)."""
    proc = run_python(FORK_DURING_IMPORT, tmp_path, env=child_env(tmp_path), check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)


EXIT_IN_EPOCH = """
import os
import sys
from epochwatch import hook

for n in range(4):
    with hook.epoch(n):
        hook.log(loss=1.0)
        if n == 2:
            sys.exit(int(os.environ["CODE"]))
"""


def test_a_sys_exit_inside_training_is_how_the_run_ended(tmp_path: Path) -> None:
    """A callback that calls sys.exit(3) at epoch 6 of 12 (a scheduler reads the code): the
    run read "ended completed" (SystemExit never reaches sys.excepthook) beside its own
    fit_end's "raised SystemExit" (sys.exit(0) is a completed run: test_recorder)."""
    proc = run_python(EXIT_IN_EPOCH, tmp_path, env=child_env(tmp_path, CODE="3"), check=False)
    assert proc.returncode == 3, proc.stderr
    end = of_type(read_single_trace(tmp_path), "run_end")[0]
    assert end["ended"] == "raised" and end["exception"] == "SystemExit" and end["message"] == "3", end


SUMMARIES = """
import os
from epochwatch import hook
import tensorflow as tf
import keras

writer = tf.summary.create_file_writer(os.path.join(os.getcwd(), "runs", "loop"))
for n in range(3):
    with hook.epoch(n):
        with writer.as_default():
            tf.summary.histogram("w", tf.random.normal([4096]), step=n)
        writer.flush()
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
tb = keras.callbacks.TensorBoard(os.path.join(os.getcwd(), "tb"))
model.fit(tf.ones([8, 4]), tf.ones([8, 1]), epochs=1, verbose=0, callbacks=[tb])
"""


def test_a_summary_writers_log_directory_is_watched(tmp_path: Path) -> None:
    """alf#91's loop wrote its own summaries (72 MiB in all) where nothing watched: only a
    TensorBoard callback's log_dir was. The writer's directory is watched as TensorBoard
    logs; the callback's own writers (tb/train, tb/validation) add no second directory."""
    run_python(SUMMARIES, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    watched = {d["path"] for e in of_type(records, "epoch") for d in e.get("dirs", [])}
    assert str(tmp_path / "runs" / "loop") in watched, watched
    assert str(tmp_path / "tb") in watched and not any(
        p.startswith(str(tmp_path / "tb") + "/") for p in watched
    )
    grown = [
        d["bytes"] for e in of_type(records, "epoch") for d in e.get("dirs", []) if d["path"].endswith("loop")
    ]
    assert grown and grown[-1] > 0, grown
