"""Who notices what: epochwatch, Stormlog's leak analysis and TF/Keras's own warnings, on the same runs.

Each scenario is real TensorFlow training of a tiny Keras model in a fresh process, with
all three observers on the same run:

- epochwatch: `import epochwatch.hook` (embedded trace; the resume family shares one trace
  directory, as a user's runs next to their checkpoints would, so a resumed run finds its
  parent while it runs), then `epochwatch report --format json` over all the traces;
- Stormlog: `stormlog.tensorflow.TensorFlowMemoryTracker` around the fit (on a CPU it samples
  process RSS every --stormlog-interval s; its default of 1 s would give too few samples in
  these short runs for its analysis, which needs 10), then its `TensorFlowAnalyzer`'s
  `detect_memory_leaks`, the leak analysis it offers;
- TF and Keras: everything the process wrote to stderr at TF's default log level (Python
  warnings, absl and TF logging), classified by the message that names a problem: TF's
  "N out of the last M calls to <fn> triggered tf.function retracing", Keras's "Skipping
  variable loading for optimizer". Other warning lines are counted, not judged.

The runs: a host-memory leak (a callback keeps 24 MB a epoch), a slowdown (per-step work
in a callback grows every epoch, a stand-in for a loader or logger that gets slower), a
retrace storm (a tf.function in a callback is called with a Python float that changes
every epoch), a healthy run, and a resume family: a parent trained on standardized inputs
that saves weights and a full model; a weights-only resume (`load_weights` into a model
compiled with a new Adam); an unscaled resume (the full model resumed on raw inputs); a
healthy resume (the full model, same inputs). A tool "flags" a run when it reports the
planted problem; anything it reports at warning level or above on a run without that
problem is a false alarm.

    python bench/detection_compare.py [--epochs 30] [--stormlog-interval 0.1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRELUDE = """
import json, os, sys, time
if os.environ.get("BENCH_HOOK") == "1":
    import epochwatch.hook
import numpy as np
import keras
import tensorflow as tf

EPOCHS = int(os.environ["BENCH_EPOCHS"])
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(2048, 16)).astype("float32")
y = (x[:, :4].sum(axis=1) > 0).astype("float32")
raw = rng.normal(50.0, 10.0, size=(1024, 4)).astype("float32")
ry = (raw @ np.array([[0.03], [-0.02], [0.01], [0.02]], dtype="float32")).astype("float32")
scaled = (raw - raw.mean(axis=0)) / raw.std(axis=0)


def classifier():
    m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(keras.optimizers.Adam(0.001), "binary_crossentropy", metrics=["accuracy"])
    return m


def regressor():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


tracker = None
if os.environ.get("BENCH_STORMLOG") == "1":
    from stormlog.tensorflow import TensorFlowMemoryTracker
    tracker = TensorFlowMemoryTracker(sampling_interval=float(os.environ["BENCH_STORMLOG_INTERVAL"]),
                                      enable_logging=False)


def watched(fit):
    if tracker is not None:
        tracker.start_tracking()
    try:
        return fit()
    finally:
        if tracker is not None:
            from stormlog.tensorflow import TensorFlowAnalyzer
            result = tracker.stop_tracking()
            leaks = TensorFlowAnalyzer().detect_memory_leaks(result)
            out = {"samples": len(result.memory_usage),
                   "leaks": [{k: l.get(k) for k in ("type", "severity", "description")} for l in leaks]}
            print(json.dumps({"stormlog": out}))
"""

BODIES = {
    "host leak": """
class KeepEverything(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(3_000_000, float(epoch)))  # 24 MB a epoch, never freed

m = classifier()
watched(lambda: m.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=[KeepEverything()]))
""",
    "slowdown": """
class GrowingWork(keras.callbacks.Callback):
    # per-step work that grows 0.3 ms every epoch (busy, so it costs CPU like real work)
    def on_epoch_begin(self, epoch, logs=None):
        self.cost = 0.0003 * epoch
    def on_train_batch_begin(self, batch, logs=None):
        t = time.perf_counter()
        while time.perf_counter() - t < self.cost:
            pass

m = classifier()
watched(lambda: m.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=[GrowingWork()]))
""",
    "retrace storm": """
@tf.function
def weight_norm(weights, scale):
    return scale * tf.add_n([tf.reduce_sum(w ** 2) for w in weights])

class LogNorm(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        lr = 0.01 * 0.9 ** epoch  # a Python float that changes every epoch: a new trace every call
        weight_norm(self.model.trainable_weights, lr)

m = classifier()
watched(lambda: m.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=[LogNorm()]))
""",
    "healthy": """
m = classifier()
watched(lambda: m.fit(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, verbose=0))
""",
    "resume parent": """
m = regressor()
watched(lambda: m.fit(scaled, ry, epochs=EPOCHS // 2, batch_size=32, verbose=0))
m.save_weights("w.weights.h5")
m.save("m.keras")
""",
    "weights-only resume": """
m = regressor()  # a new Adam: its moments and step count start from zero
m.load_weights("w.weights.h5")
watched(lambda: m.fit(scaled, ry, epochs=EPOCHS, initial_epoch=EPOCHS // 2, batch_size=32, verbose=0))
""",
    "unscaled resume": """
m = keras.models.load_model("m.keras")
watched(lambda: m.fit(raw, ry, epochs=EPOCHS, initial_epoch=EPOCHS // 2, batch_size=32, verbose=0))
""",
    "healthy resume": """
m = keras.models.load_model("m.keras")
watched(lambda: m.fit(scaled, ry, epochs=EPOCHS, initial_epoch=EPOCHS // 2, batch_size=32, verbose=0))
""",
}

# What each run has, in each tool's vocabulary.
EXPECTED_EPOCHWATCH: dict[str, set[str]] = {
    "host leak": {"host_memory_growth"},
    "slowdown": {"slowdown"},
    "retrace storm": {"retrace_storm"},
    "healthy": set(),
    "resume parent": set(),
    "weights-only resume": {"optimizer_state_not_restored", "loss_jump_after_restore"},
    "unscaled resume": {"input_distribution_shift", "loss_jump_after_restore"},
    "healthy resume": set(),
}
PLANTED = {
    "host leak": "host memory",
    "slowdown": "slowdown",
    "retrace storm": "retracing",
    "healthy": None,
    "resume parent": None,
    "weights-only resume": "optimizer state",
    "unscaled resume": "input scaling",
    "healthy resume": None,
}
TF_MESSAGES = {  # a problem class and the TF/Keras message that names it
    "retracing": re.compile(r"triggered tf\.function retracing"),
    "optimizer state": re.compile(r"Skipping variable loading for optimizer"),
}
WARNING_LINE = re.compile(r"^(W\d{4} |E\d{4} |WARNING|ERROR)|Warning: ")


@dataclass
class Outcome:
    scenario: str
    seconds: float = 0.0
    stormlog: dict[str, Any] = field(default_factory=dict)
    tf_classes: set[str] = field(default_factory=set)
    tf_other: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)


def classify_stderr(text: str) -> tuple[set[str], list[str]]:
    """(problem classes TF/Keras named, other distinct warning lines)."""
    classes: set[str] = set()
    other: list[str] = []
    for line in text.splitlines():
        if line.startswith("epochwatch:"):
            continue  # the hook's own lines are not TF's
        hit = [name for name, rx in TF_MESSAGES.items() if rx.search(line)]
        if hit:
            classes.update(hit)
        elif WARNING_LINE.search(line):
            key = re.sub(r"\d+", "N", line)[:160]
            if key not in other:
                other.append(key)
    return classes, other


def run_scenario(name: str, work: Path, env: dict[str, str], timeout: float) -> Outcome:
    script = work / f"{name.replace(' ', '_')}.py"
    script.write_text(PRELUDE + BODIES[name])
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = Outcome(name, seconds=time.perf_counter() - t0)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exited {proc.returncode}\n{proc.stderr[-4000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith('{"stormlog"'):
            out.stormlog = json.loads(line)["stormlog"]
    out.tf_classes, out.tf_other = classify_stderr(proc.stderr)
    return out


def epochwatch_findings(traces: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """Findings per scenario from one `epochwatch report --format json` over every trace."""
    run_to_scenario = {trace.stem: name for name, trace in traces.items()}
    proc = subprocess.run(
        [sys.executable, "-m", "epochwatch", "report", "--format", "json", *map(str, traces.values())],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode not in (0, 2) or not proc.stdout.strip():
        raise RuntimeError(f"epochwatch report exited {proc.returncode}: {proc.stderr[-2000:]}")
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in traces}
    for run in json.loads(proc.stdout)["runs"]:
        name = run_to_scenario.get(str(run.get("run_id")))
        if name is not None:
            out[name].extend(run.get("findings", []))
    return out


def verdicts(o: Outcome) -> dict[str, tuple[str, bool, bool]]:
    """Per tool: (what it said, caught the planted problem, raised a false alarm)."""
    planted = PLANTED[o.scenario]
    res: dict[str, tuple[str, bool, bool]] = {}

    leaks = o.stormlog.get("leaks", [])
    said = ", ".join(sorted({f"{x['type']} ({x['severity']})" for x in leaks})) or "-"
    if o.stormlog and not leaks and o.stormlog.get("samples", 0) < 10:
        said = f"- ({o.stormlog.get('samples', 0)} samples, needs 10)"
    res["stormlog"] = (
        said,
        bool(leaks) and planted == "host memory",
        bool(leaks) and planted != "host memory",
    )

    said = ", ".join(sorted(o.tf_classes)) or "-"
    if o.tf_other:
        said += f" (+{len(o.tf_other)} other warning lines)"
    res["tf"] = (said, planted in o.tf_classes, bool(o.tf_classes - {planted}))

    loud = [f for f in o.findings if f.get("severity") in ("warning", "critical")]
    quiet = [f for f in o.findings if f.get("severity") == "info"]
    expected = EXPECTED_EPOCHWATCH[o.scenario]
    said = ", ".join(f"{f['kind']} ({f['severity']}, epoch {f.get('epoch')})" for f in loud) or "-"
    if quiet:
        said += "; info: " + ", ".join(sorted({str(f["kind"]) for f in quiet}))
    caught = any(f["kind"] in expected for f in o.findings)
    false_alarm = any(f["kind"] not in expected for f in loud)
    res["epochwatch"] = (said, caught, false_alarm)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30, help="epochs per run (resumes: half, then the rest)")
    p.add_argument("--stormlog-interval", type=float, default=0.1, help="Stormlog tracker sampling seconds")
    p.add_argument("--keep", metavar="DIR", help="keep the scripts, traces and logs here")
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    a = p.parse_args(argv)

    import harness

    info = harness.print_machine()
    stormlog = importlib.util.find_spec("stormlog") is not None
    if not stormlog:
        print("Stormlog is not installed (pip install -e '.[bench]'): its column stays empty")
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="epochwatch-detect-"))
    root.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    traces: dict[str, Path] = {}
    t_start = time.monotonic()
    meter = harness.LoadMeter()
    try:
        shared = root / "resume"  # the resume family shares the parent's files
        shared.mkdir(exist_ok=True)
        for name in BODIES:
            # The resume family shares a directory and a trace directory, as a user's runs
            # would (./epochwatch-traces next to the checkpoints): the resumed run finds its
            # parent's trace there.
            work = shared if "resume" in name else root / name.replace(" ", "_")
            work.mkdir(exist_ok=True)
            trace_dir = work / "traces"
            before = set(trace_dir.glob("*.jsonl"))
            env = harness.child_env(
                work,
                BENCH_HOOK="1",
                BENCH_EPOCHS=str(a.epochs),
                BENCH_STORMLOG="1" if stormlog else "0",
                BENCH_STORMLOG_INTERVAL=str(a.stormlog_interval),
                EPOCHWATCH_DIR=str(trace_dir),
                TF_CPP_MIN_LOG_LEVEL="0",  # everything TF has to say, as a user sees it by default
            )
            env.pop("TF_ENABLE_ONEDNN_OPTS", None)
            outcomes[name] = run_scenario(name, work, env, timeout=600)
            made = set(trace_dir.glob("*.jsonl")) - before
            if len(made) != 1:
                raise RuntimeError(f"{name}: expected one new trace, found {sorted(made)}")
            traces[name] = made.pop()
            print(f"ran {name:<20} {outcomes[name].seconds:5.1f} s", flush=True)
        for name, found in epochwatch_findings(traces).items():
            outcomes[name].findings = found
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    load = meter.stop()

    print(f"\nfinished in {time.monotonic() - t_start:.0f} s; {load.short()} (over the whole run)")
    print("\n| run | planted | Stormlog leak analysis | TF/Keras warnings | epochwatch |")
    print("|---|---|---|---|---|")
    score = {tool: [0, 0, 0] for tool in ("stormlog", "tf", "epochwatch")}  # caught, of, false alarms
    for name, o in outcomes.items():
        v = verdicts(o)
        cells = []
        for tool in ("stormlog", "tf", "epochwatch"):
            said, caught, false_alarm = v[tool]
            mark = " **caught**" if caught else (" **false alarm**" if false_alarm else "")
            cells.append(said + mark)
            if PLANTED[name]:
                score[tool][1] += 1
                score[tool][0] += caught
            score[tool][2] += false_alarm
        print(f"| {name} | {PLANTED[name] or 'nothing'} | " + " | ".join(cells) + " |")
    planted_total = sum(1 for x in PLANTED.values() if x)
    print()
    for tool, label in (("stormlog", "Stormlog"), ("tf", "TF/Keras warnings"), ("epochwatch", "epochwatch")):
        hits, of, fa = score[tool]
        print(
            f"{label:<18} caught {hits}/{of} planted problems, {fa} false alarm(s) over {len(outcomes)} runs"
        )
    other = sorted({w for o in outcomes.values() for w in o.tf_other})
    if other:
        print("\nother TF/Keras warning lines seen (not judged):")
        for w in other[:12]:
            print("  " + w)
    harness.save_json(
        a.json,
        {
            "machine": info,
            "args": vars(a),
            "load": load,
            "planted_total": planted_total,
            "outcomes": {
                n: {
                    "seconds": o.seconds,
                    "stormlog": o.stormlog,
                    "tf": sorted(o.tf_classes),
                    "tf_other": o.tf_other,
                    "findings": [
                        {k: f.get(k) for k in ("kind", "severity", "title", "epoch")} for f in o.findings
                    ],
                }
                for n, o in outcomes.items()
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
