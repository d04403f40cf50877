"""`run-scenario --mode both` for a serving scenario: real Serve over HTTP beside the sim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.scenario import validate_scenario
from twin.real_serving import calibrate_serving, calibrated, run_serving_mode

ROOT = Path(__file__).resolve().parents[2]


def _scenario(tmp_path: Path) -> Any:
    return validate_scenario(
        {
            "name": "smoke",
            "description": "a tiny serving run",
            "seed": 2,
            "cluster": {"nodes": 1, "cpus_per_node": 2},
            "output": {"report_dir": str(tmp_path)},
            "workload": {
                "kind": "serving",
                "requests": 40,
                "arrivals": {"process": "poisson", "rate_rps": 40},
                "deployments": [
                    {
                        "name": "M",
                        "num_replicas": 1,
                        "num_cpus": 0,
                        "max_batch_size": 4,
                        "batch_wait_timeout_s": 0.005,
                        "latency_fixed_ms": 5,
                        "latency_per_item_ms": 1,
                    }
                ],
            },
        }
    )


def test_mode_both_runs_real_serve_beside_the_sim_and_calibrates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_serving_mode(_scenario(tmp_path), "both", plots=False) == 0  # plots: sim tests
    base = tmp_path / "smoke"
    real = json.loads((base / "real" / "metrics.json").read_text())
    assert real["world"] == "real"
    s = real["serving"]
    assert s["completed"] == 40 and s["rejected"] == 0
    assert s["latency_s"]["p50"] > 0.005  # at least the model's fixed time
    assert all(1 <= int(k) <= 4 for k in s["batch_size_histogram"])
    for world in ("sim", "calibrated"):
        assert json.loads((base / world / "metrics.json").read_text())["serving"]["completed"] == 40
    cal = json.loads((base / "calibration.json").read_text())
    # a least-squares line passes through the mean batch, which slept at least 5 + 1 x n ms
    hist = {int(k): v for k, v in s["batch_size_histogram"].items()}
    mean_n = sum(k * v for k, v in hist.items()) / sum(hist.values())
    fit = cal["fit"]
    assert fit["latency_fixed_ms"] + fit["latency_per_item_ms"] * mean_n >= 5 + mean_n - 0.01
    assert cal["p50_error"] is not None
    text = (base / "comparison.md").read_text()
    assert "latency p50" in text and "calibrated vs real" in text
    assert "calibrated p50" in capsys.readouterr().out


def test_calibration_fits_fixed_and_per_item_costs_from_batches(tmp_path: Path) -> None:
    real = {
        "serving_samples": {
            "batches": [(1, 0.012), (2, 0.014), (4, 0.018)],
            "inbound_s": [0.001, 0.002, 0.003],
            "outbound_s": [0.0005, 0.0005, 0.004],
        }
    }
    fit = calibrate_serving(real)
    assert fit == pytest.approx(
        {
            "latency_fixed_ms": 10.0,
            "latency_per_item_ms": 2.0,
            "proxy_overhead_ms": 2.0,
            "response_overhead_ms": 0.5,
        }
    )
    tuned = calibrated(_scenario(tmp_path), fit)
    dep = tuned.workload.deployments[0]
    assert dep.latency_fixed_ms.value == pytest.approx(10.0)
    assert tuned.workload.proxy_overhead_ms.value == pytest.approx(2.0)


def test_compare_puts_each_engine_beside_the_last_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import twin.real_serving
    from sim.runner import run_scenario
    from twin.cli import main

    ran: list[str] = []

    def fake_real(scenario: Any, cpus: Any = None, engine: str = "real") -> dict[str, Any]:
        ran.append(engine)  # a simulated run stands in for the engine's (no Serve started)
        metrics = run_scenario(scenario)
        metrics["serving"]["throughput_rps"] *= 2
        return {**metrics, "world": engine}

    monkeypatch.setattr(twin.real_serving, "run_real_serving", fake_real)
    scenario = _scenario(tmp_path)
    assert twin.real_serving.run_serving_compare(scenario, ["sim", "real"], plots=False) == 0
    assert ran == ["real"]
    text = (tmp_path / "smoke" / "comparison.md").read_text()
    assert "| metric | sim | real | sim vs real |" in text
    assert "| throughput (req/s) |" in text and "-50.0 %" in text
    assert json.loads((tmp_path / "smoke" / "real" / "metrics.json").read_text())["world"] == "real"
    capsys.readouterr()
    with pytest.raises(SystemExit):  # serving scenarios are not scaled down
        main(
            [
                str(ROOT / "scenarios" / "serving_small.yaml"),
                "--compare",
                "sim,real",
                "--scale-down",
            ]
        )
    assert "--scale-down does not apply to serving" in capsys.readouterr().err
