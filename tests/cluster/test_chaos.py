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
    report = run_chaos(tasks=300, chains=15, interval=0.5, timeout=300.0, min_kills=1)
    assert report.errors == [] and (report.wrong, report.lost) == (0, 0), report.lines()
    assert report.kills >= 1 and report.added >= report.kills
    # the kill came before any result was fetched: chains' last values died with the node
    assert report.retries + report.reconstructions > 0
