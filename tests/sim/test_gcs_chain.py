"""The chain-replicated GCS in the simulator (Fig. 10a's host): kills, joins, no lost write."""

from __future__ import annotations

import pytest

from sim.gcs_chain import ChainExperiment, run_chain


@pytest.mark.parametrize("position", [0, 1, -1])
def test_any_member_killed_loses_no_write(position: int) -> None:
    r = run_chain(ChainExperiment(requests=1_200, kills=((0.05, position),), joins=(0.1,)))
    s = r.summary()
    assert s["requests"] == 1_200
    assert s["lost_writes"] == 0 and s["stale_reads"] == 0
    killed = s["kills"][0][1]
    assert [addr for _, addr in s["removals"]] == [killed]
    assert killed not in s["final_members"] and len(s["final_members"]) == 3
    assert s["steady_ms"] < s["max_ms"] < 5.0


def test_a_lost_machine_is_found_by_the_master_after_its_timeout() -> None:
    exp = ChainExperiment(
        requests=1_200, kills=((0.05, 1),), joins=(), failure="machine", failure_timeout_ms=8.0
    )
    r = run_chain(exp)
    ((at, _),) = r.removals
    # its last heartbeat came at most one period (2 ms) before the kill; the master checks
    # every quarter of its timeout
    assert 0.05 + 0.008 - 0.002 <= at <= 0.05 + 0.008 + 0.002
    assert r.lost_writes == 0 and r.stale_reads == 0
    assert 8.0 - 2.0 < r.max_ms < 15.0  # the request waited from the kill to the new chain


def test_same_seed_same_run_and_bad_knobs_are_named() -> None:
    exp = ChainExperiment(requests=400, kills=((0.03, 0),), joins=())
    assert run_chain(exp).summary() == run_chain(exp).summary()
    with pytest.raises(ValueError, match="read_fraction"):
        run_chain(ChainExperiment(read_fraction=1.5))
    with pytest.raises(ValueError, match="failure"):
        run_chain(ChainExperiment(failure="meteor"))
    with pytest.raises(ValueError, match="every member"):
        run_chain(ChainExperiment(members=1, kills=((0.1, 0),), joins=()))
    with pytest.raises(ValueError, match="raise requests"):
        run_chain(ChainExperiment(requests=10, kills=((5.0, 0),), joins=()))
