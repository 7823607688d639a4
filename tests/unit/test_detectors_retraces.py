"""retrace_storm: new traces after warm-up, naming the function and the changing argument."""

from __future__ import annotations

from functools import partial
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.detectors.retraces import hint_for
from tests.support import analyze_records

_analyze = partial(analyze_records, kind="retrace_storm")


def _retraces(functions: dict[str, Any], build: float = 0.0) -> dict[str, Any]:
    return {
        "retraces": {
            "new": sum(f["new"] for f in functions.values()),
            "graph_build_seconds": build,
            "live_concrete_functions": 3,
            "functions": functions,
        }
    }


def _first(name: str) -> dict[str, Any]:
    return {
        name: {
            "new": 1,
            "total": 1,
            "causes": [{"arg": "*", "change": "new", "was": "", "now": "first trace"}],
        }
    }


def test_python_float_argument_storm_is_named_with_the_fix() -> None:
    def make(i: int) -> dict[str, Any]:
        if i == 0:
            return _retraces(_first("train_step"))
        cause = {
            "arg": "lr",
            "change": "value",
            "was": f"float {0.1 / i:.4f}",
            "now": f"float {0.1 / (i + 1):.4f}",
        }
        return _retraces({"train_step": {"new": 1, "total": i + 1, "causes": [cause]}})

    found = _analyze(syn.trace(12, make))
    assert len(found) == 1
    f = found[0]
    assert f.target == "train_step"
    assert f.evidence["argument"] == "lr"
    assert f.evidence["change"] == "value"
    assert "`train_step`" in f.title and "`lr`" in f.title
    assert "Python float" in f.hint and "tf.Variable" in f.hint
    assert f.epoch is not None and f.epoch <= 5
    assert f.severity == "warning"


def test_every_argument_that_changes_is_named() -> None:
    """dlperf's Lorenz: three annealed floats retraced each step; the fix named one of them."""

    def make(i: int) -> dict[str, Any]:
        if i == 0:
            return _retraces(_first("train_step"))
        causes = [
            {"arg": a, "change": "value", "was": f"float {1 / i:.3f}", "now": f"float {1 / (i + 1):.3f}"}
            for a in ("lr", "temperature", "xent_coef")[: 1 + i % 3]
        ]
        return _retraces({"train_step": {"new": 1, "total": i + 1, "causes": causes}})

    (f,) = _analyze(syn.trace(12, make))
    assert f.evidence["arguments"] == ["lr", "temperature", "xent_coef"]
    assert "arguments `lr`, `temperature`, `xent_coef` change value" in f.title, f.title
    assert "a fix of one leaves the others" in f.hint and "tf.constant(lr" in f.hint


def test_traces_only_while_warming_up_are_quiet() -> None:
    def make(i: int) -> dict[str, Any]:
        if i == 0:
            return _retraces({**_first("train_step"), **_first("test_step")})
        if i == 1:
            shape = {
                "arg": "x",
                "change": "shape",
                "was": "TensorSpec([32, 8])",
                "now": "TensorSpec([16, 8])",
            }
            return _retraces({"train_step": {"new": 1, "total": 2, "causes": [shape]}})
        return _retraces({})

    assert _analyze(syn.trace(30, make)) == []


def test_occasional_retraces_add_up() -> None:
    def make(i: int) -> dict[str, Any]:
        if i and i % 4 == 0:
            c = {"arg": "x", "change": "shape", "was": "TensorSpec([32, 8])", "now": f"TensorSpec([{i}, 8])"}
            return _retraces({"predict_fn": {"new": 1, "total": i, "causes": [c]}})
        return _retraces({})

    found = _analyze(syn.trace(40, make))
    assert [f.target for f in found] == ["predict_fn"]
    assert "input_signature" in found[0].hint


def test_a_jit_compiled_functions_shape_storm_is_fixed_by_fixing_the_shapes() -> None:
    """tensorflow#62198 under jit_compile=True: the fix offered an input_signature, which
    stops the traces while XLA still compiles every new shape (epochs 20, 10, 10, 5 s)."""

    def make(i: int, xla: bool) -> dict[str, Any]:
        c = {
            "arg": "x",
            "change": "shape",
            "was": "TensorSpec([16, 123, 40])",
            "now": f"TensorSpec([16, {i}, 40])",
        }
        block = {"new": 3, "total": 3 * i + 3, "causes": [c], **({"xla": True} if xla else {})}
        return _retraces({"train_step": block})

    (jit,) = _analyze(syn.trace(8, partial(make, xla=True)))
    assert (
        jit.evidence["xla"] is True and "XLA" in jit.hint and "input_signature" not in jit.hint.split(":")[-1]
    )
    assert "bucket" in jit.hint
    (plain,) = _analyze(syn.trace(8, partial(make, xla=False)))
    assert "xla" not in plain.evidence and "give the function an input_signature" in plain.hint


def test_graph_building_eating_the_epoch_is_critical() -> None:
    def make(i: int) -> dict[str, Any]:
        c = {"arg": "n", "change": "value", "was": f"int {i}", "now": f"int {i + 1}"}
        return {"seconds": 1.0, **_retraces({"step": {"new": 2, "total": 2 * i, "causes": [c]}}, build=0.5)}

    found = _analyze(syn.trace(12, make))
    assert found[0].severity == "critical"
    assert "Python int" in found[0].hint


def test_hints_by_kind_of_change() -> None:
    assert "dtype" in hint_for(("x", "dtype", "float32", "float64"))
    assert "nesting" in hint_for(("*", "structure", "", ""))
    assert "always pass a tensor" in hint_for(("x", "type", "float 1.0", "Tensor"))
    assert "defined in the loop's body" in hint_for(None)


def test_keras_own_function_beside_the_users_is_one_storm() -> None:
    """tensorflow#27120: a new Adam built inside a new tf.function each epoch traces the
    step and Keras' `initialize_variables` each epoch: two critical storms, one cause."""

    def make(i: int) -> dict[str, Any]:
        both = {
            "train_step": {"new": 2, "total": 2 * i + 2, "causes": []},
            "initialize_variables": {"new": 1, "total": i + 1, "causes": []},
        }
        return _retraces(both, build=0.3)

    found = _analyze(syn.trace(12, make))
    assert [f.target for f in found] == ["train_step"], [f.title for f in found]
    # The new Adam each epoch (the auto epochs' `optimizers_replaced`): the fix says its state is lost.
    replaced = _analyze(syn.trace(12, lambda i: {**make(i), "optimizers_replaced": 1 if i else 0}))
    assert (
        "optimizer is made anew too" in replaced[0].hint and replaced[0].evidence["optimizers_replaced"] >= 3
    )
    assert "optimizer is made anew" not in found[0].hint

    def alone(i: int) -> dict[str, Any]:  # its only sign: said
        return _retraces({"initialize_variables": {"new": 1, "total": i + 1, "causes": []}}, build=0.3)

    assert [f.target for f in _analyze(syn.trace(12, alone))] == ["initialize_variables"]


def _per_epoch(until: int, build: float = 0.0) -> Any:
    """A Python int into the step: a trace each epoch up to epoch `until`, none after
    (`build`: seconds of each 1-s epoch spent tracing)."""

    def make(i: int) -> dict[str, Any]:
        if i == 0:
            return _retraces(_first("train_step"))
        if i > until:
            return {"seconds": 1.0, **_retraces({})}
        c = {"arg": "n", "change": "value", "was": f"int {i - 1}", "now": f"int {i}"}
        return {"seconds": 1.0, **_retraces({"train_step": {"new": 1, "total": i + 1, "causes": [c]}}, build)}

    return make


def test_the_verdict_counts_the_retraces_the_run_ended_with() -> None:
    """A storm found at its third retrace kept "retraced 3 times" in `report` beside a header
    counting every one: the verdict's count is the run's end's."""
    first = _analyze(syn.trace(20, _per_epoch(99)))[0]
    last = analyze_records(syn.trace(20, _per_epoch(99)), "retrace_storm", episodes=True)[0]
    assert first.evidence["new_traces_after_warmup"] <= 5
    # Updated on a tenth more at the end (findings.FINAL_GROWTH): within a tenth of the end's count.
    n = last.evidence["new_traces_after_warmup"]
    assert 17 <= n <= 19 and f"retraced {n} times" in last.title, last.title
    assert last.as_of is not None and last.as_of >= 17 and last.epoch == first.epoch
    assert "no new trace" not in last.title


def test_a_storm_that_stopped_says_when() -> None:
    """A server that has seen every input length traces no more: its storm is said to have
    stopped, with the epoch of its last new trace."""
    found = analyze_records(syn.trace(16, _per_epoch(7)), "retrace_storm", episodes=True)
    assert len(found) == 1
    f = found[0]
    assert f.title.endswith("; no new trace after epoch 8"), f.title
    assert f.evidence["stopped_growing"] and f.evidence["last_retrace_epoch"] == 7
    # What it costs now is its severity: critical while tracing ate the epochs, not after.
    first = _analyze(syn.trace(16, _per_epoch(7, build=0.5)))[0]
    last = analyze_records(syn.trace(16, _per_epoch(7, build=0.5)), "retrace_storm", episodes=True)[0]
    assert (first.severity, last.severity) == ("critical", "warning"), last.title
    # Stopped at the run's very end: too soon to say.
    assert (
        "no new trace"
        not in analyze_records(syn.trace(9, _per_epoch(7)), "retrace_storm", episodes=True)[0].title
    )


def _exports(n: int, *, every: int = 1) -> list[dict[str, Any]]:
    """tensorflow#23025: a callback's `model.export(...)` at each `every`-th epoch's end, which
    traces the model's `__call__` and the SavedModel writer's functions anew (no argument
    changes), with a `save` record (format saved_model) for each export."""
    names = {
        "__call__": 2,
        "serving_default": 2,
        "signature_wrapper___call__": 2,
        "_traced_save": 1,
        "_traced_restore": 1,
    }

    def make(i: int) -> dict[str, Any]:
        k = i // every + 1
        if i % every:
            return {"seconds": 0.3, **_retraces({}, build=0.0)}
        fns = {f: {"new": c, "total": c * k, "causes": []} for f, c in names.items()}
        if i == 0:
            fns = {**_first("train_step"), **fns}
        return {"seconds": 0.3, **_retraces(fns, build=0.05)}

    records = syn.trace(n, make)
    out = [records[0]]
    for rec in records[1:]:
        out.append(rec)
        if rec["type"] == "epoch" and rec["epoch"] % every == 0:
            out.append(
                {"type": "save", "run_id": rec["run_id"], "t": rec["t"], "path": f"/x/export/{rec['epoch']:03d}",
                 "format": "saved_model", "api": "tf.saved_model.save", "save_seconds": 0.08}
            )  # fmt: skip
    return out


def test_a_model_exported_every_epoch_is_one_finding_about_the_export() -> None:
    """tensorflow#23025: five storms (one per function the export traces), each with the same
    RSS figure and the fix "define it once, outside"; one problem, one finding."""
    found = analyze_records(_exports(14), "retrace_storm", episodes=True)
    assert [f.target for f in found] == ["tf.saved_model.save"], [f.title for f in found]
    (f,) = found
    assert f.title.startswith("the model is exported as a SavedModel every epoch (tf.saved_model.save"), (
        f.title
    )
    assert "`__call__`" in f.title and "`_traced_save`" in f.title and "of the time tracing" in f.title
    assert f.evidence["exports"] >= 12 and set(f.evidence["functions"]) >= {"__call__", "serving_default"}
    assert "export once, at the end" in f.hint and "define it once" not in f.hint, f.hint
    # Every third epoch: still the export's, said how often.
    (g,) = analyze_records(_exports(30, every=3), "retrace_storm", episodes=True)
    assert g.target == "tf.saved_model.save" and "times in" in g.title, g.title


def _loop_of_fits(fits: int, make: Any, *, new_models: bool = False) -> list[dict[str, Any]]:
    """Fits of one epoch each (fit_start, epoch, fit_end): make(k) gives fit k's functions."""
    out: list[dict[str, Any]] = [syn.run_start("loop")]
    t = syn.T0 + 1.0
    for k in range(fits):
        model = {"name": "m", "serial": k if new_models else 0}
        out.append({"type": "fit_start", "run_id": "loop", "t": t, "fit": k, "epochs": 1, "model": model})
        out.append(syn.epoch_record("loop", 0, t, 0.05, fit=k, **_retraces(make(k), build=0.01)))
        t += 0.08  # the round's work after the fit
        out.append({"type": "fit_end", "run_id": "loop", "t": t, "fit": k, "seconds": 0.05})
    out.append({"type": "run_end", "run_id": "loop", "t": t + 1, "ended": "completed"})
    return out


def test_a_function_traced_anew_before_each_fit_of_one_model_is_a_storm() -> None:
    """trieste#722: a `@tf.function` method of a new object each round, between 1-epoch fits
    of one model: every epoch is a fit's first, so each trace read as warm-up; said nothing."""
    keras_fns = {"one_step_on_data": 2, "multi_step_on_iterator": 1}

    def make(k: int) -> dict[str, Any]:
        fns: dict[str, Any] = {}
        if k == 0:
            fns = {n: {"new": c, "total": c, "causes": []} for n, c in keras_fns.items()}
        if k >= 1:
            fns["__call__"] = {"new": 1, "total": k, "causes": []}
        return fns

    found = analyze_records(_loop_of_fits(40, make), "retrace_storm")
    assert [f.target for f in found] == ["__call__"], [f.title for f in found]
    assert "fits of the same model" in found[0].title and "defined in the loop's body" in found[0].hint
    # One object (RS_ONCE=1): traced once, in the second fit: quiet.
    assert analyze_records(_loop_of_fits(40, lambda k: make(k) if k <= 1 else {}), "retrace_storm") == []

    # Keras' own functions traced in each fit's first epoch (compile() before each fit of
    # one model): warm-up, not a storm.
    def recompiled(k: int) -> dict[str, Any]:
        return {n: {"new": c, "total": c * (k + 1), "causes": []} for n, c in keras_fns.items()}

    assert analyze_records(_loop_of_fits(40, recompiled), "retrace_storm") == []
    # A new model each fit (and its function): models_in_loop's, not a storm as well.
    assert analyze_records(_loop_of_fits(40, make, new_models=True), "retrace_storm") == []


def _one_epoch_storm(*, intervals: bool) -> list[dict[str, Any]]:
    """minimalrl18's REINFORCE: one `@tf.function` update per episode of a new length, 40
    traces in the run's one (window) epoch while RSS rose 700 -> 1100 MiB (its intervals'
    `host.rss_bytes` say where it began)."""
    mib = syn.MIB
    out: list[dict[str, Any]] = [syn.run_start("one")]
    t = syn.T0 + 1.0
    if intervals:
        for k in range(10):
            out.append(
                {"type": "interval", "run_id": "one", "t": t + k, "epoch": 0, "index": k, "source": "auto",
                 "step": 4 * k + 4, "steps": 4, "seconds": 1.0, "host": {"rss_bytes": int((700 + 40 * k) * mib)}}
            )  # fmt: skip
    shape = {"arg": "states", "change": "shape", "was": "float32[10, 4]", "now": "float32[11, 4]"}
    fns = {"update": {"new": 40, "total": 40, "causes": [shape]}}
    out.append(
        syn.epoch_record(
            "one", 0, t, 10.0, source="auto", fit=None, steps=40, host=syn.host_block(1100 * mib),
            **_retraces(fns, build=2.0),
        )
    )  # fmt: skip
    out.append({"type": "run_end", "run_id": "one", "t": t + 11, "ended": "completed"})
    return out


def test_a_storm_in_the_runs_only_epoch_counts_the_memory_from_where_the_epoch_began() -> None:
    """minimalrl18 / jax803: a storm in a run's one epoch said no RSS (`rss_before` was the
    storm epoch's own end, so before == now), where a storm over epochs says "RSS +X"."""
    (f,) = _analyze(_one_epoch_storm(intervals=True))
    assert f.evidence["rss_before"] == 700 * syn.MIB and f.evidence["rss_now"] == 1100 * syn.MIB
    assert "RSS +400 MiB" in f.title, f.title
    # No interval, no sample: nothing says where the epoch began; nothing made up.
    (g,) = _analyze(_one_epoch_storm(intervals=False))
    assert "RSS +" not in g.title and g.evidence["rss_before"] == g.evidence["rss_now"], g.title


def _clients(n: int, rss_step: float) -> list[dict[str, Any]]:
    """flower700: a GradientTape loop building a model, SGD and `@tf.function` step per
    client; each new optimizer a fit (`source: "optimizer"`) of one automatic epoch, whose
    step traces once (no argument changes: a new function's first trace)."""
    mib = syn.MIB
    out: list[dict[str, Any]] = [syn.run_start("fed")]
    t = syn.T0 + 1.0
    for k in range(n):
        model = {"serial": k, "name": "SGD"}
        out.append(
            {"type": "fit_start", "run_id": "fed", "t": t, "fit": k, "source": "optimizer", "model": model}
        )
        fns = _first("train_step") if k == 0 else {"train_step": {"new": 1, "total": k + 1, "causes": []}}
        rss = 700 * mib + rss_step * k
        out.append(
            syn.epoch_record(
                "fed", k, t, 0.1, source="auto", fit=None, steps=16, epoch_source="new_model",
                host=syn.host_block(rss), **_retraces(fns, build=0.04),
            )
        )  # fmt: skip
        out.append({"type": "fit_end", "run_id": "fed", "t": t + 0.1, "fit": k, "source": "optimizer",
                    "steps": 16, "seconds": 0.1, "rss_bytes": int(rss)})  # fmt: skip
        t += 0.1
    out.append({"type": "run_end", "run_id": "fed", "t": t + 1, "ended": "completed"})
    return out


def test_a_step_made_anew_with_each_new_model_of_a_custom_loop_is_one_finding() -> None:
    """flower700: a critical retrace_storm and an info models_in_loop counted the same +47 MiB
    for one cause (a model and a step made per client). models_in_loop names the cause and
    carries the traces and their time."""
    found = analyze_records(_clients(48, 1.0 * syn.MIB), episodes=True)
    kinds = [f.kind for f in found]
    assert "retrace_storm" not in kinds and "models_in_loop" in kinds, [f.title for f in found]
    (f,) = [f for f in found if f.kind == "models_in_loop"]
    assert "1 new traced functions per fit" in f.title and "40% of the time tracing" in f.title, f.title
    assert f.severity == "warning" and f.evidence["graph_build_share"] >= 0.25
    # The RSS flat: the traces are still said, once.
    flat = analyze_records(_clients(48, 0.0), episodes=True)
    assert [g.kind for g in flat if g.kind in ("retrace_storm", "models_in_loop")] == ["models_in_loop"], [
        g.title for g in flat
    ]


def test_the_share_of_time_tracing_never_passes_the_whole() -> None:
    """kerasguide_jax RS_VARLEN=1 read as one step: its one epoch's record held the compiles
    that began before the epoch opened (2.65 s of builds in a 2.48 s epoch), said as "107%
    of the time tracing"."""

    def make(i: int) -> dict[str, Any]:
        c = {"arg": "data[0]", "change": "shape", "was": "float32[17, 784]", "now": "float32[25, 784]"}
        block = _retraces({"train_step": {"new": 8, "total": 8, "causes": [c]}}, build=2.65)
        return {"seconds": 2.48, "steps": 1, **block}

    (f,) = _analyze(syn.trace(1, make))
    assert f.evidence["graph_build_share_recent"] <= 1.0
    assert "100% of the time tracing" in f.title, f.title


def test_a_step_jitted_anew_each_epoch_is_not_blamed_on_shapes_it_compiled_before() -> None:
    """jax803 RS_BUCKET=1 RS_JIT_IN_LOOP=1: `jax.jit(lambda ...)` made at each epoch's start
    compiles the 4 bucket widths again every epoch; the fix said "pad to a few bucket
    sizes" (done already) for `ids` changing shape, compared with the last compile only."""
    widths = [32, 64, 96, 128]

    def make(i: int) -> dict[str, Any]:
        causes: list[dict[str, str]] = []
        for k, w in enumerate(widths):
            if i == 0 and k == 0:
                causes.append({"arg": "*", "change": "new", "was": "", "now": "first trace"})
            elif i == 0:
                was = f"int32[32, {widths[k - 1]}]"
                causes.append({"arg": "ids", "change": "shape", "was": was, "now": f"int32[32, {w}]"})
            else:
                now = f"float32[5000, 64], int32[32, {w}]"
                causes.append({"arg": "*", "change": "jitted_anew", "was": "compiled before", "now": now})
        return {"steps": 30, **_retraces({"<lambda>": {"new": 4, "total": 4 * i + 4, "causes": causes}})}

    records = syn.trace(20, make)
    records[0]["env"]["frameworks"] = ["jax"]
    (f,) = _analyze(records)
    assert f.evidence["change"] == "jitted_anew", f.evidence
    assert "jitted anew" in f.title and "`ids`" not in f.title, f.title
    assert "outside the loop" in f.hint and "bucket" not in f.hint, f.hint
