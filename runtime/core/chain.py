"""Chain replication of a GCS table store: replicas, the chain master and a client, sans-I/O.

The Ray paper keeps the GCS fault tolerant with "a lightweight chain replication layer"
under its tables (van Renesse and Schneider, OSDI 2004). This module is that layer as
three core components, each with ``handle(msg, now, out)`` like every other component:

* `ChainReplica`: holds a copy of the key-value table. Writes enter at the *head*, which
  gives each a sequence number, applies it and forwards it down the chain; the *tail*
  applies it, answers the client and acknowledges it upstream, so a write is answered only
  once every member has it. Reads are answered by the tail alone (they see only writes
  every member holds). Each member keeps what it forwarded and the tail has not yet
  acknowledged (``sent``): when its successor changes it sends all of it again (the new
  successor drops what it already has), and when it becomes the tail it answers it.
* `ChainMaster`: the chain's membership. A member or client that finds a member gone (a
  refused connection, ``ChainUnreachable``; or a client's request timing out) reports it;
  the master removes it and publishes the new configuration (an epoch and the members in
  order) to members and clients. A fresh member joins at the tail: the old tail sends it a
  snapshot of the table, and it serves reads only once it has it.
* `ChainClient`: the paper's client: one request in flight at a time, each retried after
  ``timeout_s`` (and the member it was sent to reported after ``report_after`` misses),
  sent again at once when a new configuration moves the head or tail.

The master itself is not replicated (Ray's was not either). The protocol's messages are
defined here, not in ``runtime.core.messages``: this is a service of its own that the
control plane's components never see. No clock, no I/O: time is ``now``, timeouts are
``SetTimer`` commands.

Replica states and their transitions:

=========  =========================================  =========
state      event                                      next
=========  =========================================  =========
SYNCING    ``ChainSnapshot`` from the old tail         ACTIVE
ACTIVE     a configuration that does not list it       REMOVED
SYNCING    a configuration that does not list it       REMOVED
=========  =========================================  =========

(a founding member starts ACTIVE; a REMOVED member answers nothing, as Ray fences it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from runtime.core.component import Component
from runtime.core.errors import ChainProtocolError
from runtime.core.ids import Address
from runtime.core.messages import Command, HostEvent, Message, Send, SetTimer, TimerFired

SYNCING: Final = "SYNCING"
ACTIVE: Final = "ACTIVE"
REMOVED: Final = "REMOVED"

TRANSITIONS: dict[tuple[str, str], str] = {
    (SYNCING, "snapshot"): ACTIVE,
    (ACTIVE, "removed"): REMOVED,
    (SYNCING, "removed"): REMOVED,
}
"""(state, event) -> next state of a replica; any other pair is a protocol error."""

PUT: Final = "put"
GET: Final = "get"

# ---------------------------------------------------------------------------------------
# The chain's protocol
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class ChainRequest(Message):
    """Client -> head (``put``) or tail (``get``)."""

    client: Address
    req_id: int
    op: str
    key: str
    value: bytes | None = None


@dataclass(slots=True, eq=False)
class ChainForward(Message):
    """Member -> its successor: apply write ``seq`` (sent again after a reconfiguration)."""

    src: Address
    seq: int
    req: ChainRequest


@dataclass(slots=True, eq=False)
class ChainAck(Message):
    """Member -> its predecessor: the tail has applied every write up to ``seq``."""

    seq: int


@dataclass(slots=True, eq=False)
class ChainReply(Message):
    """Tail -> client: the answer to ``req_id`` (a get's value, ``None`` if absent)."""

    req_id: int
    value: bytes | None = None


@dataclass(slots=True, eq=False)
class ChainUnreachable(Message):
    """The machine of a crashed member -> a sender: connection refused to ``dead``."""

    dead: Address


@dataclass(slots=True, eq=False)
class ChainReport(Message):
    """Member or client -> master: ``suspect`` seems gone."""

    suspect: Address
    reporter: Address


@dataclass(slots=True, eq=False)
class ChainConfig(Message):
    """Master -> members and clients (also member -> a misdirected client): the chain."""

    epoch: int
    members: tuple[Address, ...]


@dataclass(slots=True, eq=False)
class ChainSnapshot(Message):
    """Old tail -> a joining member: the whole table and the last write it holds."""

    table: dict[str, bytes]
    seq: int


@dataclass(slots=True, eq=False)
class ChainHeartbeat(Message):
    """Member -> master, every ``heartbeat_s``: still here."""

    member: Address


@dataclass(slots=True, eq=False)
class ChainJoin(HostEvent):
    """Operator -> master: add the fresh replica at ``addr`` at the tail."""

    addr: Address


@dataclass(slots=True, eq=False)
class ChainSubscribe(Message):
    """Client -> master: send me every new configuration."""

    client: Address


def _wire(req: ChainRequest) -> int:
    """Modelled wire size of a request: a header, the key and the value."""
    return 48 + len(req.key) + (len(req.value) if req.value is not None else 0)


# ---------------------------------------------------------------------------------------
# Replica
# ---------------------------------------------------------------------------------------


class ChainReplica(Component):
    """One member of the chain: a copy of the table and its place in the chain."""

    HEARTBEAT = "chain-heartbeat"

    def __init__(
        self,
        addr: Address,
        master: Address,
        founding: bool = True,
        heartbeat_s: float | None = None,
    ) -> None:
        """A member at `addr`; a founding member starts ACTIVE with an empty table.

        With `heartbeat_s` it tells the master every `heartbeat_s` that it is alive.
        """
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s must be positive, got {heartbeat_s}")
        self.addr = addr
        self.master = master
        self.heartbeat_s = heartbeat_s
        self.state = ACTIVE if founding else SYNCING
        self.table: dict[str, bytes] = {}
        self.seq = 0
        """The last write applied here."""
        self.sent: dict[int, ChainRequest] = {}
        """Writes forwarded and not yet acknowledged by the tail, in sequence order."""
        self.epoch = -1
        self.members: tuple[Address, ...] = ()
        self.prev: Address | None = None
        self.next: Address | None = None
        self._deferred: list[ChainRequest] = []
        """Reads that reached a SYNCING tail, answered once its snapshot arrives."""
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            ChainRequest: self._on_request,
            ChainForward: self._on_forward,
            ChainAck: self._on_ack,
            ChainConfig: self._on_config,
            ChainSnapshot: self._on_snapshot,
            ChainUnreachable: self._on_unreachable,
            TimerFired: self._on_heartbeat_timer,
        }

    def start(self, now: float, out: list[Command]) -> None:
        """Start the heartbeats, if any."""
        if self.heartbeat_s is not None:
            self._on_heartbeat_timer(None, now, out)

    def _on_heartbeat_timer(self, msg: TimerFired | None, now: float, out: list[Command]) -> None:
        assert self.heartbeat_s is not None
        out.append(Send(self.master, ChainHeartbeat(self.addr), 32))
        out.append(SetTimer(self.addr, self.heartbeat_s, self.HEARTBEAT))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """Handle one message (a REMOVED member ignores everything)."""
        if self.state == REMOVED:
            return
        self._handlers[type(msg)](msg, now, out)

    def check(self) -> None:
        """Raise ChainProtocolError if the replica's own state is inconsistent."""
        if self.sent and min(self.sent) <= 0:
            raise ChainProtocolError(f"replica {self.addr}: a write numbered {min(self.sent)}")
        if self.sent and max(self.sent) > self.seq:
            raise ChainProtocolError(f"replica {self.addr}: forwarded a write it has not applied")

    @property
    def is_head(self) -> bool:
        """Whether this member takes the writes."""
        return bool(self.members) and self.members[0] == self.addr

    @property
    def is_tail(self) -> bool:
        """Whether this member answers reads and acknowledges writes."""
        return bool(self.members) and self.members[-1] == self.addr

    def _move(self, event: str) -> None:
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise ChainProtocolError(f"replica {self.addr}: {event!r} while {self.state}")
        self.state = nxt

    def _on_request(self, req: ChainRequest, now: float, out: list[Command]) -> None:
        if req.op == PUT:
            if not self.is_head:
                self._redirect(req, out)
                return
            self.seq += 1
            self._apply(self.seq, req, out)
        elif req.op == GET:
            if not self.is_tail:
                self._redirect(req, out)
            elif self.state == SYNCING:
                self._deferred.append(req)
            else:
                self._answer_get(req, out)
        else:
            raise ChainProtocolError(f"unknown chain operation {req.op!r}")

    def _redirect(self, req: ChainRequest, out: list[Command]) -> None:
        """A request sent to the wrong member: tell the client the chain as known here."""
        out.append(Send(req.client, ChainConfig(self.epoch, self.members), 64))

    def _answer_get(self, req: ChainRequest, out: list[Command]) -> None:
        value = self.table.get(req.key)
        out.append(Send(req.client, ChainReply(req.req_id, value), 48 + len(value or b"")))

    def _apply(self, seq: int, req: ChainRequest, out: list[Command]) -> None:
        """Apply write `seq` here, then pass it on (or answer it, at the tail)."""
        assert req.value is not None
        self.table[req.key] = req.value
        if self.next is None:
            out.append(Send(req.client, ChainReply(req.req_id), 48))
            if self.prev is not None:
                out.append(Send(self.prev, ChainAck(seq), 32))
            return
        self.sent[seq] = req
        out.append(Send(self.next, ChainForward(self.addr, seq, req), _wire(req)))

    def _on_forward(self, msg: ChainForward, now: float, out: list[Command]) -> None:
        if msg.seq <= self.seq:  # sent again after a reconfiguration: already here
            if self.next is None and self.prev is not None:
                out.append(Send(self.prev, ChainAck(self.seq), 32))
            return
        if msg.seq != self.seq + 1:
            raise ChainProtocolError(
                f"replica {self.addr}: write {msg.seq} after {self.seq} (a gap in the chain)"
            )
        self.seq = msg.seq
        self._apply(msg.seq, msg.req, out)

    def _on_ack(self, msg: ChainAck, now: float, out: list[Command]) -> None:
        done = [s for s in self.sent if s <= msg.seq]
        for s in done:
            del self.sent[s]
        if done and self.prev is not None:
            out.append(Send(self.prev, ChainAck(msg.seq), 32))

    def _on_config(self, msg: ChainConfig, now: float, out: list[Command]) -> None:
        if msg.epoch <= self.epoch:
            return
        if self.addr not in msg.members:
            self._move("removed")
            return
        was_tail = self.epoch >= 0 and self.next is None
        old_next = self.next
        self.epoch, self.members = msg.epoch, msg.members
        i = msg.members.index(self.addr)
        self.prev = msg.members[i - 1] if i > 0 else None
        self.next = msg.members[i + 1] if i + 1 < len(msg.members) else None
        if self.next is None:
            self._become_tail(out)
        elif self.next != old_next:
            self._resend(was_tail, out)

    def _become_tail(self, out: list[Command]) -> None:
        """Every write this member forwarded is now held by the whole (shorter) chain."""
        if not self.sent:
            return
        for req in self.sent.values():
            out.append(Send(req.client, ChainReply(req.req_id), 48))
        if self.prev is not None:
            out.append(Send(self.prev, ChainAck(max(self.sent)), 32))
        self.sent.clear()

    def _resend(self, was_tail: bool, out: list[Command]) -> None:
        """A new successor: a joining one gets the table first, then what is unacknowledged."""
        assert self.next is not None
        if was_tail:
            size = sum(len(k) + len(v) for k, v in self.table.items())
            out.append(Send(self.next, ChainSnapshot(dict(self.table), self.seq), 64 + size))
        for seq, req in self.sent.items():
            out.append(Send(self.next, ChainForward(self.addr, seq, req), _wire(req)))

    def _on_snapshot(self, msg: ChainSnapshot, now: float, out: list[Command]) -> None:
        self._move("snapshot")
        self.table = msg.table
        self.seq = msg.seq
        deferred, self._deferred = self._deferred, []
        for req in deferred:
            self._answer_get(req, out)

    def _on_unreachable(self, msg: ChainUnreachable, now: float, out: list[Command]) -> None:
        out.append(Send(self.master, ChainReport(msg.dead, self.addr), 48))


# ---------------------------------------------------------------------------------------
# Master
# ---------------------------------------------------------------------------------------


class ChainMaster(Component):
    """The chain's membership: removes reported members, adds joining ones, publishes."""

    CHECK = "chain-check"

    def __init__(
        self,
        addr: Address,
        members: tuple[Address, ...],
        failure_timeout_s: float | None = None,
    ) -> None:
        """A master for a chain of `members` (head first); publish with `start`.

        With `failure_timeout_s`, a member whose heartbeats stop for that long is removed
        (members must then be built with ``heartbeat_s`` well below it).
        """
        if not members:
            raise ValueError("a chain needs at least one member")
        if failure_timeout_s is not None and failure_timeout_s <= 0:
            raise ValueError(f"failure_timeout_s must be positive, got {failure_timeout_s}")
        self.addr = addr
        self.failure_timeout_s = failure_timeout_s
        self.last_seen: dict[Address, float] = {}
        self.members = tuple(members)
        self.epoch = 0
        self.clients: list[Address] = []
        self.removed: list[tuple[float, Address]] = []
        """(time, member) of every removal."""
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            ChainReport: self._on_report,
            ChainJoin: self._on_join,
            ChainSubscribe: self._on_subscribe,
            ChainHeartbeat: self._on_heartbeat,
            TimerFired: self._on_check,
        }

    def start(self, now: float, out: list[Command]) -> None:
        """Publish the first configuration to the founding members; start checking."""
        self._publish(out)
        if self.failure_timeout_s is not None:
            for member in self.members:
                self.last_seen[member] = now
            out.append(SetTimer(self.addr, self.failure_timeout_s / 4, self.CHECK))

    def _on_heartbeat(self, msg: ChainHeartbeat, now: float, out: list[Command]) -> None:
        if msg.member in self.members:
            self.last_seen[msg.member] = now

    def _on_check(self, msg: TimerFired, now: float, out: list[Command]) -> None:
        timeout = self.failure_timeout_s
        assert timeout is not None
        for member in self.members:
            if now - self.last_seen.get(member, now) > timeout:
                self._remove(member, now, out)
        out.append(SetTimer(self.addr, timeout / 4, self.CHECK))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """Handle one message."""
        self._handlers[type(msg)](msg, now, out)

    def check(self) -> None:
        """Raise ChainProtocolError if the membership is inconsistent."""
        if len(set(self.members)) != len(self.members):
            raise ChainProtocolError(f"a member listed twice: {self.members}")

    def _config(self) -> ChainConfig:
        return ChainConfig(self.epoch, self.members)

    def _publish(self, out: list[Command], extra: tuple[Address, ...] = ()) -> None:
        config = self._config()
        for dst in (*self.members, *extra, *self.clients):
            out.append(Send(dst, config, 32 + 8 * len(self.members)))

    def _on_report(self, msg: ChainReport, now: float, out: list[Command]) -> None:
        if msg.suspect not in self.members:
            out.append(Send(msg.reporter, self._config(), 32 + 8 * len(self.members)))
            return
        self._remove(msg.suspect, now, out)

    def _remove(self, member: Address, now: float, out: list[Command]) -> None:
        if len(self.members) == 1:
            return  # the last member is never removed: nothing could take its place
        self.members = tuple(m for m in self.members if m != member)
        self.last_seen.pop(member, None)
        self.epoch += 1
        self.removed.append((now, member))
        self._publish(out, extra=(member,))

    def _on_join(self, msg: ChainJoin, now: float, out: list[Command]) -> None:
        if msg.addr in self.members:
            raise ChainProtocolError(f"member {msg.addr} is already in the chain")
        self.members = (*self.members, msg.addr)
        if self.failure_timeout_s is not None:
            self.last_seen[msg.addr] = now
        self.epoch += 1
        self._publish(out)

    def _on_subscribe(self, msg: ChainSubscribe, now: float, out: list[Command]) -> None:
        if msg.client not in self.clients:
            self.clients.append(msg.client)
        out.append(Send(msg.client, self._config(), 32 + 8 * len(self.members)))


# ---------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChainOp:
    """One operation of a client's workload, and what became of it."""

    op: str
    key: str
    value: bytes | None = None
    started: float = 0.0
    finished: float = -1.0
    result: bytes | None = None
    attempts: int = 0


@dataclass
class ChainClientStats:
    """What a client counted."""

    timeouts: int = 0
    reports: int = 0
    redirects: int = 0
    resent_on_config: int = 0
    done: list[ChainOp] = field(default_factory=list)


class ChainClient(Component):
    """Issues its workload's operations one at a time, retrying each until it is answered."""

    TIMER = "chain-timeout"

    def __init__(
        self,
        addr: Address,
        master: Address,
        ops: Iterator[ChainOp],
        timeout_s: float = 0.01,
        report_after: int | None = 1,
    ) -> None:
        """A client at `addr` running `ops` (drawn by the host) against the chain.

        After `report_after` timeouts in a row it reports the member it sent to (``None``:
        never; leave detection to refused connections and the master's heartbeats).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if report_after is not None and report_after < 1:
            raise ValueError(f"report_after must be at least 1, got {report_after}")
        self.addr = addr
        self.master = master
        self._ops = ops
        self.timeout_s = timeout_s
        self.report_after = report_after
        self.epoch = -1
        self.members: tuple[Address, ...] = ()
        self.current: ChainOp | None = None
        self._req_id = 0
        self._deadline = 0.0
        self._target: Address | None = None
        self._misses = 0
        self.stats = ChainClientStats()
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            ChainConfig: self._on_config,
            ChainReply: self._on_reply,
            ChainUnreachable: self._on_unreachable,
            TimerFired: self._on_timer,
        }

    def start(self, now: float, out: list[Command]) -> None:
        """Subscribe to the master; the first operation goes out with the first config."""
        out.append(Send(self.master, ChainSubscribe(self.addr), 32))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """Handle one message or timer."""
        self._handlers[type(msg)](msg, now, out)

    def check(self) -> None:
        """Nothing to check beyond what the handlers assert."""

    def _next(self, now: float, out: list[Command]) -> None:
        op = next(self._ops, None)
        self.current = op
        if op is None:
            return
        op.started = now
        self._req_id += 1
        self._misses = 0
        self._send(now, out)

    def _send(self, now: float, out: list[Command]) -> None:
        op = self.current
        assert op is not None
        target = self.members[0] if op.op == PUT else self.members[-1]
        op.attempts += 1
        self._target = target
        req = ChainRequest(self.addr, self._req_id, op.op, op.key, op.value)
        out.append(Send(target, req, _wire(req)))
        self._deadline = now + self.timeout_s
        out.append(SetTimer(self.addr, self.timeout_s, self.TIMER))

    def _on_config(self, msg: ChainConfig, now: float, out: list[Command]) -> None:
        if msg.epoch < self.epoch:
            return
        if msg.epoch == self.epoch:  # a redirect by a member that knows no more than we do
            self.stats.redirects += 1
            return
        first = self.epoch < 0
        self.epoch, self.members = msg.epoch, msg.members
        if first:
            self._next(now, out)
            return
        op = self.current
        if op is None:
            return
        target = self.members[0] if op.op == PUT else self.members[-1]
        if target != self._target:
            self.stats.resent_on_config += 1
            self._send(now, out)

    def _on_reply(self, msg: ChainReply, now: float, out: list[Command]) -> None:
        op = self.current
        if op is None or msg.req_id != self._req_id:
            return  # an answer to an attempt already answered
        op.finished = now
        op.result = msg.value
        self.stats.done.append(op)
        self._next(now, out)

    def _report(self, suspect: Address, out: list[Command]) -> None:
        self.stats.reports += 1
        out.append(Send(self.master, ChainReport(suspect, self.addr), 48))

    def _on_unreachable(self, msg: ChainUnreachable, now: float, out: list[Command]) -> None:
        self._report(msg.dead, out)

    def _on_timer(self, msg: TimerFired, now: float, out: list[Command]) -> None:
        if self.current is None or now < self._deadline:
            return  # the timer of an attempt already answered or sent again
        self.stats.timeouts += 1
        self._misses += 1
        after = self.report_after
        if after is not None and self._misses >= after and self._target is not None:
            self._report(self._target, out)
        self._send(now, out)
