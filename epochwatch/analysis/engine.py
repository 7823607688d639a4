"""Turning per-epoch verdicts into findings: persistence, once per (kind, target), replay.

The same Engine runs online (one `step` per new epoch) and offline (`analyze` replays a
finished run epoch by epoch), so a report lists what the online analyzer reported, from
the epoch it would have reported it.

Findings of detectors with a `current` measure are episodes: once reported, the engine
keeps judging them (when their measure grew, and every EPISODE_RECHECK epochs); when the
problem has grown (its excess over the level before it doubled since the last report,
by a tenth at the run's end, or a higher severity), or its cause is newly named (a finding raised before enough epochs to test
one), it returns the finding again with
`update` n and fresh numbers, and when the measure is back near the level before the
problem for ENDED_HOLD evaluations (at the run's end, at the last one) it returns it once
more with `ended_epoch`. At the run's end a detector's `verdict` has the last word on each
of its episodes, ended or not (a slowdown's step that did not last, or what one that ended
cost), said as one more update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from epochwatch.analysis.detectors import Detector, all_detectors
from epochwatch.analysis.findings import (
    Finding,
    grew_since,
    newly_explained,
    newly_stopped,
    severity_rank,
    sort_findings,
)
from epochwatch.analysis.inference_advice import adapt
from epochwatch.analysis.run import Run
from epochwatch.analysis.series import number
from epochwatch.analysis.units import fmt_bytes
from epochwatch.analysis.view import RunAtEpoch

if TYPE_CHECKING:
    from epochwatch.analysis.restore.parents import ParentCache

# Offline replay evaluates every epoch of runs up to this long; longer runs every epoch of
# the first REPLAY_DENSE, then evenly spaced epochs (REPLAY_SPARSE more), and the last.
REPLAY_DENSE = 2000
REPLAY_SPARSE = 2000

Key = tuple[str, str | None]
ENDED_SHARE = 0.25  # ... and ended when at most this share of its excess over its base is left
ENDED_HOLD = 3  # for this many consecutive epochs (intervals never end one)
ENDED_SCAN = 64  # epochs looked back at most, when the hook's analysis skipped some
# Growth detectors whose harm is more growth: an episode their verdict at the run's end no
# longer finds stopped growing (a slowdown that stopped growing is still slow: not these).
STOPS = frozenset({"host_memory_growth", "gpu_memory_growth", "disk_growth"})
# ... and only when it all but stopped: over its newest STOP_POINTS points the measure rose
# by less than STOP_SHARE of what the finding's slope gives them (a verdict can also miss a
# growth that goes on: a window too long for the short-run rule, too short for the trend's).
# The fix of a growth that stopped starts with what that means (keras#12065's callback: its
# first two evaluate() calls built their functions, +51 MiB, then nothing; the fix said
# "something keeps a reference to data every epoch").
STOPPED_HINTS = {
    "host_memory_growth": "it stopped growing: memory that fills once and then holds (a cache, a buffer, "
    "the first evaluate() or predict() calls building their functions) is no leak, and its level is what "
    "matters now; if it grows again, or the level is too high: ",
    "gpu_memory_growth": "it stopped growing: device memory that fills once and then holds (the allocator's "
    "pool, a cache) is no leak, and its level is what matters now; if it grows again: ",
    "disk_growth": "it stopped growing: the directory filled and then held, and its size is what matters "
    "now; if it grows again: ",
}
STOP_POINTS = 3
STOP_SHARE = 0.25
EPISODE_RECHECK = 5  # a reported episode that did not grow is judged again every this many epochs


def _with_fit(view: RunAtEpoch, finding: Finding) -> Finding:
    """Every finding says which fit it is about: `evidence.fit`, the index (from 0) of the
    fit whose epochs (or intervals) it was judged on, where the run has fits."""
    if view.unit == "fit" or "fit" in finding.evidence:
        return finding
    fit = view.value("fit")
    if fit != fit:
        return finding
    return replace(finding, evidence={**finding.evidence, "fit": int(fit)})


def _first_fit(last: Finding) -> dict[str, int]:
    """Where a finding on a loop's fits was first seen: the newest fit (from 0) of its window,
    or of its count of fits (models_in_loop's `fits`)."""
    fits = last.evidence.get("fits")
    if isinstance(fits, list) and fits and isinstance(fits[-1], int):
        return {"first_fit": fits[-1]}
    if isinstance(fits, int) and not isinstance(fits, bool) and fits > 0:
        return {"first_fit": fits - 1}
    return {}


def _recovered_at(view: RunAtEpoch, index: int, last: Finding) -> tuple[str, dict[str, int]]:
    """Where an episode ended, in its own terms, counted as Keras counts (from 1): a finding on
    a loop's fits names the fit ("recovered at fit 14", `ended_fit` from 0), others the epoch,
    and in a run of several fits that epoch's fit ("recovered at fit 3, epoch 5")."""
    fit = view.value("fit", index)
    epoch = view.named(index)
    if view.unit == "interval":  # judged only at the run's end: its newest intervals are back
        return "the run's end", {"ended_point": index}
    if fit != fit:
        return epoch, {}
    if last.evidence.get("unit") == "fit" or "first_fit" in last.evidence or "fits" in last.evidence:
        return f"fit {int(fit) + 1}", {"ended_fit": int(fit)}
    if len(view.run.fits) > 1:  # a loop of fits: which fit's epoch
        return f"fit {int(fit) + 1}, {epoch}", {"ended_fit": int(fit)}
    return epoch, {}


class Engine:
    def __init__(self, detectors: Sequence[Detector] | None = None) -> None:
        self.detectors = tuple(all_detectors() if detectors is None else detectors)
        self._streaks: dict[Key, tuple[str, int]] = {}  # (its detector, epochs held in a row)
        self.evaluated = -1  # the newest point (epoch, interval) evaluated
        # Judge the points skipped since the last evaluation when a finding is on its way (see
        # step): the online analyzer's engines, whose evaluations skip epochs on a time budget.
        # The offline replay judges every epoch (a long run's sparse tail is its own approximation).
        self.catch_up = False
        self._quiet: dict[Key, int] = {}
        self._checked: dict[Key, int] = {}  # the newest epoch index each episode was looked at
        self._peak: dict[Key, float] = {}  # the highest current value of each episode
        self.emitted: dict[Key, Finding] = {}  # each finding as first reported
        self.latest: dict[Key, Finding] = {}  # ... and as last reported (episodes' updates)

    def interval_engine(self) -> Engine:
        """An engine for the run's sub-epoch intervals: the detectors that judge them, with
        streaks of their own, reporting into this engine's findings (one finding per kind
        and target, whichever unit saw it first; the other updates it)."""
        other = Engine([d for d in self.detectors if d.intervals])
        other.catch_up, other.emitted, other.latest = self.catch_up, self.emitted, self.latest
        return other

    def fit_engine(self) -> Engine:
        """The same for the run's fits as a sequence (unit "fit"), sharing the findings."""
        other = Engine([d for d in self.detectors if d.fits])
        other.emitted, other.latest = self.emitted, self.latest
        return other

    def done(self, kind: str, target: str | None) -> bool:
        return (kind, target) in self.emitted

    def _last_reported(self, kind: str, target: str | None) -> Finding | None:
        return self.latest.get((kind, target))

    def _settled(
        self, detector: Detector, view: RunAtEpoch, final: bool = False
    ) -> Callable[[str, str | None], bool]:
        """`view.done` for an episode detector: True for a reported episode that this
        evaluation cannot update, so the detector skips its costly judgement (most of a
        replay's time once a leak or a slowdown is found). It cannot update when it ended, or
        when its measure has not grown by UPDATE_GROWTH, except at every EPISODE_RECHECK-th
        epoch, where a graver severity or a newly named cause is looked for, and at the
        run's end, where the verdict's numbers become the end's."""
        current = detector.current
        assert current is not None
        recheck = final or view.last % EPISODE_RECHECK == 0

        def done(kind: str, target: str | None) -> bool:
            last = self.latest.get((kind, target))
            if last is None:
                return False
            if last.ended_epoch is not None:
                return True
            return not recheck and not grew_since(last, current(view, last))

        return done

    def step(
        self, view: RunAtEpoch, *, replay_only: bool | None = None, final: bool = False
    ) -> list[Finding]:
        """Evaluate the detectors on `view`; return the findings reported for the first time.

        replay_only: True runs only replay detectors, False only whole-run ones, None all.
        final: the run has ended; what holds now is reported without waiting for its
        persistence (there are no more epochs to wait for).

        Streaks count epochs, not evaluations: the hook's analysis skips epochs when its
        budget is spent, so when a detector has a finding not yet reported, the epochs
        skipped since the last evaluation are judged first (that detector only), and the
        finding is reported at the epoch `report`, which judges every epoch, reports it. (A
        finding that held only between two evaluations and at neither is not seen.)
        """
        new: list[Finding] = []
        view.final = final
        skipped = self._skipped(view) if self.catch_up and not final else range(0)
        for detector in self.detectors:
            if replay_only is not None and detector.replay != replay_only:
                continue
            found = self._detect(detector, view, final)
            if skipped and detector.replay and self._pending(detector, found):
                for index in skipped:
                    at = replace(view, end=index + 1)
                    new += self._judge(detector, at, self._detect(detector, at), final=False)
                found = self._detect(detector, view)  # again: the catch-up may have reported it
            new += self._judge(detector, view, found, final)
            if final and detector.name in STOPS:
                new.extend(self._stopped(detector, view, {f.key for f in found}))
            if detector.current is not None and (view.unit == "epoch" or (final and view.unit == "interval")):
                new.extend(self._ended(detector, view))
            if final and detector.verdict is not None and view.unit in ("epoch", "interval"):
                new.extend(self._verdicts(detector, view))
        view.done = self.done
        return new

    def _pending(self, detector: Detector, found: list[Finding]) -> bool:
        """Whether `detector` has a finding on its way to being reported: found now and not
        reported yet, or held at the last evaluation (its streak may have reached the
        persistence in the skipped epochs)."""
        return any(f.key not in self.emitted for f in found) or any(
            owner == detector.name for owner, _ in self._streaks.values()
        )

    def _skipped(self, view: RunAtEpoch) -> range:
        """The points (epochs, intervals) between the last evaluation and `view`'s newest,
        at most ENDED_SCAN of them, and only those the run still holds."""
        last, self.evaluated = self.evaluated, max(self.evaluated, view.last)
        if last < 0:
            return range(0)
        return range(max(last + 1, view.last - ENDED_SCAN + 1, view.series.offset), view.last)

    def _detect(self, detector: Detector, view: RunAtEpoch, final: bool = False) -> list[Finding]:
        view.reported = self.done
        view.last_reported = self._last_reported
        view.done = self.done if detector.current is None else self._settled(detector, view, final)
        found = detector.detect(view)
        if view.unit == "fit":  # a loop of fits: no window of inference calls
            return list(found)
        back = view.run.series.count - view.end if view.unit == "epoch" else 0
        return list(adapt(found, view.run.epochs, back, view.run.restores))  # inference windows' fixes

    def _judge(
        self, detector: Detector, view: RunAtEpoch, found: list[Finding], final: bool
    ) -> list[Finding]:
        """One evaluation of one detector: streaks, first reports and episode updates."""
        new: list[Finding] = []
        held: set[Key] = set()
        for finding in found:
            key = finding.key
            if key in self.emitted:
                if detector.current is not None and key not in held:
                    held.add(key)
                    updated = self._update(finding, final)
                    if updated is not None:
                        new.append(updated)
                continue
            if key in held:
                continue
            held.add(key)
            streak = self._streaks.get(key, ("", 0))[1] + 1
            self._streaks[key] = (detector.name, streak)
            need = detector.persistence if finding.hold is None else min(finding.hold, detector.persistence)
            if final or streak >= need:
                finding = _with_fit(view, finding)
                self.emitted[key] = finding
                self.latest[key] = finding
                self._note_peak(key, finding)
                new.append(finding)
        for key in [k for k, (owner, _) in self._streaks.items() if owner == detector.name and k not in held]:
            del self._streaks[key]
        return new

    def _update(self, finding: Finding, final: bool = False) -> Finding | None:
        """The finding again, as an update, when its problem grew since it was last reported
        (at the run's end, by FINAL_GROWTH: what `report` says is then what the run ended
        with, not what it was when first found)."""
        key = finding.key
        last = self.latest[key]
        if last.ended_epoch is not None:
            return None
        self._note_peak(key, finding)
        # The verdict judges anew: a plan EarlyStopping cut short, or a problem that stopped
        # (a storm with no new trace in its newest points: what it costs now is its severity).
        verdict = final and (_plan_voided(last, finding) or newly_stopped(last, finding))
        if not (
            grew_since(last, number(finding.evidence.get("current")), final)
            or severity_rank(finding.severity) > severity_rank(last.severity)
            or verdict
            or newly_explained(last, finding)
        ):
            return None
        # A problem that grew is no milder for the plan having less left to run: an update
        # keeps the severity said, unless the verdict judged it anew.
        milder = severity_rank(finding.severity) < severity_rank(last.severity)
        severity = last.severity if milder and not verdict else finding.severity
        base = last.evidence.get("base", finding.evidence.get("base"))  # the level before it began
        updated = replace(
            finding,
            severity=severity,
            epoch=last.epoch,
            as_of=finding.epoch,  # the title and evidence are this evaluation's
            update=last.update + 1,
            evidence={
                **finding.evidence,
                **({"base": base} if base is not None else {}),  # a count (retraces) has none
                **_first_fit(last),  # first seen and now: `epoch` and `as_of`
            },
        )
        self.latest[key] = updated
        return updated

    def _stopped(self, detector: Detector, view: RunAtEpoch, found: set[Key]) -> list[Finding]:
        """At the run's end: growth episodes of `detector` that its verdict on the whole run
        no longer finds stopped growing (a first epoch's cache fill, a warm-up read as a leak
        while it rose): said once more, as info, with the level they reached, for their
        projection no longer holds. They did not end: the memory is still held."""
        out: list[Finding] = []
        current = detector.current
        assert current is not None
        for key, last in list(self.latest.items()):
            if last.kind != detector.name or key in found or last.ended_epoch is not None:
                continue
            if last.evidence.get("unit", "epoch") != view.unit:
                continue  # judged on fits (or intervals): this view cannot see it
            if last.evidence.get("stopped_growing") or _still_growing(current, view, last):
                continue
            now = current(view, last)
            grew = grew_since(last, now, final=True)
            level = f"{now:.0f} files" if last.evidence.get("series") == "files" else fmt_bytes(now)
            tail = (
                f"it grew on to {level}, then stopped growing"
                if grew
                else "it stopped growing by the run's end"
            )
            said = last.evidence.get("consequence")  # a projection the stop made void
            head = last.title.removesuffix(f"; {said}") if isinstance(said, str) and said else last.title
            stopped = replace(
                last,
                severity="info",
                title=f"{head}; {tail}",
                hint=f"{STOPPED_HINTS.get(last.kind, STOPPED_HINTS['host_memory_growth'])}{last.hint}",
                update=last.update + 1,
                as_of=view.epoch_number(view.last),
                evidence={**last.evidence, "stopped_growing": True, **({"current": now} if grew else {})},
            )
            self.latest[key] = stopped
            out.append(stopped)
        return out

    def _verdicts(self, detector: Detector, view: RunAtEpoch) -> list[Finding]:
        """At the run's end: `detector`'s last word on each of its reported episodes, ended
        or not (Detector.verdict), said as one more update where it differs from the last."""
        assert detector.verdict is not None
        out: list[Finding] = []
        for key, last in list(self.latest.items()):
            if last.kind != detector.name:
                continue
            judged = detector.verdict(view, last)
            if judged is None or judged == last:
                continue
            judged = replace(judged, update=last.update + 1, as_of=view.epoch_number(view.last))
            self.latest[key] = judged
            out.append(judged)
        return out

    def _note_peak(self, key: Key, finding: Finding) -> None:
        now = number(finding.evidence.get("current"))
        if now == now and now > self._peak.get(key, float("-inf")):
            self._peak[key] = now

    def _ended(self, detector: Detector, view: RunAtEpoch) -> list[Finding]:
        """Episodes of `detector` whose measure is back near its base level (now ended).

        Quiet is counted in epochs, each epoch since the last evaluation looked at: the
        hook's analysis skips epochs when its time budget is spent (a loaded machine, tiny
        epochs), and an episode must end at the same epoch online as in `report`, which
        evaluates every one (an ending would otherwise wait for three more evaluations, and
        never be said if the run ended first)."""
        out: list[Finding] = []
        for key, last in list(self.latest.items()):
            # Still reported (a trailing window lags) but back at its base: it ended too.
            if last.ended_epoch is not None or last.kind != detector.name:
                continue
            if view.unit == "interval" and last.evidence.get("unit") != "interval":
                continue  # the intervals end only their own episodes, at the run's end
            first = self._checked.get(key, view.last - 1) + 1
            self._checked[key] = view.last
            since: int | None = None
            for index in range(max(first, view.last - ENDED_SCAN + 1), view.last + 1):
                at = view if index == view.last else replace(view, end=index + 1)
                since = self._quiet_until(key, last, detector, at)
                if since is not None:
                    break
            if since is None and view.final and self._quiet.get(key, 0) >= 1:
                # At the run's end no more epochs will come to hold it: back near its base
                # now (the measure is the median of the newest points) is its end.
                at, since = view, view.last - min(self._quiet[key], ENDED_HOLD) + 1
            if since is not None:
                epoch, when = at.epoch_number(since), _recovered_at(at, since, last)
                ended = replace(
                    last,
                    title=f"{last.title}; recovered at {when[0]}",
                    update=last.update + 1,
                    ended_epoch=epoch,
                    # The numbers stay those of the last report (one moment); `ended_epoch` apart.
                    evidence={**last.evidence, "ended_epoch": epoch, **when[1]},
                )
                self.latest[key] = ended
                out.append(ended)
        return out

    def _quiet_until(self, key: Key, last: Finding, detector: Detector, view: RunAtEpoch) -> int | None:
        """One more epoch of `key`'s episode looked at: the index of the epoch it ended, once
        it has been back near its base for ENDED_HOLD epochs in a row; else None."""
        assert detector.current is not None
        base = number(last.evidence.get("base"))
        now = detector.current(view, last)
        peak = self._peak.get(key, base)
        if now == now and now > peak:
            self._peak[key] = peak = now
        # Relative to the excess, never to the base: a leak of 7% over a large base that
        # keeps growing is not "back within 10%".
        limit = base + ENDED_SHARE * (peak - base)
        if not (base == base and now == now and now <= limit):
            self._quiet.pop(key, None)
            return None
        quiet = self._quiet.get(key, 0) + 1
        self._quiet[key] = quiet
        return view.last - ENDED_HOLD + 1 if quiet >= ENDED_HOLD else None


def _still_growing(current: Callable[[RunAtEpoch, Finding], float], view: RunAtEpoch, last: Finding) -> bool:
    """Whether `last`'s measure rose over the newest STOP_POINTS points by STOP_SHARE of
    what its slope gives them or more. TensorBoard logs growing 1.3 MiB every epoch of a
    16-epoch fit were said to have "stopped growing" when no rule found them at its end."""
    slope = number(last.evidence.get(f"slope_per_{view.unit}", last.evidence.get("slope_per_epoch")))
    back = min(STOP_POINTS, view.last - view.series.offset)
    if not (slope == slope and slope > 0) or back < 1:
        return False
    now, then = current(view, last), current(replace(view, end=view.end - back), last)
    return now == now and then == then and now - then >= STOP_SHARE * slope * back


def _plan_voided(last: Finding, now: Finding) -> bool:
    """`last` was judged by a fit's plan that the fit did not run to (its horizon is "as long
    again" now): its severity, graver or milder, is the run's verdict. A plan run to its end
    keeps what was said while it ran (nothing is left of it, which is no reason to say less)."""
    return (
        last.evidence.get("horizon") == "plan"
        and now.evidence.get("horizon") == "as long again"
        and now.severity != last.severity
    )


class FitReplay:
    """The run's fits judged as a sequence, in the order the online analyzer judges them:
    each fit's point before the next epoch's step (online: when that epoch comes), and at
    the run's end. Used by both the replay and OnlineAnalyzer, so they cannot differ."""

    def __init__(self, run: Run, engine: Engine, parents: ParentCache | None = None) -> None:
        self.run, self.engine, self.parents = run, engine, parents
        self.done = 0

    def until(self, epochs: int) -> list[Finding]:
        """Judge the fits that ended before epoch record number `epochs` came."""
        new: list[Finding] = []
        run = self.run
        dropped = run.fit_ends_dropped  # positions of fits a bounded run no longer keeps
        count = min(run.fit_series.count, dropped + len(run.fit_end_positions))
        self.done = max(self.done, dropped)
        while self.done < count and run.fit_end_positions[self.done - dropped] < epochs:
            self.done += 1
            if self.done >= 2:  # one fit is no sequence
                new += self.engine.step(self._view(self.done), replay_only=True)
        return new

    def final(self) -> list[Finding]:
        """The verdict on all the fits at the run's end, without waiting for persistence."""
        new = self.until(1 << 62)
        if self.done >= 2:
            new += self.engine.step(self._view(self.done), replay_only=True, final=True)
        return new

    def _view(self, end: int) -> RunAtEpoch:
        return RunAtEpoch(self.run.fit_view(), end, parents=self.parents, unit="fit")


def replay_points(n: int) -> Iterator[int]:
    """The `end`s at which a finished run of n epochs is evaluated (see REPLAY_*)."""
    if n <= REPLAY_DENSE:
        yield from range(1, n + 1)
        return
    yield from range(1, REPLAY_DENSE + 1)
    stride = max(1, -(-(n - REPLAY_DENSE) // REPLAY_SPARSE))
    end = REPLAY_DENSE
    while end + stride < n:
        end += stride
        yield end
    yield n


def analyze(
    run: Run,
    detectors: Sequence[Detector] | None = None,
    *,
    parents: ParentCache | None = None,
    episodes: bool = False,
) -> list[Finding]:
    """Every finding for a finished (or interrupted) run, most severe first.

    Replays the run epoch by epoch through the same Engine the online analyzer uses,
    then runs the whole-run detectors once on the complete run. `parents`: the caller's
    cache of parent runs (see RunAtEpoch), for callers that analyze many runs.
    episodes: each finding as it stood at the end (updated while its problem grew, with
    `ended_epoch` when it ended), what report and check show; else as first reported.
    """
    engine = Engine(detectors)
    intervals = engine.interval_engine()
    fits = FitReplay(run, engine.fit_engine(), parents)
    by_interval = run.interval_view()
    count = min(run.intervals.count, len(run.interval_positions))
    points = set(replay_points(count))
    done = 0

    def intervals_until(epochs: int) -> None:  # the intervals that came before epoch record `epochs`
        nonlocal done
        while done < count and run.interval_positions[done] < epochs:
            done += 1
            if done in points:
                view = RunAtEpoch(by_interval, done, parents=parents, unit="interval")
                intervals.step(view, replay_only=True)

    for end in replay_points(run.series.count):
        fits.until(end)
        intervals_until(end)
        engine.step(RunAtEpoch(run, end, parents=parents), replay_only=True)
    fits.until(1 << 62)
    intervals_until(1 << 62)
    if run.end is not None and (run.series.count or count):
        # The verdict on all the evidence at the run's end, without waiting for persistence.
        fits.final()
        if count:
            intervals.step(
                RunAtEpoch(by_interval, parents=parents, unit="interval"), replay_only=True, final=True
            )
        if run.series.count:
            engine.step(RunAtEpoch(run, parents=parents), replay_only=True, final=True)
    engine.step(RunAtEpoch(run, parents=parents), replay_only=False)
    return sort_findings(list((engine.latest if episodes else engine.emitted).values()))
