"""What watching a Keras training costs, side by side with the tools people use today.

Two measurements, both printed as ratios to plain training measured in the same run.

1. Fresh processes (the user's view). Each variant trains the same two models (small: a
   64-unit MLP, 58 steps an epoch; medium: a 316k-parameter convnet on 32x32x3 images) in
   a fresh process, after a 1-epoch warm-up with the same arguments, and only the fits are
   timed (wall clock and the process's CPU time, all threads), so TF's import and start-up
   do not dilute the ratio. Variants run round-robin, in a rotated order each round, and
   each ratio is taken against the plain run of the same round:

   - plain: nothing attached (the baseline);
   - embedded: `import epochwatch.hook`, writing its own trace;
   - daemon: the same hook attached to a running `epochwatch daemon` (1 Hz sampling); the
     daemon's own CPU during each fit is read from /proc and added in the `+daemon` column;
   - tensorboard: `keras.callbacks.TensorBoard(histogram_freq=0, profile_batch=0)`;
   - mlflow: `mlflow.start_run(log_system_metrics=True)` on a local file store
     (MLFLOW_ALLOW_FILE_STORE=true), sampling every --mlflow-interval s (MLflow's default
     is 10 s; 1 s matches the daemon);
   - stormlog: `stormlog.tensorflow.TensorFlowMemoryTracker` running around the fits (on
     a CPU it samples process RSS), every --stormlog-interval s (its default, 1 s).

2. Paired, in one process (the precise view): per variant, one process trains the small
   model in --pairs pairs of fits with the observer off and on, in alternating order, so
   both halves of a pair share the process, its caches and the minute's load. For the
   hook, "off" calls the Keras fit it wrapped (`keras.Model.fit.__wrapped__`).

Wall time on a shared 2-core machine swings 25-40% between identical runs; CPU ratios are
steadier, and the paired ones steadier still. The load during every child (load average,
other busy processes, cores used by others) is printed with its figures, and the target
(epochwatch at most 1% over plain and below every other option) is judged on the paired
CPU ratios with their 95% interval: an interval across the line is called inconclusive.
The hook's own accounting (overhead_seconds in its traces) is printed too.

    python bench/overhead.py [--rounds 5] [--epochs-small 10] [--epochs-medium 2] [--pairs 16] [--pair-epochs 4] [--variants ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "embedded", "daemon", "tensorboard", "mlflow", "stormlog")
NEEDS = {"mlflow": "mlflow", "stormlog": "stormlog"}  # variant -> module it needs
MODELS = ("small", "medium")


# -- the children --------------------------------------------------------------------------


def workloads() -> dict[str, tuple[Any, Any, Any]]:
    """{model name: (build, x, y)}: the same data and models in every child."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(4096, 20)).astype("float32")
    ys = (xs[:, :5].sum(axis=1) > 0).astype("float32")
    xm = rng.normal(size=(2048, 32, 32, 3)).astype("float32")
    ym = rng.integers(0, 10, size=2048)

    def small() -> Any:
        m = keras.Sequential(
            [
                keras.Input((20,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return m

    def medium() -> Any:
        m = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(64, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return m

    return {"small": (small, xs, ys), "medium": (medium, xm, ym)}


class Tool:
    """One variant's observer: what to start before the timed fits, stop after, and the
    callbacks to pass. The epochwatch variants have nothing to start: importing the hook
    (before this object exists) is all a user does."""

    def __init__(self, variant: str, work: Path, mlflow_interval: float, stormlog_interval: float) -> None:
        self.variant = variant
        self.work = work
        self.extra: dict[str, Any] = {}
        self._tracker: Any = None
        if variant == "mlflow":
            import mlflow

            mlflow.set_tracking_uri((work / "mlruns").as_uri())
            mlflow.enable_system_metrics_logging()
            mlflow.set_system_metrics_sampling_interval(mlflow_interval)
        elif variant == "stormlog":
            from stormlog.tensorflow import TensorFlowMemoryTracker

            self._tracker = TensorFlowMemoryTracker(sampling_interval=stormlog_interval, enable_logging=False)

    def start(self) -> None:
        if self.variant == "mlflow":
            import mlflow

            mlflow.start_run(log_system_metrics=True)
        elif self._tracker is not None:
            self._tracker.start_tracking()

    def stop(self) -> None:
        if self.variant == "mlflow":
            import mlflow

            mlflow.end_run()
        elif self._tracker is not None:
            result = self._tracker.stop_tracking()
            self.extra["stormlog_samples"] = self.extra.get("stormlog_samples", 0) + len(result.memory_usage)

    def callbacks(self, name: str) -> list[Any]:
        if self.variant != "tensorboard":
            return []
        import keras

        return [
            keras.callbacks.TensorBoard(
                log_dir=str(self.work / "tb" / name), histogram_freq=0, profile_batch=0
            )
        ]


def _hook_if_needed(variant: str) -> None:
    if variant in ("embedded", "daemon"):
        import epochwatch.hook  # noqa: F401  (what a user adds; before or after keras)


def child(
    variant: str, work: Path, epochs: dict[str, int], mlflow_interval: float, stormlog_interval: float
) -> None:
    """Train both models under `variant`; print {model: {wall, cpu, start, end}} as JSON."""
    _hook_if_needed(variant)
    loads = workloads()
    tool = Tool(variant, work, mlflow_interval, stormlog_interval)
    tool.start()
    results: dict[str, Any] = {}
    for name in MODELS:
        build, x, y = loads[name]
        model = build()
        fit = {"batch_size": 64, "validation_split": 0.1, "verbose": 0, "callbacks": tool.callbacks(name)}
        model.fit(x, y, epochs=1, **fit)  # warm-up: tracing, allocator, the callbacks' set-up
        start, w0, c0 = time.time(), time.perf_counter(), time.process_time()
        model.fit(x, y, epochs=epochs[name], **fit)
        results[name] = {
            "wall": time.perf_counter() - w0,
            "cpu": time.process_time() - c0,
            "start": start,
            "end": time.time(),
        }
    tool.stop()
    results["extra"] = tool.extra
    print(json.dumps(results))


def paired_child(
    variant: str, work: Path, pairs: int, epochs: int, mlflow_interval: float, stormlog_interval: float
) -> None:
    """One process, the small model, `pairs` pairs of fits with the observer off and on, in
    alternating order; print {"pairs": [[off_wall, off_cpu, on_wall, on_cpu], ...]} as JSON.

    For epochwatch, "off" calls the Keras fit the hook wrapped (`Model.fit.__wrapped__`):
    the hook's per-fit and per-epoch work happens only in the "on" fits; retrace tracking
    costs only when TF traces, which it no longer does after the warm-up. For the others,
    "on" starts the tool (MLflow run, Stormlog tracker) before the timer and stops it after,
    or passes the TensorBoard callback."""
    _hook_if_needed(variant)
    import keras

    build, x, y = workloads()["small"]
    model = build()
    tool = Tool(variant, work, mlflow_interval, stormlog_interval)
    hooked = variant in ("embedded", "daemon")
    unhooked_fit: Any = getattr(keras.Model.fit, "__wrapped__", None) if hooked else None
    if hooked and unhooked_fit is None:
        raise SystemExit("the hook did not wrap keras.Model.fit")

    def fit(on: bool, n: int) -> tuple[float, float]:
        kwargs: dict[str, Any] = {"batch_size": 64, "validation_split": 0.1, "verbose": 0, "epochs": n}
        if on and not hooked:
            tool.start()
            kwargs["callbacks"] = tool.callbacks("small")
        w0, c0 = time.perf_counter(), time.process_time()
        if hooked and not on:
            unhooked_fit(model, x, y, **kwargs)
        else:
            model.fit(x, y, **kwargs)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if on and not hooked:
            tool.stop()
        return wall, cpu

    fit(True, 1)  # warm-up, both ways
    fit(False, 1)
    out = []
    for i in range(pairs):
        if i % 2 == 0:
            off, on = fit(False, epochs), fit(True, epochs)
        else:
            on, off = fit(True, epochs), fit(False, epochs)
        out.append([off[0], off[1], on[0], on[1]])
    print(json.dumps({"pairs": out}))


# -- the parent --------------------------------------------------------------------------------


class CpuPoller:
    """Reads a process's CPU time a few times a second, to tell what it spent between two instants."""

    def __init__(self, proc: Any, period: float = 0.25) -> None:
        self._proc = proc
        self._period = period
        self.points: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                t = self._proc.cpu_times()
            except Exception:
                return
            self.points.append((time.time(), t.user + t.system))
            self._stop.wait(self._period)

    def between(self, start: float, end: float) -> float:
        """CPU seconds used in [start, end], interpolated between readings."""
        return self._at(end) - self._at(start)

    def _at(self, when: float) -> float:
        pts = list(self.points)
        if not pts:
            return 0.0
        for (t0, c0), (t1, c1) in itertools.pairwise(pts):
            if t0 <= when <= t1:
                return c0 + (c1 - c0) * (when - t0) / max(1e-9, t1 - t0)
        return pts[-1][1] if when > pts[-1][0] else pts[0][1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def hook_accounting(traces: list[Path]) -> dict[str, dict[str, float]]:
    """The hook's own account of its cost (perf_counter around its own code, on the
    training thread), from its traces, per model over the timed fits (fit 1: small, fit 3:
    medium; each follows its warm-up): its share of epoch time, the median steady epoch's
    overhead (epochs after the first of a fit) and the first epoch of a fit, which carries
    the fit's set-up (fit_start, input statistics); and the run's one-time start."""
    from epochwatch.trace.reader import iter_records

    acc: dict[str, dict[str, list[float]]] = {
        m: {"ov": [], "sec": [], "steady": [], "first": [], "steady_thread": []} for m in MODELS
    }
    starts: list[float] = []
    for trace in traces:
        for rec in iter_records(trace):
            background = float(rec.get("overhead_background_seconds", 0.0))
            if rec.get("type") == "run_start":
                # The set-up charged to the training thread (its threads' part is not).
                starts.append(float(rec.get("overhead_seconds", 0.0)) - background)
            if rec.get("type") != "epoch" or rec.get("fit") not in (1, 3):
                continue
            a = acc["small" if rec["fit"] == 1 else "medium"]
            ov, sec = float(rec.get("overhead_seconds", 0.0)), float(rec.get("seconds", 0.0))
            a["ov"].append(ov)
            a["sec"].append(sec)
            (a["first"] if rec.get("epoch") == 0 else a["steady"]).append(ov)
            if rec.get("epoch") != 0:
                a["steady_thread"].append(ov - background)
    out: dict[str, dict[str, float]] = {}
    for m, a in acc.items():
        if a["sec"]:
            out[m] = {
                "epochs": len(a["sec"]),
                "share": sum(a["ov"]) / sum(a["sec"]),
                "epoch_seconds": statistics.median(a["sec"]),
                "steady_us": 1e6 * statistics.median(a["steady"]) if a["steady"] else float("nan"),
                # The mean, not the median: online detection runs every few epochs on short ones.
                "steady_mean_us": 1e6 * statistics.fmean(a["steady"]) if a["steady"] else float("nan"),
                "steady_thread_us": (
                    1e6 * statistics.median(a["steady_thread"]) if a["steady_thread"] else float("nan")
                ),
                "first_ms": 1e3 * statistics.median(a["first"]) if a["first"] else float("nan"),
                "run_start_ms": 1e3 * statistics.median(starts) if starts else float("nan"),
            }
    return out


def _child_cmd(a: argparse.Namespace, mode: str, variant: str, work: Path, pairs: int = 0) -> list[str]:
    cmd = [sys.executable, __file__, mode, variant, "--workdir", str(work)]
    cmd += ["--epochs-small", str(a.epochs_small), "--epochs-medium", str(a.epochs_medium)]
    cmd += ["--pairs", str(pairs), "--pair-epochs", str(a.pair_epochs)]
    cmd += ["--mlflow-interval", str(a.mlflow_interval), "--stormlog-interval", str(a.stormlog_interval)]
    return cmd


def _pairs_within_budget(
    a: argparse.Namespace, rows: list[dict[str, Any]], variants: list[str], elapsed: float
) -> int:
    """As many pairs as --pairs, or fewer, so the whole benchmark ends within --budget-minutes
    (a loaded machine makes everything slower; the fresh-process part is required, this is not)."""
    others = [v for v in variants if v != "plain"]
    small = [x["wall"] / a.epochs_small for x in rows if x["model"] == "small"]
    if a.pairs <= 0 or not others or not small:
        return 0
    per_pair = 2 * (a.pair_epochs * statistics.median(small) + 0.3)
    startup = 20.0  # TF's import, MLflow's, the warm-up fits
    avail = (a.budget_minutes * 60 - elapsed) / len(others) - startup
    pairs = min(a.pairs, int(avail / per_pair))
    if pairs < a.pairs:
        print(
            f"paired part: {max(pairs, 0)} pairs per variant instead of {a.pairs}, to end within {a.budget_minutes:g} minutes"
        )
    return pairs if pairs >= 5 else 0


def _env(harness: Any, v: str, work: Path, sock: Path) -> dict[str, str]:
    extra = {"MLFLOW_ALLOW_FILE_STORE": "true"} if v == "mlflow" else {}
    if v == "daemon":
        extra["EPOCHWATCH_SOCKET"] = str(sock)
    env: dict[str, str] = harness.child_env(work, **extra)
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="fresh-process runs of every variant (default 5)")
    p.add_argument("--epochs-small", type=int, default=10, help="timed epochs of the small model")
    p.add_argument("--epochs-medium", type=int, default=2, help="timed epochs of the medium model")
    p.add_argument(
        "--pairs", type=int, default=16, help="paired off/on fits per variant in one process (0: skip)"
    )
    p.add_argument("--pair-epochs", type=int, default=4, help="epochs of each paired fit (small model)")
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=14.0,
        help="fewer pairs if needed to end within this (default 14)",
    )
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS)
    )
    p.add_argument(
        "--mlflow-interval", type=float, default=1.0, help="MLflow system-metrics sampling seconds"
    )
    p.add_argument("--stormlog-interval", type=float, default=1.0, help="Stormlog tracker sampling seconds")
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--paired-child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    epochs = {"small": a.epochs_small, "medium": a.epochs_medium}
    if a.child:
        child(a.child, Path(a.workdir), epochs, a.mlflow_interval, a.stormlog_interval)
        return 0
    if a.paired_child:
        paired_child(
            a.paired_child, Path(a.workdir), a.pairs, a.pair_epochs, a.mlflow_interval, a.stormlog_interval
        )
        return 0

    import harness

    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "plain" not in variants:
        variants.insert(0, "plain")
    for v in list(variants):
        module = NEEDS.get(v)
        if module and importlib.util.find_spec(module) is None:
            print(f"skipping {v}: {module} is not installed (pip install -e '.[bench]')")
            variants.remove(v)

    info = harness.print_machine()
    print(
        f"{a.rounds} rounds x {len(variants)} variants in fresh processes: small {a.epochs_small} epochs, "
        f"medium {a.epochs_medium} epochs; then {a.pairs} paired off/on fits of {a.pair_epochs} epochs per variant; "
        f"mlflow every {a.mlflow_interval:g} s, stormlog every {a.stormlog_interval:g} s"
    )
    root = Path(tempfile.mkdtemp(prefix="epochwatch-overhead-"))
    rows: list[dict[str, Any]] = []
    paired: dict[str, dict[str, Any]] = {}
    t_start = time.monotonic()
    try:
        with harness.running_daemon(root / "daemon") as (sock, daemon_proc):
            poller = CpuPoller(daemon_proc)
            try:
                for r in range(a.rounds):
                    order = variants[r % len(variants) :] + variants[: r % len(variants)]
                    for v in order:
                        work = root / f"{v}-{r}"
                        work.mkdir(parents=True)
                        meter = harness.LoadMeter()
                        res = harness.run_json(
                            _child_cmd(a, "--child", v, work), env=_env(harness, v, work, sock), cwd=work
                        )
                        load = meter.stop()
                        for m in MODELS:
                            fit = res[m]
                            daemon_cpu = poller.between(fit["start"], fit["end"]) if v == "daemon" else 0.0
                            rows.append(
                                {"round": r, "variant": v, "model": m, "wall": fit["wall"], "cpu": fit["cpu"],
                                 "daemon_cpu": daemon_cpu, "load": load, **res.get("extra", {})}
                            )  # fmt: skip
                        print(
                            f"round {r + 1} {v:<11} small {res['small']['wall']:6.2f}s wall "
                            f"{res['small']['cpu']:6.2f}s cpu | medium {res['medium']['wall']:6.2f}s wall "
                            f"{res['medium']['cpu']:6.2f}s cpu | {load.short()}",
                            flush=True,
                        )
                pairs = _pairs_within_budget(a, rows, variants, time.monotonic() - t_start)
                for v in variants if pairs > 0 else []:
                    if v == "plain":
                        continue
                    work = root / f"{v}-paired"
                    work.mkdir(parents=True)
                    meter = harness.LoadMeter()
                    res = harness.run_json(
                        _child_cmd(a, "--paired-child", v, work, pairs),
                        env=_env(harness, v, work, sock),
                        cwd=work,
                    )
                    paired[v] = {"pairs": res["pairs"], "load": meter.stop()}
                    cpu = [on_c / off_c for _, off_c, _, on_c in res["pairs"]]
                    print(
                        f"paired {v:<11} CPU ratio {harness.spread(cpu)} over {len(cpu)} pairs | "
                        f"{paired[v]['load'].short()}",
                        flush=True,
                    )
            finally:
                poller.close()
        embedded_traces = sorted(root.glob("embedded-[0-9]*/traces/*.jsonl"))
        daemon_traces = [
            t
            for t in sorted((root / "daemon" / "state" / "traces").glob("*.jsonl"))
            if "paired" not in t.read_text(errors="replace")[:4000]
        ]
        accounting = {
            name: hook_accounting(traces)
            for name, traces in (("embedded", embedded_traces), ("daemon", daemon_traces))
            if traces
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nfinished in {time.monotonic() - t_start:.0f} s")
    report(rows, variants, a.rounds, accounting)
    if paired:
        report_paired(paired, a.pair_epochs)
    verdict(rows, paired, variants)
    harness.save_json(
        a.json, {"machine": info, "args": vars(a), "rows": rows, "paired": paired, "accounting": accounting}
    )
    return 0


def _ratio(
    rows: list[dict[str, Any]], variant: str, model: str, key: str, with_daemon: bool = False
) -> list[float]:
    """Per-round ratio variant/plain for one model."""
    plain = {x["round"]: x for x in rows if x["variant"] == "plain" and x["model"] == model}
    out = []
    for x in rows:
        if x["variant"] == variant and x["model"] == model and x["round"] in plain:
            value = x[key] + (x["daemon_cpu"] if with_daemon else 0.0)
            out.append(value / plain[x["round"]][key])
    return out


def report(rows: list[dict[str, Any]], variants: list[str], rounds: int, accounting: dict[str, Any]) -> None:
    import harness

    for model in MODELS:
        print(
            f"\n{model} model: fit seconds median [min-max] over {rounds} runs; ratio to plain of the same round"
        )
        print("| variant | wall s | CPU s | wall ratio | CPU ratio | CPU ratio +daemon | load during runs |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for v in variants:
            mine = [x for x in rows if x["variant"] == v and x["model"] == model]
            walls = [x["wall"] for x in mine]
            cpus = [x["cpu"] for x in mine]
            loads = [x["load"] for x in mine]
            load = (
                f"{statistics.median(x.loadavg_1m for x in loads):.2f} / "
                f"{statistics.median(x.busy_processes for x in loads):g} / "
                f"{statistics.median(x.other_cores for x in loads):.2f}"
            )
            wr = _ratio(rows, v, model, "wall")
            cr = _ratio(rows, v, model, "cpu")
            crd = harness.spread(_ratio(rows, v, model, "cpu", with_daemon=True)) if v == "daemon" else ""
            print(
                f"| {v} | {harness.spread(walls, '.2f')} | {harness.spread(cpus, '.2f')} | "
                f"{harness.spread(wr)} | {harness.spread(cr)} | {crd} | {load} |"
            )
    print("\nload during runs: median of (1-min load average / other busy processes / cores used by others)")
    print(harness.summarize_loads([x["load"] for x in rows]))
    if accounting:
        print("\nthe hook's own accounting (sum of overhead_seconds over the timed fits' epochs):")
        print(
            "| mode | model | epochs | share of epoch time | median epoch s | steady epoch training thread us "
            "| steady epoch all threads us (median / mean) | first epoch of a fit ms | run_start training thread ms |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for mode, per_model in accounting.items():
            for model, x in per_model.items():
                print(
                    f"| {mode} | {model} | {x['epochs']:.0f} | {x['share']:.3%} | {x['epoch_seconds']:.3f} | "
                    f"{x['steady_thread_us']:.0f} | {x['steady_us']:.0f} / {x['steady_mean_us']:.0f} | "
                    f"{x['first_ms']:.1f} | {x['run_start_ms']:.0f} |"
                )
        targets(accounting)


def targets(accounting: dict[str, Any]) -> None:
    """Issue 15's targets, met or missed, from the hook's own accounting of the small model."""
    print("\ntargets (issue 15), small model, from the hook's accounting:")
    for mode, per_model in accounting.items():
        x = per_model.get("small")
        if not x:
            continue
        checks = [
            ("steady epoch, training thread", x["steady_thread_us"], 200.0, "us"),
            ("steady epoch, all the hook's threads (mean)", x["steady_mean_us"], 400.0, "us"),
            ("set-up charged to the training thread (run_start)", x["run_start_ms"], 20.0, "ms"),
        ]
        for what, value, limit, unit in checks:
            verdict = "met" if value <= limit else "MISSED"
            print(f"- {mode}: {what}: {value:.1f} {unit} (target <= {limit:g} {unit}): {verdict}")


def _mean_ci(values: list[float]) -> str:
    """mean ± 95% interval (normal approximation)."""
    if len(values) < 2:
        return "-"
    m = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
    return f"{m:.3f} ± {half:.3f}"


def report_paired(paired: dict[str, dict[str, Any]], epochs: int) -> None:
    import harness

    print(
        f"\npaired in one process, small model, fits of {epochs} epochs: ratio on/off per pair, "
        "median [min-max] and mean ± 95% interval"
    )
    print("| variant | pairs | wall ratio | wall mean | CPU ratio | CPU mean | load during runs |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for v, res in paired.items():
        wall = [on_w / off_w for off_w, _, on_w, _ in res["pairs"]]
        cpu = [on_c / off_c for _, off_c, _, on_c in res["pairs"]]
        print(
            f"| {v} | {len(cpu)} | {harness.spread(wall)} | {_mean_ci(wall)} | {harness.spread(cpu)} | "
            f"{_mean_ci(cpu)} | {res['load'].short()} |"
        )


def _interval(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("inf")
    return m - half, m + half


def verdict(rows: list[dict[str, Any]], paired: dict[str, dict[str, Any]], variants: list[str]) -> None:
    """The issue's target, judged on the steadiest figure there is (the paired CPU ratios,
    else the fresh-process CPU ratios of the small model, the worst case), with its 95%
    interval: a ratio whose interval straddles the line is called inconclusive, not met."""
    if paired:
        ratios = {v: [on_c / off_c for _, off_c, _, on_c in r["pairs"]] for v, r in paired.items()}
        source = "paired CPU ratio, small model"
    else:
        ratios = {v: _ratio(rows, v, "small", "cpu") for v in variants if v != "plain"}
        source = "fresh-process CPU ratio, small model"
    ratios = {v: r for v, r in ratios.items() if r}
    ours = {v: _interval(r) for v, r in ratios.items() if v in ("embedded", "daemon")}
    others = {v: _interval(r) for v, r in ratios.items() if v not in ours}
    for v, (lo, hi) in ours.items():
        limit = "met" if hi <= 1.01 else ("MISSED" if lo > 1.01 else "inconclusive at this noise")
        cmp = []
        for o, (olo, ohi) in others.items():
            cmp.append(
                f"{o} {'below' if hi < olo else ('ABOVE' if lo > ohi else 'overlaps')} [{olo:.3f}, {ohi:.3f}]"
            )
        print(
            f"target ({source}, 95% interval): {v} [{lo:.3f}, {hi:.3f}]: <= 1% over plain: {limit}; "
            f"against the others: " + ", ".join(cmp)
        )


if __name__ == "__main__":
    sys.exit(main())
