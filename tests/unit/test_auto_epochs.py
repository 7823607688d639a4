"""Automatic epochs (recorder/auto_epochs.py) on a real Recorder writing a real trace:
steps cut into windows, data passes, a new optimizer's fit records, the script's own
epochs winning, a Keras fit's steps left to the fit, inference windows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from epochwatch.integrations.data_passes import tf_pass_key
from epochwatch.integrations.dataset_graph import MAX_NODES
from epochwatch.integrations.optimizer_steps import marker, step_function_class, wrap_update
from epochwatch.recorder import Recorder
from epochwatch.recorder.pass_keys import PassKey
from tests.support import of_type, read_single_trace


class Optimizer:
    pass


def _recorder(tmp_path: Path, **env: str) -> Recorder:
    environ = {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    return Recorder(environ={**environ, **env})


def _epochs(tmp_path: Path, rec: Recorder) -> list[dict[str, Any]]:
    rec.finish("completed")
    return of_type(read_single_trace(tmp_path), "epoch")


def test_steps_without_a_pass_are_cut_into_windows_of_steps(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="4")
    opt = Optimizer()
    for _ in range(10):
        rec.auto.step(opt)
    epochs = _epochs(tmp_path, rec)
    assert [(e["epoch"], e["steps"], e["epoch_source"]) for e in epochs] == [
        (0, 4, "window_steps"),
        (1, 4, "window_steps"),
        (2, 2, "window_steps"),
    ]
    assert all(e["source"] == "auto" for e in epochs)


def test_a_window_of_time_when_steps_are_slow(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_SECONDS="0.05")
    opt = Optimizer()
    for _ in range(3):
        rec.auto.step(opt)
        time.sleep(0.06)
    assert [e["epoch_source"] for e in _epochs(tmp_path, rec)][:2] == ["window_time", "window_time"]


def test_the_dataset_that_fed_the_steps_cuts_passes(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="2")  # passes win over windows once seen
    opt, data, other = Optimizer(), object(), object()
    for _ in range(3):
        rec.auto.pass_started(data)
        for _ in range(5):
            rec.auto.step(opt)
        rec.auto.pass_started(other)  # a validation pass: no steps, not the feeder
    epochs = _epochs(tmp_path, rec)
    assert [e["epoch_source"] for e in epochs][-3:] == ["data_pass", "data_pass", "data_pass"]
    assert sum(e["steps"] for e in epochs) == 15


class Node:
    """A tf.data-like dataset: `_inputs()` lists what it was built from."""

    def __init__(self, *inputs: Any) -> None:
        self.inputs = list(inputs)

    def _inputs(self) -> list[Any]:
        return self.inputs


class Take(Node):
    pass


class Skip(Node):
    pass


class Zip(Node):
    pass


def _passes(tmp_path: Path, epoch_datasets: Any, steps: int = 5) -> list[dict[str, Any]]:
    """Three epochs of a loop whose `epoch_datasets()` gives (feeder, others) anew each
    epoch, keyed as data_passes keys tf.data passes."""
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="1000")
    opt = Optimizer()
    for _ in range(3):
        feeder, others = epoch_datasets()
        rec.auto.pass_started(feeder, tf_pass_key)
        for _ in range(steps):
            rec.auto.step(opt)
        for other in others:
            rec.auto.pass_started(other, tf_pass_key)
    return _epochs(tmp_path, rec)


def test_a_dataset_derived_anew_from_the_same_source_each_epoch_cuts_passes(tmp_path: Path) -> None:
    """pix2pix's `train_ds.enumerate()` each epoch: a new zip of a new counter and the same
    source; a validation set of its own source, derived anew too, is no pass of it."""
    source, val_source = Node(), Node()
    epochs = _passes(tmp_path, lambda: (Zip(Node(), Take(source)), [Zip(Node(), Take(val_source))]))
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(5, "data_pass")] * 3


def test_another_recipe_or_new_sources_are_other_datasets(tmp_path: Path) -> None:
    """`take` and `skip` of one source (train and validation split) are two datasets, and so
    is a fresh source each round (new data): no pass of the feeder is seen, no cut."""
    source = Node()
    epochs = _passes(tmp_path, lambda: (Take(source), [Skip(source)]))
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(5, "data_pass")] * 3
    epochs = _passes(tmp_path / "fresh", lambda: (Take(Node()), []))
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(15, "window_steps")]


def test_a_pass_key_falls_back_to_the_object(tmp_path: Path) -> None:
    """A dataset whose inputs cannot be read, or too many to walk, is keyed by itself."""

    class Broken(Node):
        def _inputs(self) -> list[Any]:
            raise RuntimeError("no inputs here")

    broken = Take(Broken())
    assert tf_pass_key(broken) is broken
    deep: Any = Node()
    for _ in range(MAX_NODES):
        deep = Take(deep)
    assert tf_pass_key(deep) is deep
    assert isinstance(tf_pass_key(Take(Node())), PassKey)


def test_each_new_optimizer_is_a_fit_of_its_own_with_its_memory_floor(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    for _ in range(3):
        opt = Optimizer()
        for _ in range(2):
            rec.auto.step(opt)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    starts, ends = of_type(records, "fit_start"), of_type(records, "fit_end")
    serials = [s["model"]["serial"] for s in starts]  # each optimizer its own model number
    assert (
        len(set(serials)) == 3
        and serials == sorted(serials)
        and all(s["source"] == "optimizer" for s in starts)
    )
    assert [e["steps"] for e in ends] == [2, 2, 2] and all(e["rss_bytes"] > 0 for e in ends)
    assert [e["epoch_source"] for e in of_type(records, "epoch")] == [
        "new_model",
        "new_model",
        "window_steps",
    ]


class _Var:  # a variable: what an update names, weakly referenced
    pass


def _adam_class(rec: Recorder) -> Any:
    """An optimizer class whose `apply(grads, trainable_variables)` the hook wraps, as it
    does Keras 3's: its updates are steps, and what it updates tells models apart."""
    from epochwatch.integrations.optimizer_steps import wrap_update

    class Adam:
        def apply(self, grads: Any, trainable_variables: Any = None) -> None:
            return None

    Adam.apply = wrap_update(Adam.apply, rec)  # type: ignore[method-assign]
    return Adam


def test_a_new_optimizer_for_the_same_variables_is_the_same_models_training(tmp_path: Path) -> None:
    """tensorflow#27120's workaround: a new Adam (and tf.function) each epoch for one model.
    Each new optimizer was a new model's fit: "19 fits of 19 models", and a fix to build the
    model once, which the script did. What an update names (its variables) tells them apart."""
    rec = _recorder(tmp_path)
    Adam = _adam_class(rec)
    model = [_Var(), _Var()]
    for _ in range(3):
        opt = Adam()
        for _ in range(2):
            opt.apply([1, 2], model)
    other = Adam()  # a new model: its own fit
    for _ in range(2):
        other.apply([1], [_Var()])
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "fit_end")] == [6, 2]
    assert len(of_type(records, "fit_start")) == 2
    # ... and the epochs say how often the optimizer was made anew (its state lost each time).
    assert sum(e.get("optimizers_replaced", 0) for e in of_type(records, "epoch")) == 2


def test_a_new_model_whose_variables_took_the_freed_ones_ids_is_a_new_fit(tmp_path: Path) -> None:
    """A loop that deletes its model before building the next: the new variables may take
    the freed ones' ids. The same ids name the same variables only while those are alive."""
    rec = _recorder(tmp_path)
    Adam = _adam_class(rec)
    first = [_Var(), _Var()]
    Adam().apply([1, 2], first)
    Adam().apply([1, 2], first)  # the same variables: the same fit
    rec.auto._variables = {s: tuple(_dead() for _ in refs) for s, refs in rec.auto._variables.items()}
    Adam().apply([1, 2], first)  # its ids again, but the fit's variables are gone: a new model
    rec.finish("completed")
    assert len(of_type(read_single_trace(tmp_path), "fit_start")) == 2


def _dead() -> Any:
    import weakref

    gone = _Var()
    ref = weakref.ref(gone)
    del gone
    return ref


def test_a_second_optimizer_of_the_same_training_is_the_same_step(tmp_path: Path) -> None:
    """An eager loop with two optimizers (a main head and an auxiliary one, a GAN's two):
    the second's first update cut a one-step first epoch and a second "fit", and each
    step counted twice (120 for 60)."""
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="10")
    Adam = _adam_class(rec)
    main, aux = [_Var(), _Var()], [_Var()]
    opt_main, opt_aux = Adam(), Adam()
    for _ in range(30):
        opt_main.apply([1, 2], main)
        opt_aux.apply([1], aux)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "epoch")] == [10, 10, 10]
    assert len(of_type(records, "fit_start")) == 1


def _wgan(tmp_path: Path, generator_first: bool) -> list[dict[str, Any]]:
    """LynnHo's WGAN-GP#4: the critic's Adam updates every batch, the generator's every fifth
    (n_critic), first or last in its group of five; 4 passes of 50 batches."""
    rec = _recorder(tmp_path)
    Adam = _adam_class(rec)
    critic, generator = [_Var(), _Var()], [_Var()]
    opt_d, opt_g = Adam(), Adam()
    data = object()
    for _ in range(4):
        rec.auto.pass_started(data)
        for batch in range(50):
            if generator_first and batch % 5 == 0:
                opt_g.apply([1], generator)
            opt_d.apply([1, 2], critic)
            if not generator_first and batch % 5 == 4:
                opt_g.apply([1], generator)
    rec.finish("completed")
    return read_single_trace(tmp_path)


def test_a_second_optimizer_updated_every_fifth_batch_is_the_same_training(tmp_path: Path) -> None:
    """The generator's first update at step 5 cut a five-step epoch and a second "fit", and
    both optimizers' updates counted (55-60 steps for 50 batches); with the generator first,
    the critic's were dropped (10 steps for 50 batches)."""
    for first in (False, True):
        records = _wgan(tmp_path / str(first), first)
        steps = [e["steps"] for e in of_type(records, "epoch")]
        assert len(of_type(records, "fit_start")) == 1, (first, steps)
        # The generator first: its first few updates counted, till the critic's showed more.
        assert steps[1:] == [50, 50, 50] and 45 <= steps[0] <= 50, (first, steps)


def test_a_new_model_a_few_steps_into_a_fit_is_a_fit_with_all_its_steps(tmp_path: Path) -> None:
    """A new optimizer over other variables 4 steps into a fit, and the first one never again:
    a new model's training (its first update, held, is its step)."""
    rec = _recorder(tmp_path)
    Adam = _adam_class(rec)
    models = [[_Var()] for _ in range(3)]
    for variables in models:
        opt = Adam()
        for _ in range(4):
            opt.apply([1], variables)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "fit_end")] == [4, 4, 4]
    assert sum(e["steps"] for e in of_type(records, "epoch")) == 12


def test_the_scripts_own_epoch_switches_automatic_epochs_off(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    opt = Optimizer()
    rec.auto.step(opt)
    rec.auto.switch_off()
    rec.begin_epoch(0, "loop")
    rec.auto.step(opt)  # no hook.step(): the update is the script's epoch's step
    rec.end_epoch()
    rec.auto.step(opt)  # between the script's epochs: nobody's
    epochs = _epochs(tmp_path, rec)
    assert [(e["source"], e.get("steps")) for e in epochs] == [("auto", 1), ("loop", 1)]


def test_a_step_function_in_the_scripts_own_epochs_counts_their_steps(tmp_path: Path) -> None:
    """`with hook.epoch(e):` around a `@tf.function` step that updates an optimizer (traced
    in the first epoch), no `hook.step()`: each call is a step of the epoch, with intervals
    and the step anchor fired at its step (explain's memory slices start there)."""
    from epochwatch.explain.anchor import STEPS

    rec = _recorder(tmp_path)
    update, step_class = _step_functions(rec)
    fn = Function(update)
    rec.auto.switch_off()  # hook.epoch() does this first
    fired: list[int] = []
    try:
        for n in range(3):
            rec.clock.period = 0.0 if n == 1 else 1e9  # an interval at every step of the second
            rec.begin_epoch(n, "loop")
            if n == 2:
                STEPS.arm(5, lambda: fired.append(len(rec._epoch.steps)))  # type: ignore[union-attr]
            for _ in range(8):
                fn()
            rec.end_epoch()
        assert STEPS.active and fired == [6]  # as the sixth step (batch 5) begins, as in a fit
    finally:
        STEPS.active = False
        STEPS.disarm()
    assert type(fn) is step_class
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e.get("steps") for e in of_type(records, "epoch")] == [8, 8, 8]
    assert all(e["step_seconds"]["median"] > 0 for e in of_type(records, "epoch"))
    assert len(of_type(records, "interval")) >= 6


def test_an_eager_update_in_the_scripts_own_epoch_ends_its_step(tmp_path: Path) -> None:
    """An eager loop's update comes after the step's forward pass and gradients (what a
    leak keeps is allocated there): its count is the next step's begin for the anchor."""
    from epochwatch.explain.anchor import STEPS

    rec = _recorder(tmp_path)
    opt, fired = Optimizer(), []
    rec.auto.switch_off()
    rec.begin_epoch(0, "loop")
    STEPS.arm(5, lambda: fired.append(len(rec._epoch.steps)))  # type: ignore[union-attr]
    try:
        for _ in range(8):
            rec.auto.step(opt)
    finally:
        STEPS.active = False
        STEPS.disarm()
    rec.end_epoch()
    assert fired == [5] and [e.get("steps") for e in _epochs(tmp_path, rec)] == [8]


def test_the_scripts_hook_step_in_its_own_epoch_wins_over_the_updates(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    opt = Optimizer()
    rec.auto.switch_off()
    rec.begin_epoch(0, "loop")
    rec.auto.step(opt)  # an update before the script's first hook.step(): dropped by it
    for _ in range(4):
        rec.step()
        rec.auto.step(opt)
    rec.end_epoch()
    assert [e.get("steps") for e in _epochs(tmp_path, rec)] == [4]


def test_a_keras_fits_steps_are_the_fits(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    update = wrap_update(lambda self, *a: "applied", rec)
    rec.begin_epoch(0, "keras", 0)
    assert update(Optimizer(), [1], [2]) == "applied"
    rec.end_epoch()
    epochs = _epochs(tmp_path, rec)
    assert [e["source"] for e in epochs] == ["keras"] and "epoch_source" not in epochs[0]


class Function:
    """tf.function's place: its body (an optimizer update when `updates`) runs while it is
    traced only, on the first call, or on every call when `retraces`."""

    tracing = False

    def __init__(self, update: Any, updates: bool = True, retraces: bool = False) -> None:
        self.update, self.updates, self.retraces, self.traced = update, updates, retraces, False

    def __call__(self) -> None:
        if self.traced and not self.retraces:
            return
        self.traced, Function.tracing = True, True
        try:
            if self.updates:
                self.update(Optimizer)
        finally:
            Function.tracing = False


def _step_functions(rec: Recorder) -> tuple[Any, type]:
    eager = lambda: not Function.tracing  # noqa: E731
    step_class = step_function_class(Function, rec, eager)
    return wrap_update(lambda self: None, rec, eager, marker(Function, step_class)), step_class


def test_a_step_function_counts_its_calls_not_its_trace(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    update, step_class = _step_functions(rec)
    fn, retraced, other = Function(update), Function(update, retraces=True), Function(update, updates=False)
    for _ in range(5):
        fn()
        other()
    assert type(fn) is step_class and type(other) is Function  # others keep TF's own call
    for _ in range(5):
        retraced()
    assert [e["steps"] for e in _epochs(tmp_path, rec)] == [10]  # one a call, traced or not


def test_a_fits_train_function_is_never_a_step_function(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    update, _ = _step_functions(rec)
    rec.begin_epoch(0, "keras", 0)
    train_function = Function(update)
    train_function()
    rec.end_epoch()
    rec.finish("completed")
    assert type(train_function) is Function  # a fit's steps cost it no wrapper


def test_a_fit_inside_an_unmarked_loop_ends_the_open_epoch_written(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    opt = Optimizer()
    for _ in range(3):
        rec.auto.step(opt)
    rec.begin_epoch(0, "keras", 0)  # e.g. a fine-tuning fit between loop passes
    rec.auto.step(opt)  # the fit's own step
    rec.end_epoch({"steps": 1})
    for _ in range(2):
        rec.auto.step(opt)
    epochs = _epochs(tmp_path, rec)
    assert [(e["source"], e["steps"], e.get("epoch_source")) for e in epochs] == [
        ("auto", 3, "fit"),
        ("keras", 1, None),
        ("auto", 2, "window_steps"),
    ]


def test_a_fit_on_the_loops_own_dataset_leaves_no_empty_epoch(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    opt, data = Optimizer(), object()
    for _ in range(2):
        rec.auto.pass_started(data)
        for _ in range(3):
            rec.auto.step(opt)
    rec.auto.pass_started(data)  # tf_keras' fit iterates the dataset before its first epoch
    rec.begin_epoch(0, "keras", 0)
    rec.end_epoch({"steps": 3})
    rec.auto.pass_started(data)
    rec.auto.step(opt)
    epochs = _epochs(tmp_path, rec)
    assert [(e["source"], e["epoch"], e["steps"]) for e in epochs] == [
        ("auto", 0, 3),
        ("auto", 1, 3),  # its pass ended where the fit's began
        ("keras", 0, 3),
        ("auto", 2, 1),  # numbered on: the pass the fit took was no epoch of ours
    ]


def test_the_scripts_hook_step_wins_over_the_updates(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.clock.period = 0.0  # an interval record at every step of the first epoch
    first, second = Optimizer(), Optimizer()
    for opt in (first, second):
        for _ in range(5):
            rec.step()  # hook.step() as each step begins
            rec.auto.step(opt)  # the same step's update
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert sum(e["steps"] for e in epochs) == 10, epochs  # each step once, not twice
    intervals = of_type(records, "interval")
    # One record a step begun, numbered by steps done (doubled steps would number 1..9).
    assert [(i["step"], i["steps"]) for i in intervals] == [(n, 1) for n in range(1, 6)], intervals
    assert [e["steps"] for e in of_type(records, "fit_end")] == [5, 5]  # models still told apart


def test_an_integrations_own_fit_start_gets_its_fit_end(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.auto.fit_records = False  # PyTorch: torch.py writes each optimizer's fit_start
    for _ in range(3):
        opt = Optimizer()
        index = rec.next_fit_index()
        rec.auto.adopt_fit(index)  # the pre-step hook, before the optimizer's first step
        rec.emit("fit_start", fit=index, source="torch.optim")
        for _ in range(2):
            rec.auto.step(opt)
    rec.finish("completed")
    fits = [(r["type"], r["fit"]) for r in read_single_trace(tmp_path) if r["type"].startswith("fit_")]
    assert fits == [(t, i) for i in range(3) for t in ("fit_start", "fit_end")]


def test_a_failing_step_switches_the_part_off_and_training_goes_on(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    update = wrap_update(lambda self: "applied", rec)

    def boom(owner: Any) -> None:
        raise RuntimeError("broken")

    rec.auto.step = boom  # type: ignore[method-assign]
    update = wrap_update(lambda self: "applied", rec)
    assert update(Optimizer()) == "applied" and rec.auto.off and rec.auto.broken
    assert "automatic epochs" in rec.guard.disabled_parts


def test_inference_calls_make_windows_and_a_closing_text(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="3")
    for _ in range(7):
        rec.auto.inference.called("predict", 0.01)
    assert rec.auto.inference.closing_text().startswith("no training seen: 7 predict calls, RSS ")  # type: ignore[union-attr]
    epochs = _epochs(tmp_path, rec)
    assert [e["inference"]["calls"] for e in epochs] == [3, 3, 1]
    assert all(e["epoch_source"] == "inference_calls" for e in epochs)


def test_a_rise_the_windows_were_too_few_to_judge_is_said_unjudged(tmp_path: Path, monkeypatch: Any) -> None:
    """tensorflow#40171 with load_model per request, 120 calls: "no training seen: 120 __call__
    calls, RSS +180 MiB; 3 windows of calls, no findings" read as judged and harmless."""
    from epochwatch.recorder import inference_calls

    rss = iter([700 * 2**20, 880 * 2**20])
    monkeypatch.setattr(inference_calls, "own_rss_bytes", lambda: next(rss))
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="3")
    for _ in range(7):
        rec.auto.inference.called("__call__", 0.01)
    text = rec.auto.inference.closing_text()
    assert (
        text
        == "no training seen: 7 __call__ calls, RSS +180 MiB (too few windows of calls to judge its growth: 2 of 6)"
    )
    rec.finish("completed")


def test_the_first_inputs_served_are_described_once_in_their_window(tmp_path: Path) -> None:
    """A restored model only serving (keras#13864): what it is fed is judged against what
    it was trained on, so the first call of 32 rows or more is described, once; calls of a
    row or two are not (a row's spread is 0), and after 8 tries no more are."""
    import numpy as np

    from epochwatch.integrations.inference import wrap_call

    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="3")

    class Model:
        def predict(self, x: Any) -> Any:
            return x

    Model.predict = wrap_call(Model.predict, "predict", rec)  # type: ignore[method-assign]
    model = Model()
    model.predict(np.ones((1, 4), dtype="float32"))  # too few rows to describe
    for _ in range(5):
        model.predict(np.full((64, 4), 3.0, dtype="float32"))
    epochs = _epochs(tmp_path, rec)
    stats = [e["inference"].get("input_stats") for e in epochs]
    assert stats[0] is not None and stats[0]["rows"] >= 32 and stats[1:] == [None], stats
    assert stats[0]["inputs"]["x"]["mean"] == [3.0] * 4
    one = _recorder(tmp_path / "rows", EPOCHWATCH_WINDOW_CALLS="3").auto.inference
    for _ in range(12):
        one.described({"rows": 1, "inputs": {}})
    assert one.inputs is None and not one.wants_inputs()  # 8 tries, then no more


def test_inference_calls_while_training_are_the_trainings(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.auto.inference.called("predict", 0.01)
    rec.auto.step(Optimizer())
    rec.auto.inference.called("evaluate", 0.01)
    assert rec.auto.inference.closing_text() is None
    epochs = _epochs(tmp_path, rec)
    # The call before the first step was the training's (a model called before its update).
    assert [e["epoch_source"] for e in epochs] == ["window_steps"]


def test_predict_calls_in_a_custom_loop_are_counted_into_its_epochs(tmp_path: Path) -> None:
    """tensorflow#40261: `model.predict(x[None])` per sample in an online-learning loop took
    99.6% of the time and no record said so. Once the loop trains, its predict/evaluate/
    predict_on_batch calls are counted into the epoch (`loop_inference`); its model calls are
    not (one a step), nor predict's own."""
    import numpy as np

    from epochwatch.integrations.inference import wrap_call

    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="4")

    class Model:
        def predict(self, x: Any) -> Any:
            return self(x)

        def evaluate(self, x: Any, y: Any = None) -> Any:
            return 0.0

        def __call__(self, x: Any) -> Any:
            return x

    for api in ("predict", "evaluate", "__call__"):
        setattr(Model, api, wrap_call(getattr(Model, api), api, rec))
    model, opt = Model(), Optimizer()
    model.predict(np.ones((1, 4)))  # before training: an inference window's, dropped at the first step
    for _ in range(6):
        model.predict(np.ones((1, 4)))
        model(np.ones((32, 4)))
        rec.auto.step(opt)
    model.evaluate(np.ones((3, 4)), np.ones(3))
    model.predict([np.ones((2, 4)), np.ones((2, 1))])
    epochs = _epochs(tmp_path, rec)
    blocks = [e.get("loop_inference") for e in epochs]
    assert [b and (b["calls"], b["apis"], b["rows"]) for b in blocks] == [
        (4, {"predict": 4}, 4),  # the calls before the first step are not its epoch's
        (3, {"predict": 2, "evaluate": 1}, 6),  # (the 4th step's epoch is cut at the 5th)
    ], blocks
    assert all(b["seconds"] >= 0 for b in blocks if b)
    assert "inference" not in epochs[0] and rec.auto.inference.total.get("predict", 0) == 0
    # A dataset's rows cannot be read: the epoch says none.
    other = _recorder(tmp_path / "ds")
    other.auto.step(opt)
    other.auto.inference.in_loop("predict", 0.5, None)
    other.auto.inference.in_loop("predict", 0.5, 1)
    (epoch,) = _epochs(tmp_path / "ds", other)
    assert epoch["loop_inference"] == {"calls": 2, "apis": {"predict": 2}, "seconds": 1.0}


def test_predict_calls_count_in_the_scripts_own_epochs_not_in_a_fits(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.auto.switch_off()  # the script marks its epochs (hook.epoch())
    inference = rec.auto.inference
    rec.begin_epoch(0, "loop")
    inference.in_loop("predict_on_batch", 0.25, 1)
    rec.begin_epoch(0, "keras", fit=0)  # a fit nested in it: its validation is its own
    inference.fit_began()
    inference.in_loop("evaluate", 0.25, 32)
    rec.end_epoch()
    inference.fit_ended()
    rec.end_epoch()
    inference.in_loop("predict", 0.25, 1)  # between the script's epochs: no epoch to count into
    keras, loop = _epochs(tmp_path, rec)
    assert "loop_inference" not in keras
    assert loop["loop_inference"] == {"calls": 1, "apis": {"predict_on_batch": 1}, "seconds": 0.25, "rows": 1}


def test_an_inference_runs_memory_and_slowdown_findings_get_the_inference_fixes() -> None:
    from epochwatch.analysis.findings import Finding
    from epochwatch.analysis.inference_advice import adapt

    found = [
        Finding("host_memory_growth", "warning", "grows", hint="training advice"),
        Finding("disk_growth", "info", "t"),
    ]
    inference = [{"epoch_source": "inference_calls"}]
    adapted = list(adapt(found, inference))
    assert "model(x, training=False)" in adapted[0].hint and adapted[1].hint == found[1].hint
    assert all(f.evidence["of_windows"] for f in adapted)  # "at window 3", not "epoch 3"
    assert list(adapt(found, [{"epoch_source": "data_pass"}])) == found
    # Windows after a fit: the advice follows the newest epoch judged, not the run's first.
    after_fit = [{"source": "keras"}, *inference]
    assert "model(x, training=False)" in next(adapt(found, after_fit)).hint
    assert list(adapt(found, after_fit, back=1)) == found
    # A server that loads its model for every request (tensorflow#40171): that is the fix.
    loads = [{"type": "restore", "path": "/srv/model.keras"}] * 3
    (memory, disk) = adapt(found, inference, restores=loads)
    assert "3 loads of /srv/model.keras" in memory.hint and "load it once, before the loop" in memory.hint
    assert disk.hint == found[1].hint
    assert "loads of" not in next(adapt(found, inference, restores=loads[:2])).hint


def test_a_call_before_training_never_starts_the_run(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.auto.inference.called("__call__", 0.01)  # e.g. a model built by calling it, then fit
    assert not rec.started
    rec.begin_epoch(0, "keras", 0)
    rec.auto.inference.called("evaluate", 0.01)  # the fit's validation
    rec.end_epoch()
    epochs = _epochs(tmp_path, rec)
    assert [e["source"] for e in epochs] == ["keras"] and rec.auto.inference.closing_text() is None


def test_calls_after_a_fit_are_windows_of_their_own(tmp_path: Path) -> None:
    """Train, then serve (tensorflow#33030): calls inside the fit are its own, calls after
    it are windows numbered from 0; the unfinished window at the run's end is dropped."""
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="3")
    inference = rec.auto.inference
    inference.called("__call__", 0.01)  # the model built by calling it: the training's
    inference.fit_began()
    rec.begin_epoch(0, "keras", 0)
    rec.end_epoch()
    inference.called("predict", 0.01)  # a callback's predict after the last epoch, in the fit
    inference.fit_ended()
    for _ in range(8):
        inference.called("predict", 0.01)
    assert inference.closing_text() is None
    epochs = _epochs(tmp_path, rec)
    assert [(e["source"], e["epoch"], e.get("epoch_source")) for e in epochs] == [
        ("keras", 0, None),
        ("auto", 0, "inference_calls"),
        ("auto", 1, "inference_calls"),
    ]
    assert [e["inference"]["calls"] for e in epochs[1:]] == [3, 3]


def test_a_loop_of_fit_and_evaluate_rounds_writes_no_window_per_round(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="3")
    inference = rec.auto.inference
    for fit in range(3):
        inference.fit_began()
        rec.begin_epoch(0, "keras", fit)
        rec.end_epoch()
        inference.fit_ended()
        for _ in range(2):  # fewer calls than a window: dropped by the next fit, or the end
            inference.called("evaluate", 0.01)
    assert [e["source"] for e in _epochs(tmp_path, rec)] == ["keras"] * 3


def test_a_custom_loops_validation_between_its_epochs_is_no_window(tmp_path: Path) -> None:
    """A loop that trained (its optimizer's steps, or its own epochs) stays blind: its
    validation outside an epoch cannot be told from serving."""
    for script_epochs in (False, True):
        rec = _recorder(tmp_path / str(script_epochs), EPOCHWATCH_WINDOW_CALLS="3")
        opt = Optimizer()
        for number in range(2):
            if script_epochs:
                rec.auto.switch_off()
                rec.begin_epoch(number, "loop")
            rec.auto.step(opt)
            if script_epochs:
                rec.end_epoch()
            for _ in range(4):
                rec.auto.inference.called("predict", 0.01)
        sources = {e.get("epoch_source") for e in _epochs(tmp_path / str(script_epochs), rec)}
        assert "inference_calls" not in sources


def test_a_model_called_on_symbolic_inputs_is_being_built_not_served() -> None:
    """pix2pix builds its GAN by calling the generator on `keras.Input`s: each call was taken
    for an inference call, and describing its inputs (slicing a KerasTensor) raised and
    switched the inference calls off for the whole run."""
    from epochwatch.integrations.inference import _symbolic

    KerasTensor = type("KerasTensor", (), {})
    assert _symbolic((KerasTensor(),), {}) and _symbolic(([KerasTensor(), 1],), {})
    assert _symbolic((), {"inputs": {"a": KerasTensor()}})
    assert not _symbolic(([[0.0, 1.0]],), {}) and not _symbolic((), {})


def test_a_tflite_interpreters_invokes_are_inference_calls(tmp_path: Path, monkeypatch: Any) -> None:
    """A TF Lite serving loop (`set_tensor`, `invoke`, `get_tensor`) calls no Keras model and
    no tf.function: it had no windows, and so nothing to judge its memory on."""
    import sys
    import types

    from epochwatch.integrations.inference import install_tflite

    class Interpreter:
        def invoke(self) -> None:
            return None

    module = types.ModuleType("fake_tflite_interpreter")
    module.Interpreter = Interpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_tflite_interpreter", module)
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_CALLS="4")
    install_tflite(rec, "fake_tflite_interpreter")
    install_tflite(rec, "fake_tflite_interpreter")  # once only
    interpreter = Interpreter()
    for _ in range(8):
        interpreter.invoke()
    epochs = _epochs(tmp_path, rec)
    assert [e["inference"]["apis"] for e in epochs] == [{"TFLite invoke": 4}] * 2


def test_a_custom_loops_fit_start_counts_the_clear_session_calls(tmp_path: Path, monkeypatch: Any) -> None:
    """flower700 RS_CLEAR=1: clear_session() before each client's model, counted by the Keras
    integration for Keras fits only; the custom loop's fit_start had none, so models_in_loop
    advised the clear_session() the script already called."""
    import sys
    import types

    from epochwatch.integrations.keras import count_clear_sessions
    from epochwatch.integrations.keras_fit import ModelLoop

    keras = types.ModuleType("fakekeras_cs")
    keras.backend = types.ModuleType("fakekeras_cs.backend")  # type: ignore[attr-defined]
    keras.backend.clear_session = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fakekeras_cs", keras)
    monkeypatch.setitem(sys.modules, "fakekeras_cs.backend", keras.backend)  # type: ignore[attr-defined]
    rec = _recorder(tmp_path)
    count_clear_sessions(rec, keras, ModelLoop())
    for _ in range(3):
        keras.backend.clear_session()  # type: ignore[attr-defined]
        opt = Optimizer()
        for _ in range(2):
            rec.auto.step(opt)
    rec.finish("completed")
    starts = of_type(read_single_trace(tmp_path), "fit_start")
    assert [s.get("clear_session_calls") for s in starts] == [1, 2, 3], starts


class Sized:
    """A dataset that says how many batches a pass holds (a DataLoader's len)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return self.batches


def test_a_new_iterator_for_each_step_cuts_no_epoch_and_is_counted(tmp_path: Path) -> None:
    """`next(iter(loader))` for each step (GM-NAS#4): each pass is dropped after one batch of
    its 50; they are no epochs (936 one-step "epochs" before), but counted, with the line."""
    rec = _recorder(tmp_path, EPOCHWATCH_WINDOW_STEPS="30")
    opt, loader = Optimizer(), Sized(50)
    for _ in range(45):
        rec.auto.pass_started(loader)
        rec.auto.step(opt)
    epochs = _epochs(tmp_path, rec)
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(30, "window_steps"), (15, "window_steps")]
    made = [e["new_iterators"] for e in epochs]
    # The first pass is the loop's own; the one made before the 31st step, in the first
    # window still: 44 in all, since the last record each.
    assert [m["count"] for m in made] == [30, 14], made
    assert made[0]["site"].startswith("test_auto_epochs.py:") and "test_a_new_iterator" in made[0]["site"]
    assert "seconds_to_step" not in made[0]  # counted as updates end: the step's work is in it


def test_passes_of_a_one_batch_dataset_or_of_unknown_size_are_epochs(tmp_path: Path) -> None:
    for name, data in (("one batch", Sized(1)), ("unknown", object())):
        rec = _recorder(tmp_path / name)
        opt = Optimizer()
        for _ in range(12):
            rec.auto.pass_started(data)
            rec.auto.step(opt)
        epochs = _epochs(tmp_path / name, rec)
        assert [e["steps"] for e in epochs] == [1] * 12, (name, epochs)
        assert not any("new_iterators" in e for e in epochs), name


def test_a_new_step_function_a_fits_length_in_is_a_new_model_with_all_its_steps(tmp_path: Path) -> None:
    """flower#700's FedAvg: a new model, optimizer and `@tf.function` step per client. A
    client's first step within CO_STEPS of the last client's start is held as maybe a second
    optimizer; its later calls (a step function's, which say nothing of what they update
    after its trace) never told it, and every second client's steps were dropped."""
    rec = _recorder(tmp_path)
    for client in range(4):
        step = Optimizer()  # each client's step function
        for n in range(6):
            if n == 0:  # its trace says what it updates, its later calls do not
                rec.auto.updating = frozenset({1000 * client + 1, 1000 * client + 2})
            rec.auto.step(step)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "fit_end")] == [6] * 4
    assert [e["steps"] for e in of_type(records, "epoch")] == [6] * 4
