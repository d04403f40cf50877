"""Smoke test of benchmarks/sim_engine.py: sizes parse, every system reports sane per-task figures."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import sim_engine


def test_sizes_parse_with_suffixes_and_bad_ones_are_named() -> None:
    """`100k,1M,2500` -> integers; a size that is not one is refused, naming it."""
    assert sim_engine.parse_sizes("100k,1M,2500") == [100_000, 1_000_000, 2_500]
    with pytest.raises(argparse.ArgumentTypeError, match="'lots'"):
        sim_engine.parse_sizes("100k,lots")
    with pytest.raises(argparse.ArgumentTypeError, match="'0'"):
        sim_engine.parse_sizes("0")


@pytest.mark.timeout(120)
def test_tiny_run_counts_events_and_messages() -> None:
    """At 400 tasks on 4 nodes every system finishes every task; the raw models push at
    least one calendar entry per task and send no messages, twinray at least three
    entries (submit arrival, task end, done arrival) and two messages per task."""
    names = [name for name in sim_engine.SYSTEMS if name != "twinray-compiled"]  # below
    rows = {name: sim_engine.measure(name, 400, 4, 2, 4, 1) for name in names}
    for name, row in rows.items():
        assert row.makespan_s > 0 and row.cpu_s > 0, name
        assert row.events >= row.tasks, name
    assert rows["simpy-lean"].messages == rows["simpy-idiomatic"].messages == 0
    assert rows["twinray"].events >= 3 * 400
    assert rows["twinray"].messages >= 2 * 400
    lines = sim_engine.table(list(rows.values()))
    assert len(lines) == 1 + len(rows)
    assert all(name in "\n".join(lines) for name in rows)


def test_unknown_system_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`--systems` with a name that is not a system exits with a message naming it."""
    with pytest.raises(SystemExit):
        sim_engine.main(["--systems", "twinray,nosuch", "--tasks", "10"])
    assert "nosuch" in capsys.readouterr().err


def test_compiled_row_is_refused_without_a_build(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`twinray-compiled` where no build can be used exits 2, saying why (not a pure run
    under the compiled row's name)."""
    monkeypatch.setenv("TWINRAY_SIM_PURE", "1")  # inherited by the measuring subprocess
    assert sim_engine.main(["--systems", "twinray-compiled", "--tasks", "50"]) == 2
    assert "TWINRAY_SIM_PURE" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_compiled_row_simulates_the_same_run() -> None:
    """With a build of this source, the compiled row runs it and simulates the same run."""
    from sim import fast

    if fast.find_build() is None:
        pytest.skip("no compiled build of this source (python -m sim.build_fast)")
    pure = sim_engine.measure_apart("twinray", 400, 4, 2, 4, 1)
    compiled = sim_engine.measure_apart("twinray-compiled", 400, 4, 2, 4, 1)
    assert (compiled.makespan_s, compiled.events, compiled.messages) == (
        pure.makespan_s,
        pure.events,
        pure.messages,
    )
