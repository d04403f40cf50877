"""One Tune scheduler, two worlds: the same learning curves give the same decisions for real and simulated."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

import runtime as ray
from runtime import tune
from runtime.core.tune.schedulers import TrialScheduler

EPOCHS = 9
#: metric per trial (row) per iteration (column): curves that cross, plateau and dip, so
#: early and late rankings differ and every scheduler has real choices to make
CURVES: list[list[float]] = [
    [round(a * (1 - 0.6**t) + b * t / EPOCHS + c * (t % 3 == 0), 4) for t in range(1, EPOCHS + 1)]
    for a, b, c in [
        (0.30, 0.50, 0.00),
        (0.80, 0.00, 0.00),
        (0.10, 0.70, 0.05),
        (0.60, 0.10, -0.05),
        (0.20, 0.20, 0.00),
        (0.75, 0.05, 0.02),
        (0.40, 0.40, 0.00),
        (0.05, 0.90, 0.00),
        (0.50, 0.25, -0.02),
    ]
]

Decision = tuple[int, int, str]
"""(curve row of the trial, training_iteration, the scheduler's decision)."""


def _recording(cls: type, log: list[Decision]) -> type:
    """`cls` with every on_trial_result decision appended to `log` (keyed by curve row)."""

    class Recording(cls):  # type: ignore[misc, valid-type]
        def on_trial_result(
            self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
        ) -> str:
            decision = super().on_trial_result(trial_id, result, trials_waiting)
            log.append((int(result["config/curve"]), int(result["training_iteration"]), decision))
            return decision

    return Recording


SCHEDULERS: dict[str, tuple[Callable[[type], TrialScheduler], dict[str, Any]]] = {
    # name: (build the real scheduler from its class, the simulated workload's fields)
    "asha": (
        lambda cls: cls(max_t=EPOCHS, grace_period=1, reduction_factor=3),
        {"trial_scheduler": "asha", "grace_period": 1, "reduction_factor": 3},
    ),
    "hyperband": (
        lambda cls: cls(max_t=EPOCHS, reduction_factor=3),
        {"trial_scheduler": "hyperband", "reduction_factor": 3},
    ),
    "median_stopping": (
        lambda cls: cls(time_attr="training_iteration", grace_period=2, min_samples_required=3),
        {"trial_scheduler": "median_stopping", "grace_period": 2, "min_samples_required": 3},
    ),
}
CLASSES: dict[str, type] = {
    "asha": tune.schedulers.ASHAScheduler,
    "hyperband": tune.schedulers.HyperBandScheduler,
    "median_stopping": tune.schedulers.MedianStoppingRule,
}


@pytest.fixture(scope="module")
def one_slot():
    """A runtime with one CPU: one trial at a time, so results arrive in a fixed order."""
    ray.init(num_cpus=1)
    yield
    ray.shutdown()


def _follow_curve(config: dict[str, Any]) -> None:
    """Report the trial's curve, one value per iteration, resuming from its checkpoint."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "t")) as f:
            start = int(f.read())
    for t in range(start, EPOCHS):
        directory = tempfile.mkdtemp()
        with open(os.path.join(directory, "t"), "w") as f:
            f.write(str(t + 1))
        score = CURVES[config["curve"]][t]
        tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(directory))


def _real(name: str, tmp_path: Any) -> tuple[list[Decision], dict[int, int]]:
    log: list[Decision] = []
    make, _ = SCHEDULERS[name]
    grid = tune.Tuner(
        _follow_curve,
        param_space={"curve": tune.grid_search(list(range(len(CURVES))))},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", scheduler=make(_recording(CLASSES[name], log))
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0
    return log, {r.config["curve"]: r.metrics["training_iteration"] for r in grid}


def _simulated(name: str) -> tuple[list[Decision], dict[int, int]]:
    # imported here: trial actors import this module (for `_follow_curve`), not the simulator
    from sim.drivers import SearchDriver
    from sim.runner import build
    from sim.scenario import validate_scenario

    _, fields = SCHEDULERS[name]
    workload = {
        "kind": "hyperparameter_search",
        "trials": len(CURVES),
        "epochs": EPOCHS,
        "concurrent_trials": 1,
        "duration_ms": {"dist": "constant", "value": 5},
        "curves": CURVES,
        "metric": "score",
        "mode": "max",
        **fields,
    }
    raw = {
        "name": f"two_worlds_{name}",
        "seed": 1,
        "cluster": {"nodes": 2, "cpus_per_node": 4},
        "workload": workload,
        "output": {"progress": False},
    }
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    (driver,) = sim.drivers
    assert isinstance(driver, SearchDriver)
    row = {t.trial_id: int(t.config["curve"]) for t in driver.trials}
    assert metrics["tasks"] == sum(t.iteration for t in driver.trials)
    log = [
        (row[trial_id], iteration, decision) for trial_id, iteration, decision in driver.decisions
    ]
    return log, {row[t.trial_id]: t.iteration for t in driver.trials}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_real_and_simulated_runs_decide_alike(one_slot, tmp_path, name):
    real_log, real_iters = _real(name, tmp_path)
    sim_log, sim_iters = _simulated(name)
    assert sim_iters == real_iters  # which trials stopped at which iteration
    assert sim_log == real_log  # every decision, in order: stops, pauses, promotions
    decisions = {d for _, _, d in real_log}
    assert "STOP" in decisions and min(real_iters.values()) < EPOCHS  # some stopped early


# --- PBT: exploits and explorations on curves that depend on the config -------------------

PBT_TRIALS = 3
PBT_EPOCHS = 6
PBT_SEED = 6
#: the simulated workload's mutations (scenario form) and the real scheduler's (tune's)
PBT_SPEC: dict[str, Any] = {
    "kind": "pbt",
    "time_attr": "training_iteration",
    "perturbation_interval": 2,
    "quantile_fraction": 0.34,
    "resample_probability": 0.25,
    "seed": PBT_SEED,
    "hyperparam_mutations": {
        "lr": {"kind": "loguniform", "lower": 1e-4, "upper": 1e-1},
        "momentum": [0.8, 0.9, 0.95, 0.99],
    },
}


def _pbt_mutations() -> dict[str, Any]:
    return {"lr": tune.loguniform(1e-4, 1e-1), "momentum": [0.8, 0.9, 0.95, 0.99]}


def _follow_pbt_curve(config: dict[str, Any]) -> None:
    """Report the simulator's config-dependent curve, carrying (t, score) in the checkpoint."""
    from sim.tune_curves import axes, score_after

    curve_axes = axes(_pbt_mutations())
    t, score = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state")) as f:
            t_text, score_text = f.read().split()
        t, score = int(t_text), float(score_text)
    while t < PBT_EPOCHS:
        t += 1
        score = score_after(curve_axes, config, score, t, PBT_EPOCHS)
        directory = tempfile.mkdtemp()
        with open(os.path.join(directory, "state"), "w") as f:
            f.write(f"{t} {score!r}")
        tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(directory))


def _index(trial_id: str) -> int:
    return int(trial_id.rsplit("_", 1)[1])


def _pbt_real(tmp_path: Any, synch: bool) -> tuple[list[Decision], list[tuple[Any, ...]]]:
    import random

    from runtime.core.tune.schedulers import ExploitRequest

    log: list[Decision] = []
    exploits: list[tuple[Any, ...]] = []

    class Recording(tune.schedulers.PopulationBasedTraining):  # type: ignore[misc]
        def on_trial_result(
            self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
        ) -> str:
            decision = super().on_trial_result(trial_id, result, trials_waiting)
            log.append((_index(trial_id), int(result["training_iteration"]), decision))
            return decision

        def take_requests(self) -> list[Any]:
            requests = super().take_requests()
            for r in requests:
                if isinstance(r, ExploitRequest):
                    it = int(r.result["training_iteration"])
                    exploits.append((_index(r.trial_id), _index(r.clone_from), it, r.config))
            return requests

    spec = PBT_SPEC
    scheduler = Recording(
        time_attr=spec["time_attr"],
        perturbation_interval=spec["perturbation_interval"],
        quantile_fraction=spec["quantile_fraction"],
        resample_probability=spec["resample_probability"],
        hyperparam_mutations=_pbt_mutations(),
        synch=synch,
        rng=random.Random(PBT_SEED),
    )
    grid = tune.Tuner(
        _follow_pbt_curve,
        param_space={},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=PBT_TRIALS,
            scheduler=scheduler,
            reuse_actors=True,  # as Ray advises for PBT: paused trials resume in one actor
        ),
        run_config=tune.RunConfig(name="pbt", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0
    return log, exploits


def _pbt_simulated(synch: bool) -> tuple[list[Decision], list[tuple[Any, ...]], Any]:
    from sim.drivers import SearchDriver
    from sim.runner import build
    from sim.scenario import validate_scenario

    raw = {
        "name": "two_worlds_pbt",
        "seed": 1,
        "cluster": {"nodes": 2, "cpus_per_node": 4},
        "workload": {
            "kind": "hyperparameter_search",
            "trials": PBT_TRIALS,
            "epochs": PBT_EPOCHS,
            "concurrent_trials": 1,
            "duration_ms": {"dist": "constant", "value": 5},
            "metric": "score",
            "mode": "max",
            "checkpoint_bytes": 1e6,
            "checkpoint_save_ms": 2,
            "checkpoint_restore_ms": 3,
            "trial_scheduler": {**PBT_SPEC, "synch": synch},
        },
        "output": {"progress": False},
    }
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    (driver,) = sim.drivers
    assert isinstance(driver, SearchDriver)
    log = [(_index(tid), iteration, decision) for tid, iteration, decision in driver.decisions]
    exploits = [(_index(a), _index(b), it, config) for a, b, it, config in driver.exploits]
    return log, exploits, (metrics, driver)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PBT notices: a clone had no checkpoint
@pytest.mark.parametrize("synch", [False, True], ids=["async", "synch"])
def test_real_and_simulated_pbt_exploit_alike(one_slot, tmp_path, synch):
    real_log, real_exploits = _pbt_real(tmp_path, synch)
    sim_log, sim_exploits, (metrics, driver) = _pbt_simulated(synch)
    assert sim_exploits == real_exploits  # who cloned whom, when, with which explored config
    assert sim_log == real_log  # every decision, in order
    assert len(real_exploits) >= 2
    # every epoch task ran, the re-run epochs of exploiting trials too
    assert metrics["tasks"] == driver.epochs_run
    assert all(t.iteration == PBT_EPOCHS for t in driver.trials)
