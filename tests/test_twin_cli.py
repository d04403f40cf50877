"""`run-scenario` (twin.cli) keeps every option; `python -m sim.cli` is its simulator-only half."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import cli as sim_cli
from twin import cli as twin_cli

ROOT = Path(__file__).resolve().parents[1]

RUN_SCENARIO_OPTIONS = {
    "-h",
    "--help",
    "--set",
    "--sweep",
    "--schema",
    "--seed",
    "--no-progress",
    "--out",
    "--mode",
    "--scale-down",
    "--nodes",
    "--netns",
    "--trace",
    "--calibrate",
    "--calibrate-rl",
    "--compare",
    "--address",
    "--engine",
}
"""The options of `run-scenario` (those from before the simulator and the twin harness were
split, and `--calibrate-rl`, which times real PPO iterations)."""

REAL_ONLY = {
    "--mode",
    "--scale-down",
    "--nodes",
    "--netns",
    "--calibrate",
    "--calibrate-rl",
    "--compare",
    "--address",
    "--engine",
}


def _options(parser: object) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}  # type: ignore[attr-defined]


def test_run_scenario_has_the_same_options() -> None:
    parser = twin_cli.build_parser()
    assert parser.prog == "run-scenario"
    assert _options(parser) == RUN_SCENARIO_OPTIONS


def test_the_simulator_cli_has_all_but_the_real_worker_options() -> None:
    assert _options(sim_cli.build_parser()) == RUN_SCENARIO_OPTIONS - REAL_ONLY


def test_the_simulator_cli_refuses_real_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        sim_cli.main([str(ROOT / "scenarios" / "chain.yaml"), "--mode", "real"])
    assert info.value.code == 2
    assert "unrecognized arguments: --mode real" in capsys.readouterr().err


def test_run_scenario_hands_simulated_runs_to_the_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(ROOT / "scenarios" / "chain.yaml"), "--out", str(tmp_path), "--no-progress"]
    assert twin_cli.main(args) == 0
    assert (tmp_path / "chain" / "metrics.json").is_file()
    assert "simulated makespan" in capsys.readouterr().out


def test_run_scenario_reports_a_bad_scenario_in_real_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncluster: {nodes: 0}\n")
    assert twin_cli.main([str(bad), "--mode", "real"]) == sim_cli.EXIT_BAD_SCENARIO
    err = capsys.readouterr().err
    assert err.startswith("run-scenario: invalid scenario\n")
    assert f"{bad}: cluster.nodes: expected an integer >= 1, got 0" in err


def test_run_scenario_needs_a_file_unless_calibrating(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        twin_cli.main(["--mode", "real"])
    assert info.value.code == 2
    assert "the following arguments are required: file" in capsys.readouterr().err
