"""The serve replica set: lifecycle, reconcile to target, replacing dead replicas."""

from __future__ import annotations

import pytest

from runtime.core.serve import (
    DEAD,
    RUNNING,
    STOPPING,
    ReplicaSet,
    ReplicaStateError,
    ServeConfigError,
    StartReplica,
    StopReplica,
)


def _up(n: int = 2) -> ReplicaSet:
    rs = ReplicaSet("app#M", target=n)
    for a in rs.reconcile():
        rs.started(a.replica_id)
    return rs


def test_reconcile_starts_target_and_is_idempotent() -> None:
    rs = ReplicaSet("app#M", target=2)
    assert rs.reconcile() == [StartReplica("app#M#0"), StartReplica("app#M#1")]
    assert rs.reconcile() == []
    assert rs.status() == "UPDATING" and rs.running() == []
    rs.started("app#M#0")
    rs.started("app#M#1")
    assert rs.running() == ["app#M#0", "app#M#1"] and rs.status() == "HEALTHY"


def test_a_dead_replica_is_replaced_with_a_fresh_id() -> None:
    rs = _up(2)
    rs.died("app#M#0")
    assert rs.state("app#M#0") == DEAD and rs.running() == ["app#M#1"]
    assert rs.reconcile() == [StartReplica("app#M#2")]
    rs.started("app#M#2")
    assert rs.status() == "HEALTHY"


def test_scaling_down_stops_the_newest_then_stopped_is_dead() -> None:
    rs = _up(3)
    rs.set_target(1)
    assert rs.reconcile() == [StopReplica("app#M#2"), StopReplica("app#M#1")]
    assert rs.state("app#M#1") == STOPPING and rs.running() == ["app#M#0"]
    rs.stopped("app#M#1")
    rs.stopped("app#M#2")
    assert rs.counts() == {"STARTING": 0, "RUNNING": 1, "STOPPING": 0, "DEAD": 2}
    assert rs.status() == "HEALTHY"


def test_starting_replicas_stop_first() -> None:
    rs = _up(1)
    rs.set_target(2)
    (start,) = rs.reconcile()
    rs.set_target(1)
    assert rs.reconcile() == [StopReplica(start.replica_id)]
    rs.started(start.replica_id)  # its constructor returned after the stop: stays STOPPING
    assert rs.state(start.replica_id) == STOPPING


def test_constructor_failures_give_up_after_the_limit() -> None:
    rs = ReplicaSet("app#M", target=1, max_start_failures=2)
    (a,) = rs.reconcile()
    rs.start_failed(a.replica_id, "boom")
    (b,) = rs.reconcile()
    rs.start_failed(b.replica_id, "boom again")
    assert rs.failed and rs.status() == "UNHEALTHY" and rs.last_error == "boom again"
    assert rs.reconcile() == []
    rs.set_target(1)  # a redeploy tries again
    assert len(rs.reconcile()) == 1


def test_died_while_starting_counts_as_a_start_failure() -> None:
    rs = ReplicaSet("app#M", target=1, max_start_failures=1)
    (a,) = rs.reconcile()
    rs.died(a.replica_id)
    assert rs.failed


def test_impossible_events_are_refused() -> None:
    rs = _up(1)
    rs.died("app#M#0")
    rs.died("app#M#0")  # a second report of the same death is harmless
    with pytest.raises(ReplicaStateError):
        rs.started("app#M#0")
    with pytest.raises(KeyError):
        rs.died("nope")
    assert rs.state("app#M#0") == DEAD
    assert RUNNING not in [rs.state(r) for r in rs.live()]


@pytest.mark.parametrize("target", [-1, 1.5, True, "2"])
def test_bad_targets_are_refused(target) -> None:
    with pytest.raises(ServeConfigError):
        ReplicaSet("d", target=target)
