"""PopulationBasedTraining (runtime.core.tune.pbt): Ray's exploit/explore decisions, replayed."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.core.tune import (
    CONTINUE,
    NOOP,
    PAUSE,
    ExploitRequest,
    Notice,
    PopulationBasedTraining,
    SaveRequest,
    TrialView,
    TuneError,
    uniform,
)
from runtime.core.tune.pbt import explore


def _score(config: dict[str, Any], iteration: int) -> float:
    return config["lr"] * 10 + config["bs"] / 100 + iteration * 0.01


MUTATIONS: dict[str, Any] = {"lr": lambda: 0.5, "bs": [16, 32, 64, 128]}
START = [
    {"lr": 0.1, "bs": 32},
    {"lr": 0.9, "bs": 16},
    {"lr": 0.4, "bs": 128},
    {"lr": 0.2, "bs": 64},
    {"lr": 0.7, "bs": 32},
]


def _drive_ours(seed: int, rounds: int, **kwargs: Any) -> list[Any]:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations=MUTATIONS,
        rng=random.Random(seed),
        **kwargs,
    )
    configs = {str(i): dict(c) for i, c in enumerate(START)}
    iters = dict.fromkeys(configs, 0)
    for tid, config in configs.items():
        pbt.on_trial_add(tid, config)
    log: list[Any] = []
    for _ in range(rounds):
        for tid in configs:
            iters[tid] += 1
            result = {"training_iteration": iters[tid], "score": _score(configs[tid], iters[tid])}
            decision = pbt.on_trial_result(tid, result)
            events: list[Any] = []
            for request in pbt.take_requests():
                if isinstance(request, SaveRequest):
                    pbt.on_trial_saved(request.trial_id, f"ckpt-{request.trial_id}-{iters[tid]}")
                    events.append(("save", request.trial_id))
                elif isinstance(request, ExploitRequest):
                    configs[tid] = dict(request.config)
                    iters[tid] = request.result["training_iteration"]
                    events.append(("exploit", tid, request.clone_from, request.checkpoint))
            log.append((tid, decision, events, dict(configs[tid])))
    return log


class _RayTrial:
    def __init__(self, trial_id: str, config: dict[str, Any]) -> None:
        self.trial_id = trial_id
        self.config = config
        self.status = "RUNNING"
        self.experiment_tag = trial_id
        self.evaluated_params: dict[str, Any] = {}
        self.checkpoint = None
        self.temporary_state = SimpleNamespace(saving_to=None)
        manager = SimpleNamespace(
            checkpoint_config=SimpleNamespace(num_to_keep=None), _latest_checkpoint_result=None
        )
        self.run_metadata = SimpleNamespace(checkpoint_manager=manager)

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")

    def set_experiment_tag(self, tag: str) -> None:
        self.experiment_tag = tag

    def set_config(self, config: dict[str, Any]) -> None:
        self.config = config

    def __repr__(self) -> str:
        return self.trial_id


class _RayController:
    def __init__(self, trials: list[_RayTrial]) -> None:
        self.trials = trials
        self.search_alg = None
        self.saves: list[str] = []
        self.iters: dict[str, int] = {}

    def get_trials(self) -> list[_RayTrial]:
        return self.trials

    def get_live_trials(self) -> list[_RayTrial]:
        return [t for t in self.trials if not t.is_finished()]

    def _schedule_trial_save(self, trial: _RayTrial, result: dict[str, Any]) -> str:
        self.saves.append(trial.trial_id)
        return f"ckpt-{trial.trial_id}-{self.iters[trial.trial_id]}"

    def pause_trial(self, trial: _RayTrial, should_checkpoint: bool = True) -> None:
        trial.status = "PAUSED"


def _drive_ray(seed: int, rounds: int, **kwargs: Any) -> list[Any]:
    schedulers = pytest.importorskip("ray.tune.schedulers", reason="ray.tune not importable")
    random.seed(seed)
    pbt = schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations=MUTATIONS,
        log_config=False,
        **kwargs,
    )
    trials = [_RayTrial(str(i), dict(c)) for i, c in enumerate(START)]
    controller = _RayController(trials)
    controller.iters = {t.trial_id: 0 for t in trials}
    for trial in trials:
        pbt.on_trial_add(controller, trial)
    log: list[Any] = []
    for _ in range(rounds):
        for trial in trials:
            tid = trial.trial_id
            controller.iters[tid] += 1
            it = controller.iters[tid]
            result = {"training_iteration": it, "score": _score(trial.config, it)}
            controller.saves = []
            decision = pbt.on_trial_result(controller, trial, result)
            events: list[Any] = [("save", s) for s in controller.saves]
            if trial.status == "PAUSED":  # exploited: resume from the clone's checkpoint
                latest = trial.run_metadata.checkpoint_manager._latest_checkpoint_result
                source = latest.checkpoint.split("-")[1]
                controller.iters[tid] = latest.metrics["training_iteration"]
                events.append(("exploit", tid, source, latest.checkpoint))
                trial.status = "RUNNING"
            log.append((tid, decision, events, dict(trial.config)))
    return log


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"quantile_fraction": 0.5, "resample_probability": 0.5}, {"burn_in_period": 3}],
)
def test_pbt_decides_as_rays(seed: int, kwargs: dict[str, Any]) -> None:
    theirs = _drive_ray(seed, 12, **kwargs)
    ours = _drive_ours(seed, 12, **kwargs)
    assert ours == theirs
    assert any(events and events[-1][0] == "exploit" for _, _, events, _ in ours)


def test_pbt_warns_when_the_clone_has_no_checkpoint() -> None:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=1,
        hyperparam_mutations={"lr": [0.1, 0.2]},
        rng=random.Random(0),
    )
    for tid in ("a", "b"):
        pbt.on_trial_add(tid, {"lr": 0.1})
    assert pbt.on_trial_result("a", {"training_iteration": 1, "score": 2.0}) == CONTINUE
    assert pbt.on_trial_result("b", {"training_iteration": 1, "score": 1.0}) == CONTINUE
    requests = pbt.take_requests()
    assert requests[0] == SaveRequest("a") or isinstance(requests[0], Notice)
    pbt.on_trial_saved("a", None)  # a function trainable that never reported a checkpoint
    assert pbt.on_trial_result("b", {"training_iteration": 2, "score": 1.0}, True) == PAUSE
    notices = [r for r in pbt.take_requests() if isinstance(r, Notice)]
    assert notices and "no checkpoint for trial a" in notices[0].message


def test_pbt_exploit_returns_noop_and_fills_missing_keys() -> None:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="loss",
        mode="min",
        perturbation_interval=1,
        hyperparam_mutations={"lr": uniform(0, 1), "opt": ["sgd", "adam"]},
        rng=random.Random(3),
    )
    configs = [{}, {}]
    for i, config in enumerate(configs):
        pbt.on_trial_add(str(i), config)
    assert all(0 <= c["lr"] < 1 and c["opt"] in ("sgd", "adam") for c in configs)
    pbt.on_trial_result("0", {"training_iteration": 1, "loss": 0.1})
    pbt.on_trial_result("1", {"training_iteration": 1, "loss": 0.9})  # 0 has no checkpoint yet
    assert [type(r) for r in pbt.take_requests()] == [Notice]
    pbt.on_trial_result("0", {"training_iteration": 2, "loss": 0.1})
    assert pbt.take_requests() == [SaveRequest("0")]
    pbt.on_trial_saved("0", "ckpt0")
    assert pbt.on_trial_result("1", {"training_iteration": 2, "loss": 0.9}) == NOOP
    (exploit,) = [r for r in pbt.take_requests() if isinstance(r, ExploitRequest)]
    assert exploit.trial_id == "1" and exploit.clone_from == "0" and exploit.checkpoint == "ckpt0"
    assert pbt.num_perturbations == 1


def test_explore_rules() -> None:
    rng = random.Random(5)
    new, ops = explore({"n": 10, "flag": True}, {"n": lambda: 3}, 0.0, (1.2, 0.8), None, rng)
    assert new["n"] in (12, 8) and ops["n"] in ("* 1.2", "* 0.8")
    new, ops = explore({"c": "x"}, {"c": ["a", "b"]}, 0.0, (1.2, 0.8), None, rng)
    assert new["c"] in ("a", "b") and ops["c"] == "resample"  # not in the list: resampled


# --- synchronous PBT ------------------------------------------------------------------------

SYNC_MAX_ITER = 12


def _sync_result(config: dict[str, Any], iteration: int) -> dict[str, Any]:
    return {"training_iteration": iteration, "score": _score(config, iteration)}


def _drive_sync_ours(seed: int, slots: int, **kwargs: Any) -> tuple[list[Any], int]:
    """Run 5 trials, `slots` at a time, through our synchronous PBT; the event log."""
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=3,
        hyperparam_mutations=MUTATIONS,
        synch=True,
        rng=random.Random(seed),
        **kwargs,
    )
    ids = [str(i) for i in range(len(START))]
    configs = {tid: dict(c) for tid, c in zip(ids, START, strict=True)}
    status = dict.fromkeys(ids, "PENDING")
    iters = dict.fromkeys(ids, 0)
    checkpoints: dict[str, str] = {}
    for tid in ids:
        pbt.on_trial_add(tid, configs[tid])
    running: list[str] = []
    log: list[Any] = []
    for _ in range(400):
        while len(running) < slots:
            views = [TrialView(t, status[t]) for t in ids]
            chosen = pbt.choose_trial_to_run(views)
            if chosen is None:
                break
            if iters[chosen] >= SYNC_MAX_ITER:  # resumed after its last result: it ends
                status[chosen] = "TERMINATED"
                pbt.on_trial_complete(chosen, {})
                log.append((chosen, "complete"))
                continue
            status[chosen] = "RUNNING"
            running.append(chosen)
        if not running:
            break
        tid = running.pop(0)
        iters[tid] += 1
        decision = pbt.on_trial_result(tid, _sync_result(configs[tid], iters[tid]))
        if decision in (PAUSE, NOOP):
            status[tid] = "PAUSED"
            checkpoints[tid] = f"ckpt-{tid}-{iters[tid]}"
        events: list[Any] = []
        while requests := pbt.take_requests():
            for request in requests:
                if isinstance(request, SaveRequest):
                    target = request.trial_id
                    pbt.on_trial_saved(
                        target, checkpoints.get(target) or f"ckpt-{target}-{iters[target]}"
                    )
                elif isinstance(request, ExploitRequest):
                    target = request.trial_id
                    if target in running:
                        running.remove(target)
                    status[target] = "PAUSED"
                    configs[target] = dict(request.config)
                    iters[target] = request.result["training_iteration"]
                    checkpoints[target] = request.checkpoint
                    events.append(("exploit", target, request.clone_from, request.checkpoint))
        if status[tid] == "RUNNING":
            if iters[tid] >= SYNC_MAX_ITER:
                status[tid] = "TERMINATED"
                pbt.on_trial_complete(tid, {})
            else:
                running.append(tid)
        events.sort()  # the Ray side finds exploits by scanning the trials
        log.append((tid, iters[tid], decision, events, {t: dict(c) for t, c in configs.items()}))
    return log, pbt.num_checkpoints


def _drive_sync_ray(seed: int, slots: int, **kwargs: Any) -> tuple[list[Any], int]:
    """The same run through Ray's PopulationBasedTraining(synch=True)."""
    schedulers = pytest.importorskip("ray.tune.schedulers", reason="ray.tune not importable")
    random.seed(seed)
    pbt = schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=3,
        hyperparam_mutations=MUTATIONS,
        synch=True,
        log_config=False,
        **kwargs,
    )
    trials = [_RayTrial(str(i), dict(c)) for i, c in enumerate(START)]
    for trial in trials:
        trial.status = "PENDING"
    by_id = {t.trial_id: t for t in trials}
    controller = _RayController(trials)
    controller.iters = {t.trial_id: 0 for t in trials}
    iters = controller.iters
    for trial in trials:
        pbt.on_trial_add(controller, trial)
    running: list[str] = []
    log: list[Any] = []
    for _ in range(400):
        while len(running) < slots:
            chosen = pbt.choose_trial_to_run(controller)
            if chosen is None:
                break
            if iters[chosen.trial_id] >= SYNC_MAX_ITER:
                chosen.status = "TERMINATED"
                pbt.on_trial_complete(controller, chosen, {})
                log.append((chosen.trial_id, "complete"))
                continue
            chosen.status = "RUNNING"
            running.append(chosen.trial_id)
        if not running:
            break
        tid = running.pop(0)
        trial = by_id[tid]
        iters[tid] += 1
        decision = pbt.on_trial_result(controller, trial, _sync_result(trial.config, iters[tid]))
        events: list[Any] = []
        for other in trials:  # exploited: trials whose latest checkpoint PBT replaced
            manager = other.run_metadata.checkpoint_manager
            latest = manager._latest_checkpoint_result
            if latest is None:
                continue
            manager._latest_checkpoint_result = None
            if other.trial_id in running:
                running.remove(other.trial_id)
            other.status = "PAUSED"
            iters[other.trial_id] = latest.metrics["training_iteration"]
            other.checkpoint = latest.checkpoint
            source = latest.checkpoint.split("-")[1]
            events.append(("exploit", other.trial_id, source, latest.checkpoint))
        if decision == "PAUSE":
            trial.status = "PAUSED"
            trial.checkpoint = f"ckpt-{tid}-{iters[tid]}"
        if decision == "NOOP":
            decision = PAUSE  # twinray returns PAUSE for an exploited trial (paused alike)
        if trial.status == "RUNNING":
            if iters[tid] >= SYNC_MAX_ITER:
                trial.status = "TERMINATED"
                pbt.on_trial_complete(controller, trial, {})
            else:
                running.append(tid)
        events.sort()
        log.append(
            (tid, iters[tid], decision, events, {t.trial_id: dict(t.config) for t in trials})
        )
    return log, pbt._num_checkpoints


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("slots", [1, 2, 5])
@pytest.mark.parametrize("kwargs", [{}, {"quantile_fraction": 0.5, "burn_in_period": 4}])
def test_synchronous_pbt_decides_as_rays(seed: int, slots: int, kwargs: dict[str, Any]) -> None:
    theirs, their_saves = _drive_sync_ray(seed, slots, **kwargs)
    ours, our_saves = _drive_sync_ours(seed, slots, **kwargs)
    assert ours == theirs
    assert our_saves == their_saves
    assert any(entry[3] for entry in ours if len(entry) > 2)  # some exploits happened
    decisions = {entry[2] for entry in ours if len(entry) > 2}
    assert decisions == {CONTINUE, PAUSE}  # synchronous: every perturbation pauses


def test_synchronous_pbt_waits_for_the_whole_population() -> None:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [0.1, 0.2, 0.3]},
        synch=True,
        rng=random.Random(1),
    )
    for tid, lr in (("a", 0.1), ("b", 0.3)):
        pbt.on_trial_add(tid, {"lr": lr})
    assert pbt.on_trial_result("a", {"training_iteration": 1, "score": 1.0}) == CONTINUE
    assert pbt.on_trial_result("a", {"training_iteration": 2, "score": 1.0}) == PAUSE
    assert pbt.take_requests() == []  # b has not reached iteration 2: nothing ranked yet
    views = [TrialView("a", "PAUSED"), TrialView("b", "RUNNING")]
    assert pbt.choose_trial_to_run(views) is None  # a waits at the perturbation time
    assert pbt.on_trial_result("b", {"training_iteration": 2, "score": 5.0}) == PAUSE
    assert pbt.take_requests() == [SaveRequest("b")]  # top first; exploits wait for it
    pbt.on_trial_saved("b", "ckpt-b")
    (exploit,) = pbt.take_requests()
    assert isinstance(exploit, ExploitRequest)
    assert (exploit.trial_id, exploit.clone_from, exploit.checkpoint) == ("a", "b", "ckpt-b")
    assert pbt.choose_trial_to_run([TrialView("a", "PAUSED"), TrialView("b", "PAUSED")]) == "a"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "at least one of"),
        ({"hyperparam_mutations": {"a": [1]}, "quantile_fraction": 0.7}, "quantile_fraction"),
        ({"hyperparam_mutations": {"a": [1]}, "perturbation_interval": 0}, "perturbation_interval"),
        ({"hyperparam_mutations": {"a": 3}}, "must be either"),
    ],
)
def test_pbt_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TuneError, match=message):
        PopulationBasedTraining(rng=random.Random(0), **kwargs)
