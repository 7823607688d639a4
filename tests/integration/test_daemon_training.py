"""Real Keras training (TF on the CPU) attached to a real daemon process."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

from epochwatch.trace.reader import iter_records
from tests.integration.daemon_harness import DaemonProc, base_env, wait_for_line, wait_until
from tests.support import start_python, trace_files
from tests.zygote_client import Process

Proc = subprocess.Popen[str] | Process  # a training script forked from the zygote, or fresh

# A small model; each epoch sleeps in a callback so that the daemon has time to act mid-run.
TRAIN = """
import sys, time
import epochwatch.hook
import keras
import numpy as np

epochs, pause = int(sys.argv[1]), float(sys.argv[2])

class Pace(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(pause)
        print("EPOCH", epoch, flush=True)

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = (x.sum(axis=1) > 0).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[Pace()])
print("TRAINED", flush=True)
"""


def _start_training(root: Path, socket_path: Path | str, epochs: int, pause: float) -> Proc:
    script = root / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    env = base_env(EPOCHWATCH_SOCKET=str(socket_path), EPOCHWATCH_DIR=str(root / "traces"))
    pipe = subprocess.PIPE
    return start_python(script, str(epochs), str(pause), cwd=root, env=env, stdout=pipe, stderr=pipe)


def _finish(proc: Proc, timeout: float = 120.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"training did not finish:\n{err[-4000:]}") from None
    return proc.returncode, out, err


def _only_trace(d: DaemonProc) -> list[dict]:
    files = d.trace_files()
    assert len(files) == 1, files
    return list(iter_records(files[0]))


def _epoch_numbers(records: list[dict]) -> list[int]:
    return [r["epoch"] for r in records if r["type"] == "epoch"]


def test_training_records_arrive_and_the_trace_is_complete(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = _start_training(tmp_path, d.socket, epochs=4, pause=0.6)
    try:
        rc, _out, err = _finish(proc)
        assert rc == 0, err[-4000:]
        d.wait_log(r"ended: completed after 4 epochs")
        records = _only_trace(d)
        start = records[0]
        assert start["type"] == "run_start" and start["mode"] == "daemon"
        assert start["daemon"]["peer"]["pid"] == proc.pid and start["env"]["pid"] == proc.pid
        assert [r["type"] for r in records].count("fit_start") == 1
        assert _epoch_numbers(records) == [0, 1, 2, 3]
        epochs = [r for r in records if r["type"] == "epoch"]
        assert all(e["peaks"]["rss_bytes"] >= 50 << 20 for e in epochs)  # a TF process, sampled by the daemon
        assert all("host" in e and "metrics" in e for e in epochs)  # the hook's own blocks, as sent
        assert [r for r in records if r["type"] == "sample"]
        assert records[-1]["type"] == "run_end" and records[-1]["ended"] == "completed"
        assert not trace_files(tmp_path)  # nothing embedded
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        d.cleanup()


def test_daemon_killed_mid_run_and_restarted_loses_no_epoch(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = _start_training(tmp_path, d.socket, epochs=8, pause=0.5)
    try:
        wait_for_line(proc, "EPOCH 2", timeout=90)
        d.stop(signal.SIGKILL)
        wait_for_line(proc, "EPOCH 3", timeout=90)  # the run goes on while no daemon listens
        d.start()
        rc, out, err = _finish(proc)
        assert rc == 0, err[-4000:]
        assert "TRAINED" in out
        d.wait_log(r"ended: completed after 8 epochs")
        records = _only_trace(d)
        assert _epoch_numbers(records) == list(range(8))
        seqs = [r["seq"] for r in records if "seq" in r]
        assert seqs == list(range(len(seqs)))
        assert records[-1]["ended"] == "completed"
        assert not trace_files(tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        d.cleanup()


def test_nothing_listening_means_an_embedded_trace(tmp_path: Path) -> None:
    proc = _start_training(tmp_path, tmp_path / "absent.sock", epochs=2, pause=0.0)
    rc, _out, err = _finish(proc)
    assert rc == 0, err[-4000:]
    files = trace_files(tmp_path)
    assert len(files) == 1
    records = list(iter_records(files[0]))
    assert records[0]["mode"] == "embedded" and _epoch_numbers(records) == [0, 1]
    assert records[-1]["ended"] == "completed"


def test_training_killed_is_noticed_as_vanished_within_5_seconds(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = _start_training(tmp_path, d.socket, epochs=50, pause=0.3)
    try:
        wait_for_line(proc, "EPOCH 1", timeout=90)
        files = d.trace_files()
        wait_until(
            lambda: d.trace_files()[0].read_text().count('"type":"epoch"') >= 2, what="2 epochs in the trace"
        )
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.communicate()
        d.wait_log(r"vanished: pid \d+ exited without run_end", timeout=5.0)
        assert time.monotonic() - killed < 5.0
        records = list(iter_records(files[0]))
        end = records[-1]
        assert end["type"] == "run_end" and end["ended"] == "vanished" and end["epochs"] >= 2
        assert end["last_samples"][-1]["rss_bytes"] >= 50 << 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        d.cleanup()


FORKS_A_CHILD = """
import os, sys, time
from epochwatch import hook


def sockets():
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


with hook.epoch(0):
    hook.log(loss=1.0)
time.sleep(0.5)  # the run is attached: its connection is open
parents = sockets()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    kept = parents & sockets()
    os.write(w, repr(sorted(kept)).encode())
    os._exit(0)
os.close(w)
print("PARENT", sorted(parents), flush=True)
print("CHILD KEPT", os.read(r, 4096).decode(), flush=True)
os.waitpid(pid, 0)
"""


def test_a_forked_child_closes_its_copy_of_the_parents_daemon_connection(tmp_path: Path) -> None:
    """A child forked by a run attached to the daemon kept the parent's connection open: had
    the parent died, the daemon would not have seen its connection end while the child lived."""
    d = DaemonProc(tmp_path).start()
    script = tmp_path / "forks.py"
    script.write_text(textwrap.dedent(FORKS_A_CHILD))
    env = base_env(EPOCHWATCH_SOCKET=str(d.socket), EPOCHWATCH_DIR=str(tmp_path / "traces"))
    pipe = subprocess.PIPE
    proc = start_python(script, cwd=tmp_path, env=env, stdout=pipe, stderr=pipe)
    try:
        rc, out, err = _finish(proc)
        assert rc == 0, err[-4000:]
        assert "PARENT ['socket:" in out, out  # the parent holds its connection
        assert "CHILD KEPT []" in out, out
        d.wait_log(r"ended: completed after 1 epochs")
        assert not trace_files(tmp_path)  # nothing fell back: the parent's run went on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        d.cleanup()
