"""The hyperparameter_search workload: the core's Tune schedulers decide, the driver carries out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.drivers import SearchDriver
from sim.runner import build
from sim.scenario import ScenarioError, load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parents[2]


def _scenario(**workload: Any) -> Any:
    work = {"kind": "hyperparameter_search", "trials": 12, "epochs": 9, "concurrent_trials": 3}
    raw = {
        "name": "t",
        "seed": 5,
        "cluster": {"nodes": 2, "cpus_per_node": 4},
        "workload": {**work, "duration_ms": {"dist": "constant", "value": 2}, **workload},
        "output": {"progress": False},
    }
    return validate_scenario(raw)


@pytest.mark.parametrize("name", ["asha", "hyperband", "median_stopping", "fifo"])
def test_every_scheduler_runs_the_sweep_to_the_end(name: str) -> None:
    extra = {"grace_period": 2} if name == "median_stopping" else {}
    sim = build(_scenario(trial_scheduler=name, **extra))
    metrics = sim.run()
    (driver,) = sim.drivers
    assert isinstance(driver, SearchDriver)
    assert len(driver.trials) == 12
    assert all(t.status == "TERMINATED" for t in driver.trials)
    assert metrics["tasks"] == sum(t.iteration for t in driver.trials) == sim.completion.total
    if name == "fifo":
        assert driver.stopped_early == 0 and metrics["tasks"] == 12 * 9
    else:
        assert driver.stopped_early > 0 and metrics["tasks"] < 12 * 9


def test_min_mode_stops_the_other_trials() -> None:
    """mode: min keeps the low curves: the trials ASHA keeps are worse on average."""

    def kept(mode: str) -> list[float]:
        sim = build(_scenario(mode=mode))
        sim.run()
        (driver,) = sim.drivers
        return [t.config["quality"] for t in driver.trials if t.iteration == 9]

    high, low = kept("max"), kept("min")  # same seed: the same qualities drawn
    assert high and low and sum(high) / len(high) > sum(low) / len(low)


def test_shipped_scenario_is_deterministic_with_the_old_field_names(tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "scenarios" / "hyperparameter_search.yaml")
    work = scenario.workload
    assert (work.trial_scheduler, work.grace_epochs, work.epochs) == ("asha", 1, 27)
    first, second = build(scenario).run(), build(scenario).run()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["tasks"] < 200 * 27


def test_curves_and_decisions_follow_the_table() -> None:
    curves = [[float(i)] * 3 for i in range(6)]  # flat curves: trial i scores i throughout
    sim = build(_scenario(trials=6, epochs=3, concurrent_trials=1, curves=curves))
    sim.run()
    (driver,) = sim.drivers
    first = [d for d in driver.decisions if d[1] == 1]
    assert [d[2] for d in first[:2]] == ["CONTINUE", "CONTINUE"]  # nothing recorded yet
    assert driver.trials[-1].iteration == 3  # the best trial is never stopped


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trial_scheduler": "bohb"}, "trial_scheduler"),
        ({"max_t": 20}, "max_t"),
        ({"grace_period": 10}, "grace_period"),
        ({"mode": "best"}, "mode"),
        ({"curves": [[1.0] * 9]}, "curves has 1 rows but trials is 12"),
        ({"trials": 1, "curves": [[1.0, 2.0]]}, "curves row 0 has 2 values"),
        ({"time_attr": "wall"}, "time_attr"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        _scenario(**fields)
