"""The real twin of hyperparameter_search makes the simulator's Tune decisions on real tasks."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from sim.runner import build
from sim.scenario import Scenario, load_scenario, validate_scenario
from twin.cli import main
from twin.real_mode import fit_to_machine
from twin.real_workloads import RealDriver, run_search

ROOT = Path(__file__).resolve().parents[2]
_RNG = random.Random(1)
CURVES = [[round(_RNG.random() * (k + 1), 3) for k in range(6)] for _ in range(6)]
"""Six trials' metric per epoch: noisy and rising, so the rules stop and pause some."""

PBT = {
    "kind": "pbt",
    "time_attr": "training_iteration",
    "perturbation_interval": 2,
    "quantile_fraction": 0.25,
    "resample_probability": 0.25,
    "hyperparam_mutations": {
        "lr": {"kind": "loguniform", "lower": 1e-4, "upper": 0.1},
        "momentum": [0.8, 0.9, 0.95, 0.99],
    },
}

CASES: dict[str, dict[str, Any]] = {
    "asha": {"trial_scheduler": "asha", "curves": CURVES, "reduction_factor": 2},
    "hyperband": {"trial_scheduler": "hyperband", "curves": CURVES, "reduction_factor": 2},
    "median_stopping": {
        "trial_scheduler": "median_stopping",
        "curves": CURVES,
        "grace_period": 1,
        "min_samples_required": 2,
    },
    "pbt": {
        "trial_scheduler": PBT,
        "trials": 4,
        "epochs": 8,
        "metric": "score",
        "checkpoint_bytes": 200_000,  # out of band: the exploits clone a stored object
        "checkpoint_save_ms": 1,
        "checkpoint_restore_ms": 1,
    },
}
"""Scheduler -> workload fields. One trial at a time: results arrive in the same order in
both worlds, so the decisions must be equal (with more, the order of finishing decides)."""


def _scenario(nodes: int = 1, **workload: Any) -> Scenario:
    work = {
        "kind": "hyperparameter_search",
        "trials": 6,
        "epochs": 6,
        "concurrent_trials": 1,
        "time_attr": "training_iteration",
        "duration_ms": {"dist": "constant", "value": 2},
        "output_bytes": 1000,
        **workload,
    }
    raw = {
        "name": "t",
        "seed": 3,
        "cluster": {"nodes": nodes, "cpus_per_node": 2},
        "workload": work,
        "output": {"progress": False},
    }
    return validate_scenario(raw)


def _local(steps: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Trial ids without the driver's prefix (the simulator's owner address, the twin's 0)."""

    def local(value: Any) -> Any:
        return value.split("_", 1)[1] if isinstance(value, str) and "_" in value else value

    return [tuple(local(v) for v in step) for step in steps]


@pytest.fixture(scope="class")
def ray() -> Any:
    """One runtime for every case (each real search runs on its own RealDriver)."""
    import runtime

    runtime.init(num_cpus=2)
    yield runtime
    runtime.shutdown()


class TestSameDecisions:
    """Each scheduler on real epoch tasks and in the simulator, from the same seed."""

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_real_twin_makes_the_simulators_decisions(self, ray: Any, name: str) -> None:
        """Same decisions, configs, epochs and (PBT) exploits."""
        _same_decisions(ray, name)


def _same_decisions(ray: Any, name: str) -> None:
    scenario = fit_to_machine(_scenario(**CASES[name]), scale_down=True, cpus=2).scenario
    sim = build(scenario)
    metrics = sim.run()
    (simulated,) = sim.drivers
    driver = RealDriver(ray, scenario)
    real = run_search(driver, scenario.workload)
    assert not driver.pending and not driver.failed
    assert _local(real.decisions) == _local(simulated.decisions)
    assert [t.config for t in real.trials] == [t.config for t in simulated.trials]
    assert real.epochs_run == simulated.epochs_run == metrics["tasks"]
    assert driver.metrics.summary(1.0, 2)["tasks"] == metrics["tasks"]
    decided = {d for _, _, d in real.decisions}
    if name == "pbt":
        assert real.exploits and _local(real.exploits) == _local(simulated.exploits)
        assert real.scheduler.num_checkpoints > 0
    elif name != "hyperband":
        assert "STOP" in decided and real.stopped_early > 0  # early stopping happened
    if name in ("hyperband", "median_stopping"):
        assert "PAUSE" in decided  # paused trials resumed from their checkpoints
    assert all(t.status == "TERMINATED" for t in real.trials)


def test_budget_cut_keeps_one_curve_per_trial() -> None:
    curves = [[0.1 * (i + 1)] * 6 for i in range(200)]
    scenario = _scenario(nodes=4, trials=200, curves=curves, duration_ms=100)
    fit = fit_to_machine(scenario, scale_down=True, cpus=2)
    work = fit.scenario.workload
    assert work.trials < 200 and work.curves == curves[: work.trials]


def test_mode_both_on_the_shipped_scenario_agrees_on_task_counts(tmp_path: Path, capsys) -> None:
    scenario = ROOT / "scenarios" / "hyperparameter_search.yaml"
    assert load_scenario(scenario).workload.trial_scheduler == "asha"
    sets = {"trials": 6, "epochs": 4, "concurrent_trials": 1, "output_bytes": 200000}
    args = [str(scenario), "--mode", "both", "--scale-down", "--out", str(tmp_path)]
    for key, value in sets.items():
        args += ["--set", f"workload.{key}={value}"]
    assert main(args) == 0
    assert "sim vs real" in capsys.readouterr().out
    base = tmp_path / "hyperparameter_search"
    sim = json.loads((base / "sim" / "metrics.json").read_text())
    real = json.loads((base / "real" / "metrics.json").read_text())
    assert real["world"] == "real"
    assert 6 <= real["tasks"] == sim["tasks"] < 6 * 4  # ASHA stopped some trials in both
    assert (base / "comparison.md").exists()
