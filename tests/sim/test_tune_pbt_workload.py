"""The hyperparameter_search workload under PBT: exploits clone checkpoint objects, explore configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.drivers import SearchDriver
from sim.runner import build
from sim.scenario import ScenarioError, load_scenario, validate_scenario
from sim.tune_curves import axes, gain

ROOT = Path(__file__).resolve().parents[2]
MUTATIONS: dict[str, Any] = {
    "lr": {"kind": "loguniform", "lower": 1e-4, "upper": 1e-1},
    "momentum": [0.8, 0.9, 0.95, 0.99],
}


def _raw(scheduler: dict[str, Any] | None = None, **workload: Any) -> dict[str, Any]:
    pbt = {
        "kind": "pbt",
        "time_attr": "training_iteration",
        "perturbation_interval": 2,
        "hyperparam_mutations": MUTATIONS,
        **(scheduler or {}),
    }
    work = {
        "kind": "hyperparameter_search",
        "trials": 12,
        "epochs": 10,
        "concurrent_trials": 4,
        "duration_ms": {"dist": "constant", "value": 10},
        "trial_scheduler": pbt,
        **workload,
    }
    return {
        "name": "pbt_test",
        "seed": 3,
        "cluster": {"nodes": 3, "cpus_per_node": 2},
        "scheduler": {"spillback_threshold": 0},
        "workload": work,
        "output": {"progress": False},
    }


def _run(raw: dict[str, Any]) -> tuple[dict[str, Any], SearchDriver, Any]:
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    (driver,) = sim.drivers
    assert isinstance(driver, SearchDriver)
    return metrics, driver, sim


def test_pbt_exploits_and_runs_every_epoch_to_the_end() -> None:
    metrics, driver, sim = _run(_raw(checkpoint_bytes=1e6))
    assert driver.exploits and driver.scheduler.num_perturbations == len(driver.exploits)
    assert all(t.status == "TERMINATED" and t.iteration == 10 for t in driver.trials)
    # an exploiting trial re-runs the epochs between its clone's checkpoint and its own
    assert metrics["tasks"] == driver.epochs_run == sim.completion.total
    assert sim.completion.done == sim.completion.total
    for target, source, iteration, config in driver.exploits:
        assert target != source and 0 < iteration < 10
        assert set(config) == {"lr", "momentum"} and config["momentum"] in MUTATIONS["momentum"]
    assert metrics["bytes_transferred"] > 0  # checkpoints moved to where epochs ran
    assert metrics["bytes_transferred"] % 1_000_000 == 0  # whole checkpoints only


def test_exploiting_beats_the_same_population_left_alone() -> None:
    """quantile_fraction 0 never exploits: same seed, same first configs, lower scores."""
    _, pbt, _ = _run(_raw())
    _, alone, _ = _run(_raw({"quantile_fraction": 0.0}))
    assert not alone.exploits
    first = [t.config for t in alone.trials]
    assert len(first) == len(pbt.trials)
    best = max(t.score for t in pbt.trials)
    mean = sum(t.score for t in pbt.trials) / len(pbt.trials)
    assert best > max(t.score for t in alone.trials)
    assert mean > sum(t.score for t in alone.trials) / len(alone.trials)


def test_the_metric_accumulates_the_config_dependent_gain() -> None:
    _, driver, _ = _run(_raw({"quantile_fraction": 0.0}))
    curve_axes = axes(driver.scheduler._mutations)  # the core domains the scheduler draws from
    for trial in driver.trials:
        expected = sum(gain(curve_axes, trial.config, t, 10) for t in range(1, 11))
        assert trial.score == pytest.approx(expected)


def test_checkpoint_save_and_restore_cost_simulated_time() -> None:
    # one trial at a time: results come in a fixed order, so the costs move time only
    base, driver, _ = _run(_raw(concurrent_trials=1))
    costly, again, _ = _run(
        _raw(concurrent_trials=1, checkpoint_save_ms=50, checkpoint_restore_ms=80)
    )
    assert again.exploits == driver.exploits and again.decisions == driver.decisions
    saves = driver.scheduler.num_checkpoints
    pauses = sum(1 for _, it, d in driver.decisions if d == "PAUSE" and it < 10)
    assert saves and driver.exploits and pauses
    # a pause (save + restore) and an exploit (restore) lengthen the trial's next epoch
    # task, and so does a save unless it came with the trial's last result
    least = base["makespan_s"] + 0.08 * len(driver.exploits) + 0.13 * pauses
    assert least - 1e-6 <= costly["makespan_s"] <= least + 0.05 * saves + 1e-6


def test_seed_fixes_the_decisions() -> None:
    _, a, _ = _run(_raw({"seed": 9}))
    _, b, _ = _run(_raw({"seed": 9}))
    _, c, _ = _run(_raw({"seed": 10}))
    assert a.exploits == b.exploits and a.decisions == b.decisions
    assert [t.config for t in a.trials] != [t.config for t in c.trials]


def test_synchronous_pbt_ranks_the_whole_population_at_each_interval() -> None:
    metrics, driver, sim = _run(_raw({"synch": True}))
    assert driver.exploits and metrics["tasks"] == driver.epochs_run == sim.completion.total
    assert {d for _, _, d in driver.decisions} == {"CONTINUE", "PAUSE"}
    # every trial reaches each perturbation time before any is ranked, so each exploit
    # clones a checkpoint taken at that time: an interval's multiple
    assert all(iteration % 2 == 0 for _, _, iteration, _ in driver.exploits)
    # and no trial runs past the next perturbation time before the others caught up
    for _, iteration, decision in driver.decisions:
        assert (decision == "PAUSE") == (iteration % 2 == 0)
    assert all(t.status == "TERMINATED" and t.iteration == 10 for t in driver.trials)


def test_shipped_pbt_scenario_runs() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "pbt.yaml")
    sim = build(scenario)
    metrics = sim.run()
    (driver,) = sim.drivers
    assert driver.exploits and metrics["tasks"] == driver.epochs_run
    assert metrics["transfers"] > 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"curves": [[0.1] * 10] * 12}, "curves cannot be used with trial_scheduler pbt"),
        ({"trial_scheduler": {"kind": "pbt", "hyperparam_mutations": {}}}, "at least 1"),
        (
            {"trial_scheduler": {"kind": "pbt", "hyperparam_mutations": {"lr": []}}},
            "empty list",
        ),
        (
            {
                "trial_scheduler": {
                    "kind": "pbt",
                    "hyperparam_mutations": {"lr": {"kind": "loguniform", "lower": 0, "upper": 1}},
                }
            },
            "loguniform needs lower > 0",
        ),
        (
            {
                "trial_scheduler": {
                    "kind": "pbt",
                    "quantile_fraction": 0.7,
                    "hyperparam_mutations": MUTATIONS,
                }
            },
            "quantile_fraction",
        ),
        (
            {"trial_scheduler": {"kind": "pbt", "hyperparam_mutations": MUTATIONS, "typo": 1}},
            "typo",
        ),
    ],
)
def test_bad_pbt_specs_are_refused(change: dict[str, Any], message: str) -> None:
    raw = _raw()
    raw["workload"].update(change)
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(raw)
