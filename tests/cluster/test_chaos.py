"""The chaos run, scaled down: chained tasks while worker nodes are SIGKILLed and replaced; every result right."""

from __future__ import annotations

import pytest

from benchmarks.chaos import run_chaos

pytest.importorskip("numpy")


def test_chained_tasks_survive_nodes_killed_and_added_all_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    report = run_chaos(tasks=600, chains=20, interval=1.0, timeout=300.0)
    assert report.errors == [] and (report.wrong, report.lost) == (0, 0), report.lines()
    assert report.kills >= 1 and report.added >= report.kills
    assert report.retries + report.reconstructions > 0  # something was lost, and recovered
