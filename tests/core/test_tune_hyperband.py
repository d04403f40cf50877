"""HyperBandScheduler (runtime.core.tune.hyperband): Ray's synchronous HyperBand, replayed."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runtime.core.tune import (
    CONTINUE,
    PAUSE,
    STOP,
    HyperBandScheduler,
    StopRequest,
    TrialView,
    TuneError,
)


def _score(quality: float, iteration: int) -> float:
    return quality * (1 - 0.7**iteration)


def _qualities(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.random(), 6) for _ in range(n)]


def _drive_ours(qualities: list[float], capacity: int, **kwargs: Any) -> list[Any]:
    hb = HyperBandScheduler(metric="score", mode="max", **kwargs)
    ids = [str(i) for i in range(len(qualities))]
    status = dict.fromkeys(ids, "PENDING")
    iters = dict.fromkeys(ids, 0)
    for tid in ids:
        hb.on_trial_add(tid)
    log: list[Any] = []
    for _ in range(2000):
        while sum(s == "RUNNING" for s in status.values()) < capacity:
            views = [TrialView(t, status[t]) for t in ids if status[t] in ("PENDING", "PAUSED")]
            chosen = hb.choose_trial_to_run(views)
            if chosen is None:
                break
            status[chosen] = "RUNNING"
        running = [t for t in ids if status[t] == "RUNNING"]
        if not running:
            break
        for tid in running:
            iters[tid] += 1
            result = {
                "training_iteration": iters[tid],
                "score": _score(qualities[int(tid)], iters[tid]),
            }
            decision = hb.on_trial_result(tid, result)
            stopped = [r.trial_id for r in hb.take_requests() if isinstance(r, StopRequest)]
            for other in stopped:
                status[other] = "TERMINATED"
            if decision == STOP:
                hb.on_trial_complete(tid, result)
                stopped += [r.trial_id for r in hb.take_requests() if isinstance(r, StopRequest)]
                for other in stopped:
                    status[other] = "TERMINATED"
                status[tid] = "TERMINATED"
            elif decision == PAUSE:
                status[tid] = "PAUSED"
            log.append((tid, iters[tid], decision, sorted(stopped)))
    return log


class _RayTrial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.status = "PENDING"
        self.is_saving = False
        self.last_result: dict[str, Any] = {}

    def __repr__(self) -> str:
        return self.trial_id


class _RayController:
    def __init__(self, scheduler: Any, trials: list[_RayTrial]) -> None:
        self.scheduler = scheduler
        self.trials = trials
        self.stopped: list[str] = []

    def get_trials(self) -> list[_RayTrial]:
        return self.trials

    def stop_trial(self, trial: _RayTrial) -> None:
        if trial.status in ("ERROR", "TERMINATED"):
            return
        if trial.status in ("PENDING", "PAUSED"):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        trial.status = "TERMINATED"
        self.stopped.append(trial.trial_id)


def _drive_ray(qualities: list[float], capacity: int, **kwargs: Any) -> list[Any]:
    schedulers = pytest.importorskip("ray.tune.schedulers", reason="ray.tune not importable")
    hb = schedulers.HyperBandScheduler(metric="score", mode="max", **kwargs)
    trials = [_RayTrial(str(i)) for i in range(len(qualities))]
    controller = _RayController(hb, trials)
    iters = {t.trial_id: 0 for t in trials}
    for trial in trials:
        hb.on_trial_add(controller, trial)
    log: list[Any] = []
    for _ in range(2000):
        while sum(t.status == "RUNNING" for t in trials) < capacity:
            chosen = hb.choose_trial_to_run(controller)
            if chosen is None:
                break
            chosen.status = "RUNNING"
        running = [t for t in trials if t.status == "RUNNING"]
        if not running:
            break
        for trial in running:
            tid = trial.trial_id
            iters[tid] += 1
            result = {
                "training_iteration": iters[tid],
                "score": _score(qualities[int(tid)], iters[tid]),
            }
            trial.last_result = result
            controller.stopped = []
            decision = hb.on_trial_result(controller, trial, result)
            if decision == STOP:
                trial_stops = list(controller.stopped)
                controller.stopped = []
                controller.stop_trial(trial)
                stopped = trial_stops + [s for s in controller.stopped if s != tid]
            else:
                stopped = list(controller.stopped)
                if decision == PAUSE:
                    trial.status = "PAUSED"
            log.append((tid, iters[tid], decision, sorted(stopped)))
    return log


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("capacity", [1, 3])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_t": 9, "reduction_factor": 3},
        {"max_t": 27, "reduction_factor": 3},
        {"max_t": 16, "reduction_factor": 2},
    ],
)
def test_hyperband_decides_as_rays(seed: int, capacity: int, kwargs: dict[str, Any]) -> None:
    qualities = _qualities(seed, 20)
    theirs = _drive_ray(qualities, capacity, **kwargs)
    ours = _drive_ours(qualities, capacity, **kwargs)
    assert ours == theirs
    assert any(d == STOP for _, _, d, _ in ours) and any(d == PAUSE for _, _, d, _ in ours)


def test_hyperband_halves_a_bracket_by_hand() -> None:
    hb = HyperBandScheduler(metric="acc", mode="max", max_t=3, reduction_factor=3)
    # two brackets: s=0 holds 2 trials for 3 iterations, s=1 holds 3 trials halved at 1
    for tid in ("a", "b", "c", "d", "e"):
        hb.on_trial_add(tid)
    assert hb.on_trial_result("a", {"training_iteration": 1, "acc": 0.1}) == CONTINUE
    assert hb.on_trial_result("c", {"training_iteration": 1, "acc": 0.5}) == PAUSE
    assert hb.on_trial_result("d", {"training_iteration": 1, "acc": 0.9}) == PAUSE
    # e completes the rung and is among the worse: it stops, c is stopped, d resumes
    assert hb.on_trial_result("e", {"training_iteration": 1, "acc": 0.2}) == STOP
    assert hb.take_requests() == [StopRequest("c")]
    views = [TrialView("d", "PAUSED"), TrialView("b", "PENDING")]
    assert hb.choose_trial_to_run(views) in ("b", "d")
    assert hb.num_stopped == 2


def test_hyperband_rejects_bad_settings() -> None:
    with pytest.raises(TuneError, match="max_t"):
        HyperBandScheduler(max_t=0)
    with pytest.raises(TuneError, match="reduction_factor"):
        HyperBandScheduler(reduction_factor=1)
    with pytest.raises(TuneError, match="metric"):
        HyperBandScheduler().on_trial_add("x")
