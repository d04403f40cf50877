"""Chain replication (runtime/core/chain.py): the protocol's rules, driven without a host."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from runtime.core.chain import (
    ACTIVE,
    GET,
    PUT,
    REMOVED,
    SYNCING,
    TRANSITIONS,
    ChainAck,
    ChainClient,
    ChainConfig,
    ChainForward,
    ChainJoin,
    ChainMaster,
    ChainOp,
    ChainProtocolError,
    ChainReplica,
    ChainReply,
    ChainReport,
    ChainRequest,
    ChainSnapshot,
)
from runtime.core.messages import Send, SetTimer

MASTER, CLIENT = 1, 2


class Wire:
    """Delivers Sends in FIFO order, instantly; a dead address swallows what it is sent."""

    def __init__(self, components: dict[int, Any]) -> None:
        self.components = components
        self.queue: deque[tuple[int, Any]] = deque()
        self.dead: set[int] = set()
        self.timers: list[SetTimer] = []

    def run(self, out: list[Any]) -> None:
        self._take(out)
        while self.queue:
            dst, msg = self.queue.popleft()
            if dst in self.dead:
                continue
            produced: list[Any] = []
            self.components[dst].handle(msg, 0.0, produced)
            self.components[dst].check()
            self._take(produced)

    def _take(self, out: list[Any]) -> None:
        for cmd in out:
            if isinstance(cmd, Send):
                self.queue.append((cmd.dst, cmd.msg))
            else:
                self.timers.append(cmd)


def _chain(n: int) -> tuple[Wire, ChainMaster, list[ChainReplica]]:
    addrs = tuple(10 + i for i in range(n))
    master = ChainMaster(MASTER, addrs)
    replicas = [ChainReplica(a, MASTER) for a in addrs]
    wire = Wire({MASTER: master, **{r.addr: r for r in replicas}})
    out: list[Any] = []
    master.start(0.0, out)
    wire.run(out)
    return wire, master, replicas


def _put(wire: Wire, head: int, req_id: int, key: str, value: bytes) -> None:
    wire.run([Send(head, ChainRequest(CLIENT, req_id, PUT, key, value))])


class Inbox:
    """Stands in for the client: keeps what it is sent."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.got.append(msg)

    def check(self) -> None:
        pass


def test_a_write_is_answered_by_the_tail_once_every_member_holds_it() -> None:
    wire, _, replicas = _chain(3)
    inbox = wire.components[CLIENT] = Inbox()
    _put(wire, 10, 1, "k", b"v")
    assert [r.table for r in replicas] == [{"k": b"v"}] * 3
    assert [r.seq for r in replicas] == [1, 1, 1]
    assert [m.req_id for m in inbox.got if isinstance(m, ChainReply)] == [1]
    assert all(not r.sent for r in replicas)  # the tail's ack reached the head


def test_requests_to_the_wrong_member_get_the_chain_back() -> None:
    wire, _, _ = _chain(3)
    inbox = wire.components[CLIENT] = Inbox()
    wire.run([Send(12, ChainRequest(CLIENT, 1, PUT, "k", b"v"))])  # the tail takes no writes
    wire.run([Send(10, ChainRequest(CLIENT, 2, GET, "k"))])  # the head answers no reads
    assert [type(m) for m in inbox.got] == [ChainConfig, ChainConfig]
    assert inbox.got[0].members == (10, 11, 12)


def test_a_middle_member_removed_gets_its_unacknowledged_writes_resent() -> None:
    wire, master, (head, mid, tail) = _chain(3)
    inbox = wire.components[CLIENT] = Inbox()
    wire.dead.add(11)
    _put(wire, 10, 1, "a", b"1")  # lost at the dead middle member: no answer yet
    assert head.sent and not [m for m in inbox.got if isinstance(m, ChainReply)]
    wire.run([Send(MASTER, ChainReport(11, CLIENT))])
    assert master.members == (10, 12) and master.epoch == 1
    assert tail.table == {"a": b"1"}
    assert [m.req_id for m in inbox.got if isinstance(m, ChainReply)] == [1]
    assert not head.sent


def test_a_new_tail_answers_what_it_forwarded() -> None:
    wire, master, (head, mid, tail) = _chain(3)
    inbox = wire.components[CLIENT] = Inbox()
    wire.dead.add(12)
    _put(wire, 10, 1, "a", b"1")
    assert mid.sent
    wire.run([Send(MASTER, ChainReport(12, 10))])
    assert mid.next is None and not mid.sent
    assert [m.req_id for m in inbox.got if isinstance(m, ChainReply)] == [1]


def test_a_joining_member_serves_reads_only_after_its_snapshot() -> None:
    wire, master, replicas = _chain(2)
    inbox = wire.components[CLIENT] = Inbox()
    _put(wire, 10, 1, "a", b"1")
    fresh = ChainReplica(12, MASTER, founding=False)
    wire.components[12] = fresh
    assert fresh.state == SYNCING
    # a read that reaches the joining tail before the snapshot waits for it
    fresh.members, fresh.epoch = (10, 11, 12), 1
    held: list[Any] = []
    fresh.handle(ChainRequest(CLIENT, 2, GET, "a"), 0.0, held)
    assert held == []
    fresh.members, fresh.epoch = (), -1
    wire.run([])
    master.handle(ChainJoin(12), 0.0, held)
    wire.run(held)
    assert fresh.state == ACTIVE and fresh.table == {"a": b"1"} and fresh.seq == 1
    replies = [m for m in inbox.got if isinstance(m, ChainReply)]
    assert [(m.req_id, m.value) for m in replies] == [(1, None), (2, b"1")]


def test_a_removed_member_is_fenced() -> None:
    wire, master, (head, mid, tail) = _chain(3)
    inbox = wire.components[CLIENT] = Inbox()
    wire.run([Send(MASTER, ChainReport(12, CLIENT))])
    assert tail.state == REMOVED
    wire.run([Send(12, ChainRequest(CLIENT, 1, GET, "a"))])
    assert inbox.got == []  # a fenced member answers nothing, not even a redirect


def test_the_last_member_is_never_removed() -> None:
    wire, master, _ = _chain(2)
    wire.run([Send(MASTER, ChainReport(10, CLIENT)), Send(MASTER, ChainReport(11, CLIENT))])
    assert master.members == (11,)


def test_a_gap_in_the_chain_is_a_protocol_error() -> None:
    _, _, (head, mid, tail) = _chain(3)
    req = ChainRequest(CLIENT, 1, PUT, "a", b"1")
    with pytest.raises(ChainProtocolError, match="gap"):
        mid.handle(ChainForward(10, 5, req), 0.0, [])


def test_duplicate_forwards_are_dropped_and_reacknowledged() -> None:
    wire, _, (head, mid, tail) = _chain(3)
    wire.components[CLIENT] = Inbox()
    _put(wire, 10, 1, "a", b"1")
    out: list[Any] = []
    tail.handle(ChainForward(11, 1, ChainRequest(CLIENT, 1, PUT, "a", b"2")), 0.0, out)
    assert tail.table == {"a": b"1"}
    assert [type(c.msg) for c in out] == [ChainAck]


def test_transition_table_refuses_what_it_does_not_list() -> None:
    assert TRANSITIONS[(SYNCING, "snapshot")] == ACTIVE
    replica = ChainReplica(10, MASTER)
    with pytest.raises(ChainProtocolError, match="snapshot"):
        replica.handle(ChainSnapshot({}, 0), 0.0, [])


def test_master_removes_a_member_whose_heartbeats_stop() -> None:
    master = ChainMaster(MASTER, (10, 11), failure_timeout_s=0.01)
    out: list[Any] = []
    master.start(0.0, out)
    assert any(isinstance(c, SetTimer) for c in out)
    from runtime.core.chain import ChainHeartbeat
    from runtime.core.messages import TimerFired

    master.handle(ChainHeartbeat(10), 0.008, [])
    master.handle(TimerFired(master.CHECK), 0.009, [])
    assert master.members == (10, 11)
    master.handle(TimerFired(master.CHECK), 0.0125, out)
    assert master.members == (10,) and master.removed == [(0.0125, 11)]


def test_client_retries_reports_and_validates() -> None:
    ops = iter([ChainOp(PUT, "a", b"1")])
    client = ChainClient(CLIENT, MASTER, ops, timeout_s=0.01)
    out: list[Any] = []
    client.handle(ChainConfig(0, (10, 11)), 0.0, out)
    assert [c.dst for c in out if isinstance(c, Send)] == [10]
    from runtime.core.messages import TimerFired

    out.clear()
    client.handle(TimerFired(client.TIMER), 0.005, out)  # a stale timer: ignored
    assert out == []
    client.handle(TimerFired(client.TIMER), 0.0101, out)
    sent = [c for c in out if isinstance(c, Send)]
    assert [type(c.msg) for c in sent] == [ChainReport, ChainRequest]
    out.clear()
    client.handle(ChainConfig(1, (11,)), 0.011, out)  # the head moved: sent again at once
    assert [c.dst for c in out if isinstance(c, Send)] == [11]
    client.handle(ChainReply(1), 0.012, [])
    assert client.current is None and client.stats.done[0].attempts == 3
    with pytest.raises(ValueError, match="timeout_s"):
        ChainClient(CLIENT, MASTER, iter([]), timeout_s=0)
    with pytest.raises(ValueError, match="report_after"):
        ChainClient(CLIENT, MASTER, iter([]), report_after=0)
    with pytest.raises(ValueError, match="at least one member"):
        ChainMaster(MASTER, ())
