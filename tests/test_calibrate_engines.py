"""`run-scenario --calibrate --engine twinray|ray`: the simulator's cost model fitted to an engine.

The fitting and reporting are checked without Ray: a stand-in engine whose "runs" are
simulations with known costs must be fitted back to costs that predict its runs of a
small scenario, and the report must carry each metric's error and verdict. The Ray
variant (``TWINRAY_COMPAT_RAY=1`` with Ray installed, as for the compat tests) calibrates
against a local Ray with small probes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import twin.calibrate as cal
from sim.runner import run_scenario
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]

TRUTH = {"owner_us": 60.0, "raylet_us": 100.0, "global_scheduler_us": 200.0, "gcs_us": 200.0}
"""The stand-in engine's control-plane costs (20x the defaults)."""

TINY = "name: tiny\nseed: 2\ncluster: {nodes: 1, cpus_per_node: 2}\nworkload: {kind: independent, tasks: 200, window: 8, duration_ms: 1}\n"
"""A scenario small enough to simulate in a fraction of a second."""


@pytest.fixture()
def small_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration probes at a tenth of their size (their shape unchanged)."""
    monkeypatch.setattr(cal, "NOOP", {**cal.NOOP, "tasks": 300})
    monkeypatch.setattr(cal, "CHAIN", {**cal.CHAIN, "length": 40})
    monkeypatch.setattr(cal, "SLEEPY", {**cal.SLEEPY, "tasks": 60})
    monkeypatch.setattr(cal, "STORED", {**cal.STORED, "tasks": 60})


def _as_engine(scenario: Scenario, cpus: int) -> dict[str, Any]:
    """A run on the stand-in engine: the scenario simulated with `TRUTH`'s costs."""
    plane = scenario.control_plane.model_copy(update=TRUTH)
    return run_scenario(scenario.model_copy(update={"control_plane": plane}))


def _stand_in() -> cal.Engine:
    store = {"put_gib_s": 2.0, "get_gib_s": 50.0}
    return cal.Engine("ray", "ray", _as_engine, _as_engine, lambda: store, "ray 0.0-test")


def test_fitted_to_an_engine_the_sim_predicts_its_runs(small_probes: None, tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "tiny.yaml").write_text(TINY, encoding="utf-8")
    order: list[str] = []

    def noted(scenario: Scenario, cpus: int) -> dict[str, Any]:
        order.append(scenario.name)
        return _as_engine(scenario, cpus)

    fits = cal.shipped_fits(scenarios, ("tiny",))
    tps, runs = cal.measure_interleaved(2, 2, noted, fits)
    probes = ["calibration"] * len(cal.probes())
    assert order == [*probes, "tiny", *probes, "tiny"]  # in turns: probes, then the scenario
    assert set(tps) == {*cal.probes(), *cal.SPREAD_KEYS} and len(runs["tiny"]) == 2

    profile_path = tmp_path / "ray_profile.yaml"
    profile = cal.calibrate(profile_path, cpus=2, repeats=1, engine=_stand_in(), measured=tps)
    written = yaml.safe_load(profile_path.read_text(encoding="utf-8"))
    assert written == profile
    assert profile["engine"] == "ray" and profile["machine"]["engine_version"] == "ray 0.0-test"
    assert set(profile) >= {"measured", "control_plane", "network", "task_overhead"}
    assert profile["control_plane"]["owner_us"] == pytest.approx(TRUTH["owner_us"], rel=0.1)
    assert profile["control_plane"]["per_kib_us"] == pytest.approx(1e6 / (2.0 * 2**20), rel=1e-3)
    assert "--engine ray" in profile_path.read_text(encoding="utf-8").splitlines()[0]

    prediction = cal.predict(
        profile_path, scenarios, tmp_path / "report", 2, ("tiny",), _stand_in(), runs
    )
    errors = prediction.errors()["tiny"]
    assert set(errors) == set(cal.TARGETS)
    assert all(abs(e) <= 0.15 for e in errors.values()), errors  # fitted: within the goal
    rows = {r.label: r for r in prediction.rows["tiny"]}
    throughput = rows["throughput (tasks/s)"]
    assert throughput.verdict == "met"
    assert abs(throughput.default_error or 0.0) > abs(throughput.calibrated_error or 0.0)
    text = prediction.path.read_text(encoding="utf-8")
    assert text.startswith("# Calibration against ray 0.0-test")
    assert "| metric | ray (median) |" in text and "--calibrate --engine ray" in text
    assert "Load average while it ran" in text and "taken in turns" in text
    lines = cal.error_lines(prediction.errors())
    assert any("tiny" in line and "met (within 15%)" in line for line in lines)


def test_a_row_misses_its_target_beyond_fifteen_percent() -> None:
    def metrics(tps: float) -> dict[str, Any]:
        return {"throughput_tps": tps, "latency_s": {"p50": 1.0 / tps}}

    rows = {r.label: r for r in cal.prediction_rows(metrics(100), metrics(120), metrics(100))}
    assert rows["throughput (tasks/s)"].calibrated_error == pytest.approx(0.2)
    assert rows["throughput (tasks/s)"].verdict == "missed"
    assert rows["latency p50 (s)"].verdict == "missed"  # 1/120 vs 1/100: -16.7 %
    assert "makespan (s)" not in rows  # not reported by the engine: no row


def test_an_unknown_engine_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from twin.cli import main

    with pytest.raises(cal.CalibrationError, match="unknown engine 'dask'; known: twinray, ray"):
        cal.open_engine("dask", 2)
    with pytest.raises(SystemExit):
        main(["--calibrate", "--engine", "dask"])
    assert "invalid choice: 'dask'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(ROOT / "scenarios" / "chain.yaml"), "--engine", "ray"])
    assert "--engine applies to --calibrate only" in capsys.readouterr().err


def test_calibrating_against_ray_without_ray_says_how_to_install_it(
    without_ray: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from twin.cli import main

    assert main(["--calibrate", str(tmp_path / "p.yaml"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert "cannot calibrate against Ray: Ray is not installed" in err
    assert "pip install 'twinray[peers]'" in err
    assert not (tmp_path / "p.yaml").exists()


def test_calibrating_against_real_ray(small_probes: None, tmp_path: Path) -> None:
    if os.environ.get("TWINRAY_COMPAT_RAY", "0") != "1":
        pytest.skip("real-Ray variant: set TWINRAY_COMPAT_RAY=1 to run it")
    pytest.importorskip("ray", reason="real Ray not installed (the peers extra)")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "tiny.yaml").write_text(TINY, encoding="utf-8")
    with cal.open_engine("ray", 2) as engine:
        profile = cal.calibrate(tmp_path / "p.yaml", cpus=2, repeats=1, engine=engine)
        prediction = cal.predict(
            tmp_path / "p.yaml", scenarios, tmp_path / "report", 1, ("tiny",), engine
        )
    assert profile["engine"] == "ray"
    assert profile["machine"]["engine_version"].startswith("ray 2.")
    assert profile["measured"]["noop_tps"] > 0 and profile["measured"]["chain_tps"] > 0
    assert set(prediction.errors()["tiny"]) == set(cal.TARGETS)
    text = prediction.path.read_text(encoding="utf-8")
    assert "| metric | ray (median) |" in text


SPREAD_TRUTH = {
    **TRUTH,
    "task_overhead_us": 2000.0,
    "store_put_us_per_mib": 4000.0,
    "store_get_us_per_mib": 3000.0,
    "task_overhead_sigma": 0.8,
}
"""A stand-in engine whose tasks' overheads spread (lognormal, sigma 0.8)."""


def test_a_known_spread_of_the_task_overhead_is_recovered(
    small_probes: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cal, "CHAIN_STORED", {**cal.CHAIN_STORED, "length": 20})

    def spread(scenario: Scenario, cpus: int) -> dict[str, Any]:
        plane = scenario.control_plane.model_copy(update=SPREAD_TRUTH)
        return run_scenario(scenario.model_copy(update={"control_plane": plane}))

    tps, _ = cal.measure_interleaved(2, 1, spread)
    assert set(cal.SPREAD_KEYS) <= set(tps)
    assert tps["chain_stored_p90_s"] > 1.1 * tps["chain_stored_p50_s"]  # it does spread
    engine = cal.Engine("ray", "ray", spread, spread, lambda: {"put_gib_s": 2.0, "get_gib_s": 50.0})
    # the spread fitted with the engine's costs is the engine's spread
    spread_ratio = tps["chain_stored_p90_s"] / tps["chain_stored_p50_s"]
    costs = {k: v for k, v in SPREAD_TRUTH.items() if k != "task_overhead_sigma"}
    assert cal.fit_spread(2, spread_ratio, costs) == pytest.approx(0.8, abs=0.1)
    # calibrating writes the spread it fits (the costs fitted first absorb some of the
    # overhead into the message costs, so sigma is not compared here)
    profile = cal.calibrate(tmp_path / "p.yaml", cpus=2, repeats=1, engine=engine, measured=tps)
    overhead = profile["task_overhead"]
    assert 0 < overhead["spread_sigma"] <= cal.SIGMA_MAX
    assert set(cal.SPREAD_KEYS) <= set(profile["measured"])
    # the profile carries it into a scenario
    from sim.scenario import load_scenario

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY, encoding="utf-8")
    plane = load_scenario(tiny, {"control_plane.profile": str(tmp_path / "p.yaml")}).control_plane
    assert plane.task_overhead_sigma == overhead["spread_sigma"]


def test_a_spread_without_an_overhead_is_a_clear_error(tmp_path: Path) -> None:
    from sim.scenario import ScenarioError, load_scenario

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY, encoding="utf-8")
    with pytest.raises(ScenarioError, match="task_overhead_sigma to be 0 when no task overhead"):
        load_scenario(tiny, {"control_plane.task_overhead_sigma": "0.5"})


def test_the_overhead_spread_keeps_its_mean_and_is_off_by_default(tmp_path: Path) -> None:
    from sim.scenario import load_scenario

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY, encoding="utf-8")
    fixed = {"control_plane.task_overhead_us": "1000"}
    plain = run_scenario(load_scenario(tiny, fixed))
    spread = run_scenario(load_scenario(tiny, {**fixed, "control_plane.task_overhead_sigma": "1"}))
    # 200 tasks of 1 ms + 1 ms overhead on 2 CPUs: the busy time (mean kept) within 15 %
    assert spread["makespan_s"] == pytest.approx(plain["makespan_s"], rel=0.15)
    assert spread["latency_s"]["p99"] > 1.3 * plain["latency_s"]["p99"]  # it spreads
    assert spread["tasks"] == plain["tasks"] == 200
    zero = run_scenario(load_scenario(tiny, {**fixed, "control_plane.task_overhead_sigma": "0"}))
    assert zero == plain  # no spread: no draw, the same run


def test_stored_arguments_lengthen_the_tasks_that_read_them() -> None:
    from sim.scenario import load_scenario

    chain = ROOT / "scenarios" / "chain.yaml"
    small = {"workload.chains": "1", "workload.length": "10", "workload.drivers": "1"}
    plain = run_scenario(load_scenario(chain, small))
    costly = load_scenario(chain, {**small, "control_plane.store_get_us_per_mib": "2000"})
    longer = run_scenario(costly)
    # each of the 9 tasks after the first reads its predecessor's 1 MiB output: +2 ms each
    assert longer["makespan_s"] - plain["makespan_s"] == pytest.approx(9 * 2e-3, rel=0.02)


def test_a_profile_supplies_the_stored_argument_cost(tmp_path: Path) -> None:
    from sim.scenario import load_scenario

    profile = tmp_path / "p.yaml"
    profile.write_text(
        "control_plane: {owner_us: 3.0}\ntask_overhead: {per_task_ms: 0.1, stored_arg_ms: 0.5}\n"
    )
    chain = ROOT / "scenarios" / "chain.yaml"
    plane = load_scenario(chain, {"control_plane.profile": str(profile)}).control_plane
    assert (plane.task_overhead_us, plane.store_get_us_per_mib) == (100.0, 500.0)
