"""Tune trial schedulers: ASHA and MedianStoppingRule decisions, checked against Ray's own."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runtime.core import tune
from runtime.core.tune.schedulers import TrialView, nanpercentile


def _ray_schedulers() -> Any:
    try:
        from ray.tune import schedulers
    except ImportError:
        pytest.skip("ray.tune not importable")
    return schedulers


class _RayTrial:
    """The part of Ray's Trial its schedulers read."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.status = "RUNNING"

    def __repr__(self) -> str:
        return self.trial_id


class _RayController:
    """The part of Ray's TuneController MedianStoppingRule reads: the live trials."""

    def __init__(self, trials: list[_RayTrial]) -> None:
        self.trials = trials

    def get_live_trials(self) -> list[_RayTrial]:
        return [t for t in self.trials if t.status != "TERMINATED"]


def _curves(seed: int, trials: int, length: int, time_attr: str) -> list[tuple[str, dict]]:
    """Round-robin results of noisy learning curves, some trials shorter than others."""
    rng = random.Random(seed)
    rates = {f"t{i}": rng.uniform(0.05, 1.0) for i in range(trials)}
    lengths = {tid: rng.randint(length // 2, length) for tid in rates}
    events = []
    for step in range(1, length + 1):
        for tid, rate in rates.items():
            if step <= lengths[tid]:
                value = 1.0 - (1.0 - rate) ** step + rng.uniform(-0.05, 0.05)
                events.append((tid, {time_attr: step, "acc": value, "other": 1}))
    return events


def _drive(scheduler: Any, ray_scheduler: Any, events: list, waiting_every: int = 0) -> tuple:
    """Feed the same results to both; stop feeding a trial once it is stopped or finished."""
    trial_ids = sorted({tid for tid, _ in events}, key=lambda t: int(t[1:]))
    ray_trials = {tid: _RayTrial(tid) for tid in trial_ids}
    waiting_trial = _RayTrial("waiting")
    controller = _RayController([*ray_trials.values(), waiting_trial])
    for tid in trial_ids:
        scheduler.on_trial_add(tid)
        ray_scheduler.on_trial_add(controller, ray_trials[tid])
    final = {tid: index for index, (tid, _) in enumerate(events)}
    ours, theirs, done = [], [], set()
    for index, (tid, result) in enumerate(events):
        if tid in done:
            continue
        waiting = bool(waiting_every) and index % waiting_every == 0
        waiting_trial.status = "PENDING" if waiting else "TERMINATED"
        ours.append(scheduler.on_trial_result(tid, result, trials_waiting=waiting))
        theirs.append(ray_scheduler.on_trial_result(controller, ray_trials[tid], result))
        if ours[-1] == tune.STOP:
            done.add(tid)
        elif index == final[tid]:  # the curve ends: the trial completes, mid-run for others
            scheduler.on_trial_complete(tid, result)
            ray_scheduler.on_trial_complete(controller, ray_trials[tid], result)
            ray_trials[tid].status = "TERMINATED"
            done.add(tid)
    return ours, theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "min"},
        {"max_t": 27, "grace_period": 1, "reduction_factor": 3},
        {"max_t": 20, "grace_period": 2, "reduction_factor": 2},
        {"max_t": 16, "reduction_factor": 2, "stop_last_trials": False},
        {"max_t": 30, "grace_period": 3, "reduction_factor": 2.5, "time_attr": "steps"},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asha_decides_as_rays_async_hyperband(kwargs: dict, seed: int) -> None:
    schedulers = _ray_schedulers()
    settings = {"metric": "acc", "mode": "max", **kwargs}
    time_attr = settings.get("time_attr", "training_iteration")
    length = min(int(settings.get("max_t", 100)) + 2, 40)
    events = _curves(seed, trials=12, length=length, time_attr=time_attr)
    ours, theirs = _drive(
        tune.ASHAScheduler(**settings), schedulers.AsyncHyperBandScheduler(**settings), events
    )
    assert ours == theirs
    assert tune.STOP in ours and tune.CONTINUE in ours


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grace_period": 1},
        {"grace_period": 3, "min_samples_required": 2, "mode": "min"},
        {"grace_period": 2, "min_samples_required": 5, "min_time_slice": 3},
        {"grace_period": 2, "hard_stop": False},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_median_stopping_decides_as_rays(kwargs: dict, seed: int) -> None:
    schedulers = _ray_schedulers()
    settings = {"metric": "acc", "mode": "max", "time_attr": "training_iteration", **kwargs}
    events = _curves(seed, trials=8, length=12, time_attr="training_iteration")
    ours, theirs = _drive(
        tune.MedianStoppingRule(**settings),
        schedulers.MedianStoppingRule(**settings),
        events,
        waiting_every=3,
    )
    assert ours == theirs
    assert tune.CONTINUE in ours and len(set(ours)) > 1


def test_asha_default_settings_and_rungs_are_rays() -> None:
    scheduler = tune.ASHAScheduler(metric="acc", mode="max")
    assert [milestone for milestone, _ in scheduler.rungs()[0]] == [64, 16, 4, 1]
    assert scheduler._time_attr == "training_iteration" and scheduler._max_t == 100


def test_asha_hand_made_curves() -> None:
    scheduler = tune.ASHAScheduler(metric="acc", mode="max", max_t=4, reduction_factor=2)
    for tid in "ABCD":
        scheduler.on_trial_add(tid)
    at = lambda t, v: {"training_iteration": t, "acc": v}  # noqa: E731
    assert scheduler.on_trial_result("A", at(1, 1.0)) == tune.CONTINUE  # first at rung 1
    assert scheduler.on_trial_result("B", at(1, 2.0)) == tune.CONTINUE  # above cutoff 1.0
    assert scheduler.on_trial_result("C", at(1, 0.5)) == tune.STOP  # below median 1.5
    assert scheduler.on_trial_result("A", at(2, 1.2)) == tune.CONTINUE  # first at rung 2
    assert scheduler.on_trial_result("B", at(2, 1.1)) == tune.STOP  # below A's 1.2
    assert scheduler.on_trial_result("A", at(3, 0.0)) == tune.CONTINUE  # between rungs
    assert scheduler.on_trial_result("A", at(4, 9.0)) == tune.STOP  # max_t reached
    assert scheduler.num_stopped == 3


def test_median_stopping_hand_made_curves() -> None:
    rule = tune.MedianStoppingRule(
        time_attr="training_iteration", metric="loss", mode="min", grace_period=1,
        min_samples_required=2,
    )  # fmt: skip
    for tid in "ABC":
        rule.on_trial_add(tid)
    at = lambda t, v: {"training_iteration": t, "loss": v}  # noqa: E731
    for t in (1, 2):
        assert rule.on_trial_result("A", at(t, 1.0)) == tune.CONTINUE
        assert rule.on_trial_result("B", at(t, 3.0)) == tune.CONTINUE
    # at t=2 the others' running means are 1.0 and 3.0: median 2.0; C's best 2.5 is worse
    assert rule.on_trial_result("C", at(2, 2.5)) == tune.STOP
    assert rule.stopped_trials == {"C"}


def test_median_stopping_yields_to_waiting_trials_without_enough_samples() -> None:
    rule = tune.MedianStoppingRule(metric="acc", mode="max", grace_period=0)
    rule.on_trial_add("A")
    result = {"time_total_s": 5.0, "acc": 0.1}
    assert rule.on_trial_result("A", result) == tune.CONTINUE
    assert rule.on_trial_result("A", result, trials_waiting=True) == tune.PAUSE


@pytest.mark.parametrize(
    "make",
    [
        lambda: tune.ASHAScheduler(metric="acc", mode="max"),
        lambda: tune.MedianStoppingRule(metric="acc", mode="max"),
    ],
)
def test_a_result_without_the_metric_names_metric_and_keys(make: Any) -> None:
    scheduler = make()
    scheduler.on_trial_add("A")
    with pytest.raises(tune.MetricNotReportedError, match="'acc'.*'loss', 'training_iter"):
        scheduler.on_trial_result("A", {"training_iteration": 1, "loss": 0.3})


@pytest.mark.parametrize(
    "make",
    [
        lambda mode: tune.ASHAScheduler(metric="acc", mode=mode),
        lambda mode: tune.MedianStoppingRule(metric="acc", mode=mode),
        lambda mode: tune.FIFOScheduler(metric="acc", mode=mode),
    ],
)
def test_mode_must_be_min_or_max(make: Any) -> None:
    with pytest.raises(tune.TuneError, match="'min' or 'max'.*'maximum'"):
        make("maximum")


def test_scheduler_without_metric_or_mode_fails_on_trial_add() -> None:
    scheduler = tune.ASHAScheduler()
    with pytest.raises(tune.TuneError, match="without a valid `metric`"):
        scheduler.on_trial_add("A")
    assert scheduler.set_search_properties(None, "min")
    assert scheduler.metric == "_metric"  # Ray's DEFAULT_METRIC when only a mode is given
    scheduler.on_trial_add("A")
    assert not scheduler.set_search_properties("x", "max")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_t": 0}, "max_t"),
        ({"grace_period": 200}, "grace_period"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"brackets": 0}, "brackets"),
        ({"brackets": 2}, "pass rng"),
    ],
)
def test_asha_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(tune.TuneError, match=message):
        tune.ASHAScheduler(metric="acc", mode="max", **kwargs)


def test_asha_brackets_are_drawn_from_the_injected_rng() -> None:
    def assignment(seed: int) -> list[int]:
        scheduler = tune.ASHAScheduler(metric="a", mode="max", brackets=3, rng=random.Random(seed))
        for i in range(40):
            scheduler.on_trial_add(f"t{i}")
        return [scheduler._brackets.index(scheduler._trial_info[f"t{i}"]) for i in range(40)]

    assert assignment(5) == assignment(5)
    assert set(assignment(5)) == {0, 1, 2}


def test_fifo_chooses_pending_then_paused() -> None:
    fifo = tune.FIFOScheduler()
    views = [TrialView("a", "RUNNING"), TrialView("b", "PAUSED"), TrialView("c", "PENDING")]
    assert fifo.choose_trial_to_run(views) == "c"
    assert fifo.choose_trial_to_run(views[:2]) == "b"
    assert fifo.choose_trial_to_run(views[:1]) is None
    assert fifo.on_trial_result("a", {}) == tune.CONTINUE


def test_nanpercentile_is_numpys() -> None:
    np = pytest.importorskip("numpy")
    rng = random.Random(4)
    for size in range(1, 12):
        values = [rng.uniform(-5, 5) for _ in range(size)] + [float("nan")]
        for percent in (0, 25, 50, 66.6, 75, 100):
            assert nanpercentile(values, percent) == np.nanpercentile(values, percent)
