"""Three simulator bugs, each with the test that catches it: late faults, GCS queue, progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.cli import _show_progress, main, summary_lines
from sim.report import write_report
from sim.runner import build
from sim.scenario import load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def _small(faults: list[dict[str, Any]]) -> Any:
    return validate_scenario(
        {
            "name": "late",
            "seed": 3,
            "cluster": {"nodes": 2, "cpus_per_node": 2},
            "workload": {"kind": "independent", "tasks": 200, "duration_ms": 1},
            "faults": faults,
            "output": {"progress": False},
        }
    )


def test_fault_due_after_the_workload_ended_is_reported(tmp_path: Path) -> None:
    scenario = _small([{"kind": "gcs", "at_s": 0.01, "duration_s": 0.01},
                       {"kind": "node", "at_s": 500.0, "node": 1}])  # fmt: skip
    metrics = build(scenario).run()
    assert [f["kind"] for f in metrics["faults"]] == ["gcs"]
    (warning,) = metrics["warnings"]
    assert "fault node at 500 s was not injected" in warning
    assert "workload ended first" in warning
    lines = summary_lines(scenario, metrics, 1.0)
    assert any(line.startswith("warning") and "fault node at 500 s" in line for line in lines)
    report = write_report(metrics, tmp_path, "late").read_text(encoding="utf-8")
    assert "## Warnings" in report and "fault node at 500 s was not injected" in report


def test_no_warning_when_every_fault_was_injected() -> None:
    metrics = build(_small([{"kind": "gcs", "at_s": 0.01, "duration_s": 0.01}])).run()
    assert metrics["warnings"] == []


def test_gcs_queue_during_an_outage_counts_messages_not_time() -> None:
    """The GCS backlog can never exceed the messages the GCS received in the whole run.

    It used to be the backlog's *time* divided by the per-message cost: during the 0.3 s
    outage of fault_gcs that gave ~30,000 "messages" in a run of ~20,000 messages.
    """
    sim = build(load_scenario(SCENARIOS / "fault_gcs.yaml", {"output.progress": "false"}))
    received = 0
    handle = sim.gcs.handle

    def counting(msg: Any, now: float, out: list[Any]) -> None:
        nonlocal received
        received += 1
        handle(msg, now, out)

    sim.gcs.handle = counting  # type: ignore[method-assign]
    metrics = sim.run()
    peak = max(metrics["queues"]["gcs"])
    assert 0 < peak <= received
    assert peak <= metrics["messages"]
    # the outage holds messages back: the peak is far above the normal backlog
    assert peak > 10 * (sorted(metrics["queues"]["gcs"])[len(metrics["queues"]["gcs"]) // 2] + 1)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("**/*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_leave_progress_to_the_default(path: Path) -> None:
    if "calibration" in path.parts:
        pytest.skip("a calibration profile, not a scenario")
    assert load_scenario(path).output.progress is None
    assert "progress:" not in path.read_text(encoding="utf-8")


def test_progress_default_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    def with_progress(value: bool | None) -> Any:
        raw = {"name": "p", "output": {} if value is None else {"progress": value}}
        return validate_scenario(raw)

    assert with_progress(None).output.progress is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert _show_progress(with_progress(None)) is True
    assert _show_progress(with_progress(False)) is False
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert _show_progress(with_progress(None)) is False
    assert _show_progress(with_progress(True)) is True


def test_cli_is_quiet_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SCENARIOS / "small_independent.yaml"
    assert main([str(path), "--set", "workload.tasks=200", "--out", str(tmp_path)]) == 0
    assert "task/s" not in capsys.readouterr().err  # no tqdm bar under pytest's capture
