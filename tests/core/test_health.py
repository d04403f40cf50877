"""The GCS's failure detector: its transition table, deadlines, fencing, and death by silence."""

from __future__ import annotations

import pytest

from runtime.core import health
from runtime.core.config import CoreConfig
from runtime.core.gcs import Gcs
from runtime.core.health import (
    ALIVE,
    DEAD,
    DIED,
    HEALTH_TIMER,
    HEARTBEAT,
    REGISTERED,
    SILENT,
    TRANSITIONS,
    UNTRACKED,
    FailureDetector,
    check_health_config,
)
from runtime.core.messages import (
    FenceNode,
    Heartbeat,
    NodeDied,
    NodeRemoved,
    RegisterNode,
    Send,
    SetTimer,
    Subscribe,
    TimerFired,
)
from tests.core.fake_host import FakeHost

STATES = (UNTRACKED, ALIVE, DEAD)
EVENTS = (HEARTBEAT, SILENT, DIED, REGISTERED)


def test_the_table_covers_every_state_and_event_but_silence_of_a_node_not_alive() -> None:
    missing = {(s, e) for s in STATES for e in EVENTS} - TRANSITIONS.keys()
    assert missing == {(UNTRACKED, SILENT), (DEAD, SILENT)}
    assert {nxt for nxt, _ in TRANSITIONS.values()} <= set(STATES)
    # a dead node never comes back by speaking, only by registering afresh
    assert TRANSITIONS[(DEAD, HEARTBEAT)] == (DEAD, health.FENCE)
    assert TRANSITIONS[(DEAD, REGISTERED)][0] == UNTRACKED
    with pytest.raises(KeyError):
        FailureDetector(0, 1.0, 0.5).step(5, SILENT)  # never heard of: cannot fall silent


def test_a_silent_node_is_declared_at_its_deadline_not_before() -> None:
    det = FailureDetector(addr=0, timeout_s=2.0, period_s=0.5)
    out: list = []
    det.on_heartbeat(1, 0.0, out)
    det.on_heartbeat(2, 0.5, out)
    assert [(type(c), c.delay, c.key) for c in out] == [(SetTimer, 2.0, HEALTH_TIMER)]
    out.clear()
    det.on_heartbeat(1, 1.0, out)  # node 1 refreshed: the earliest deadline is node 2's
    det.on_timer(1.9, out)  # early (a timer set before the refresh): nobody is late
    assert [type(c) for c in out] == [SetTimer] and out[0].delay == pytest.approx(0.6)
    out.clear()
    det.on_timer(2.5, out)  # node 2's deadline (0.5 + 2)
    fences = [c for c in out if type(c) is FenceNode]
    assert [f.node for f in fences] == [2] and "no heartbeat for 2" in fences[0].reason
    assert det.state(2) == DEAD and det.state(1) == ALIVE and det.declared == 1
    timers = [c for c in out if type(c) is SetTimer]
    assert len(timers) == 1 and timers[0].delay == pytest.approx(0.5)  # node 1's, at 3.0
    out.clear()
    det.on_heartbeat(2, 2.6, out)  # a dead node speaks: fenced again, not revived
    assert [type(c) for c in out] == [FenceNode] and det.state(2) == DEAD and det.fenced == 1
    out.clear()
    det.on_registered(2)  # a fresh raylet with that id: tracked from its first beat
    assert det.state(2) == UNTRACKED
    det.on_died(1)  # the host saw node 1 go (its link closed)
    det.on_timer(3.0, out)
    assert out == []  # nothing left to watch: no timer


def test_the_config_is_checked_with_clear_errors() -> None:
    check_health_config(0.0, 15.0)  # off
    check_health_config(3.0, 15.0)
    with pytest.raises(ValueError, match="heartbeat_period_s must be >= 0"):
        check_health_config(-1.0, 15.0)
    with pytest.raises(ValueError, match="node_timeout_s must be longer"):
        check_health_config(3.0, 3.0)
    with pytest.raises(ValueError, match="node_timeout_s must be longer"):
        Gcs(0, CoreConfig(heartbeat_period_s=1.0, node_timeout_s=0.5))
    assert health.RAY_NODE_TIMEOUT_S == 15.0  # Ray's 3 s period x 5 failures


def test_without_heartbeats_nothing_is_sent_and_the_gcs_has_no_detector() -> None:
    host = FakeHost(nodes=2, timers=True)
    host.run(until=1.0)
    assert host.gcs.health is None
    sent = [c.msg for c in host.commands if type(c) is Send]
    assert not any(type(m) is Heartbeat for m in sent)


def _frozen_cluster() -> FakeHost:
    config = CoreConfig(spillback_threshold=0, heartbeat_period_s=0.1, node_timeout_s=0.5)
    return FakeHost(nodes=3, cpus=1, timers=True, config=config)


def test_a_frozen_node_is_declared_dead_after_the_timeout_and_its_tasks_retried() -> None:
    host = _frozen_cluster()
    oids = [host.submit(node=0, duration=2.0, name=f"t{i}")[0] for i in range(3)]
    host.run(until=0.3)
    victim = next(n for n in (1, 2) if host.raylets[n].running)
    stopped = host.now
    host.freeze(victim)  # sockets open, nothing said: only the silence tells
    host.run(until=stopped + 0.35)  # under the timeout (less a beat)
    assert host.fences == [] and host.gcs.nodes[victim].alive
    host.run(until=stopped + 0.8)
    assert [f.node for f in host.fences] == [victim]
    assert not host.gcs.nodes[victim].alive
    assert host.gcs.health is not None and host.gcs.health.state(victim) == DEAD
    host.run(until=stopped + 10.0)
    assert all(host.ready[o].error_kind is None for o in oids)
    assert all(host.ready[o].node != victim for o in oids)
    assert host.owners[0].retries >= 1
    # the node wakes up: what it says is refused, it stays dead
    host.thaw(victim)
    out: list = []
    host.gcs.handle(Heartbeat(victim), host.now, out)
    assert [type(c) for c in out] == [FenceNode] and not host.gcs.nodes[victim].alive


def test_a_node_re_registering_before_it_was_found_dead_died_first() -> None:
    gcs = Gcs(0, CoreConfig(heartbeat_period_s=1.0, node_timeout_s=5.0))
    out: list = []
    gcs.handle(Subscribe(50), 0.0, out)
    gcs.handle(RegisterNode(3, 103, {"CPU": 1.0}, 1 << 20), 0.0, out)
    gcs.handle(Heartbeat(3), 0.0, out)
    out.clear()
    gcs.handle(RegisterNode(3, 103, {"CPU": 1.0}, 1 << 20), 2.0, out)  # restarted at once
    kinds = [type(c.msg).__name__ for c in out if type(c) is Send]
    assert kinds.index("NodeRemoved") < kinds.index("NodeAdded")
    assert gcs.nodes[3].alive and gcs.health is not None and gcs.health.state(3) == UNTRACKED
    out.clear()
    gcs.handle(TimerFired(HEALTH_TIMER), 5.0, out)  # the old incarnation's deadline
    assert not any(type(c) is FenceNode for c in out)
    gcs.handle(NodeDied(3), 6.0, out)
    assert [c.msg for c in out if type(c) is Send and type(c.msg) is NodeRemoved]


def test_a_heartbeat_to_a_gcs_without_a_detector_is_a_wiring_error() -> None:
    from runtime.core.invariants import InvariantError

    with pytest.raises(InvariantError, match="heartbeat_period_s is 0"):
        Gcs(0, CoreConfig()).handle(Heartbeat(1), 0.0, [])


def test_a_late_timer_means_the_gcs_was_held_up_and_declares_nobody() -> None:
    det = FailureDetector(addr=0, timeout_s=2.0, period_s=0.5)
    out: list = []
    det.on_heartbeat(1, 0.0, out)  # timer due at 2.0
    out.clear()
    det.on_timer(9.0, out)  # the head stood still for 7 s: its queued beats come first
    assert [(type(c), c.delay) for c in out] == [(SetTimer, 0.5)] and det.stalls == 1
    out.clear()
    det.on_heartbeat(1, 9.1, out)  # the beat that waited behind the stall
    det.on_timer(9.5, out)
    assert det.state(1) == ALIVE and not any(type(c) is FenceNode for c in out)
    out.clear()
    det.on_timer(11.1, out)  # on time now, and silent since 9.1: declared
    assert [c.node for c in out if type(c) is FenceNode] == [1]
