"""GCS fault tolerance (the Ray paper's Fig. 10a): the core's chain replication, simulated.

A client records and reads task entries (keys of 25 bytes, values of 512 bytes, one
request in flight at a time, as in the paper's experiment) against a chain of
`runtime.core.chain.ChainReplica` members, one per node, with a `ChainMaster` on the head
node. At chosen times a member's process is killed: from then on its machine refuses
connections to it (the simulated kernel answers ``ChainUnreachable`` to whoever sends it a
request or a write), so the first member or client that tries reports it; and a fresh
member may join later. Every decision (who is head and tail, what is sent again, when a
write is answered) is the core's; this module only hosts the components on the
simulator's `Host` (service times, the network's delays) and records what the client saw.

After the run it checks the paper's claim that no write is lost: the last value the
client wrote to each key is what every live member holds, and every read returned the
last value written before it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runtime.core.chain import (
    GET,
    PUT,
    ChainClient,
    ChainForward,
    ChainJoin,
    ChainMaster,
    ChainOp,
    ChainReplica,
    ChainRequest,
    ChainUnreachable,
)
from runtime.core.component import Component
from runtime.core.messages import Send
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.network import Network
from sim.scenario.models import NetworkSpec

CLIENT_ADDR = 1
MASTER_ADDR = 2
FIRST_REPLICA_ADDR = 10


@dataclass
class ChainExperiment:
    """The experiment's knobs (defaults: the paper's request sizes, a 3-member chain)."""

    members: int = 3
    requests: int = 20_000
    key_bytes: int = 25
    value_bytes: int = 512
    keys: int = 1_000
    read_fraction: float = 0.5
    kills: tuple[tuple[float, int], ...] = ((0.5, 1),)
    """(time s, member position at that time: 0 head, -1 tail) of each member killed."""
    joins: tuple[float, ...] = (1.0,)
    """Times a fresh member joins at the tail."""
    replica_us: float = 20.0
    """Service time of a member per message (a Redis-like store's operation)."""
    master_us: float = 50.0
    client_us: float = 5.0
    kernel_us: float = 20.0
    """Time the machine of a killed member takes to refuse a connection."""
    timeout_ms: float = 10.0
    """The client's request timeout (retry; with ``failure: process`` also report the
    member it sent to)."""
    failure: str = "process"
    """``process``: a killed member's machine refuses connections to it (found at the
    first attempt to reach it); ``machine``: the machine is gone, messages vanish, and the
    master finds out when its heartbeats stop."""
    heartbeat_ms: float = 2.0
    failure_timeout_ms: float = 10.0
    """With ``failure: machine``: members' heartbeat period and the master's timeout."""
    link_latency_us: float = 25.0
    link_bandwidth_gbps: float = 10.0
    seed: int = 1

    def validate(self) -> None:
        """Raise ValueError naming the first knob out of range."""
        checks = {
            "members": self.members >= 1,
            "requests": self.requests >= 1,
            "keys": self.keys >= 1,
            "read_fraction": 0.0 <= self.read_fraction <= 1.0,
            "timeout_ms": self.timeout_ms > 0,
            "key_bytes": self.key_bytes >= 1,
            "value_bytes": self.value_bytes >= 1,
            "failure": self.failure in FAILURES,
            "heartbeat_ms": self.heartbeat_ms > 0,
            "failure_timeout_ms": self.failure_timeout_ms > self.heartbeat_ms,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ChainExperiment.{name} out of range: {getattr(self, name)!r}")
        if len(self.kills) >= self.members + len(self.joins):
            raise ValueError("ChainExperiment.kills would kill every member of the chain")


@dataclass
class ChainResult:
    """What the client saw, and the consistency check's findings."""

    latencies_ms: list[tuple[float, float, str]] = field(default_factory=list)
    """(time s the request was answered, latency ms, op) of every request."""
    kills: list[tuple[float, int]] = field(default_factory=list)
    """(time s, address) of each member killed."""
    joins: list[tuple[float, int]] = field(default_factory=list)
    removals: list[tuple[float, int]] = field(default_factory=list)
    """(time s, address) of each removal by the master."""
    lost_writes: int = 0
    stale_reads: int = 0
    timeouts: int = 0
    reports: int = 0
    final_members: tuple[int, ...] = ()
    steady_ms: float = 0.0
    """Median latency of the requests answered before the first kill."""
    max_ms: float = 0.0
    """The largest client-observed latency (a reconfiguration's delay)."""

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready."""
        return {
            "requests": len(self.latencies_ms),
            "steady_ms": round(self.steady_ms, 4),
            "max_ms": round(self.max_ms, 4),
            "lost_writes": self.lost_writes,
            "stale_reads": self.stale_reads,
            "timeouts": self.timeouts,
            "reports": self.reports,
            "kills": self.kills,
            "joins": self.joins,
            "removals": self.removals,
            "final_members": list(self.final_members),
        }


class _Refusing(Component):
    """A killed member's address: its machine refuses connections (no state, no service)."""

    def __init__(self, addr: int) -> None:
        self.addr = addr
        self.refused = 0

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Refuse `msg`: tell its sender, if it names one, that the member is gone."""
        sender = msg.client if isinstance(msg, ChainRequest) else None
        if isinstance(msg, ChainForward):
            sender = msg.src
        if sender is not None:
            self.refused += 1
            out.append(Send(sender, ChainUnreachable(self.addr), 40))

    def check(self) -> None:
        """Nothing to check."""


class _Silent(Component):
    """A lost machine's address: whatever is sent there vanishes."""

    def __init__(self, addr: int) -> None:
        self.addr = addr

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Drop `msg`."""

    def check(self) -> None:
        """Nothing to check."""


FAILURES = {"process": _Refusing, "machine": _Silent}
"""What a killed member's address turns into, by ``ChainExperiment.failure``."""


def _ops(exp: ChainExperiment, rng: random.Random) -> Iterator[ChainOp]:
    """The client's workload: reads and writes of task entries, drawn from the seed."""
    for i in range(exp.requests):
        key = f"task:{rng.randrange(exp.keys):0{exp.key_bytes - 5}d}"[: exp.key_bytes]
        if rng.random() < exp.read_fraction:
            yield ChainOp(GET, key)
        else:
            yield ChainOp(PUT, key, i.to_bytes(8, "big") * (exp.value_bytes // 8))


def run_chain(exp: ChainExperiment) -> ChainResult:
    """Run the experiment once; deterministic for the same knobs and seed."""
    exp.validate()
    rng = random.Random(exp.seed)
    founding = exp.members
    total_nodes = 1 + founding + len(exp.joins)
    spec = NetworkSpec(
        link_latency_us=exp.link_latency_us, link_bandwidth_gbps=exp.link_bandwidth_gbps
    )
    host = Host(Network(spec, total_nodes), MetricsRecorder(), random.Random(exp.seed + 1))
    addrs = [FIRST_REPLICA_ADDR + i for i in range(founding + len(exp.joins))]
    machine = exp.failure == "machine"
    heartbeat_s = exp.heartbeat_ms / 1e3 if machine else None
    master = ChainMaster(
        MASTER_ADDR,
        tuple(addrs[:founding]),
        failure_timeout_s=exp.failure_timeout_ms / 1e3 if machine else None,
    )
    client = ChainClient(
        CLIENT_ADDR,
        MASTER_ADDR,
        _ops(exp, rng),
        timeout_s=exp.timeout_ms / 1e3,
        report_after=None if machine else 1,
    )
    host.add(MASTER_ADDR, master, 0, exp.master_us * 1e-6)
    host.add(CLIENT_ADDR, client, 0, exp.client_us * 1e-6)
    replicas: dict[int, ChainReplica] = {}
    for i, addr in enumerate(addrs):
        replicas[addr] = ChainReplica(addr, MASTER_ADDR, i < founding, heartbeat_s)
        if i < founding:
            host.add(addr, replicas[addr], 1 + i, exp.replica_us * 1e-6)
    result = ChainResult()

    def kill(position: int) -> None:
        victim = master.members[position]
        host.replace(victim, FAILURES[exp.failure](victim), exp.kernel_us * 1e-6)
        result.kills.append((host.now, victim))

    def join(index: int) -> None:
        addr = addrs[founding + index]
        replica = replicas[addr]
        host.add(addr, replica, 1 + founding + index, exp.replica_us * 1e-6)
        host.start_component(addr)
        result.joins.append((host.now, addr))
        host.deliver(MASTER_ADDR, ChainJoin(addr))

    for at, position in exp.kills:
        host.call_at(at, lambda p=position: kill(p))
    for i, at in enumerate(exp.joins):
        host.call_at(at, lambda i=i: join(i))
    host.start()
    host.run_while(lambda: client.current is not None or client.epoch < 0)
    late = [at for at, _ in exp.kills if at > host.now] + [at for at in exp.joins if at > host.now]
    if late:
        raise ValueError(
            f"ChainExperiment: the client's {exp.requests} requests ended at {host.now:.3g} s, "
            f"before the kill or join at {min(late):g} s: raise requests"
        )
    _collect(exp, result, client, master, replicas, host)
    return result


def _collect(
    exp: ChainExperiment,
    result: ChainResult,
    client: ChainClient,
    master: ChainMaster,
    replicas: dict[int, ChainReplica],
    host: Host,
) -> None:
    """Latencies, removals and the consistency check."""
    first_kill = min((at for at, _ in exp.kills), default=float("inf"))
    steady = []
    written: dict[str, bytes] = {}
    for op in client.stats.done:
        ms = (op.finished - op.started) * 1e3
        result.latencies_ms.append((op.finished, ms, op.op))
        if op.finished < first_kill:
            steady.append(ms)
        if op.op == PUT:
            assert op.value is not None
            written[op.key] = op.value
        elif op.result != written.get(op.key):
            result.stale_reads += 1
    steady.sort()
    result.steady_ms = steady[len(steady) // 2] if steady else 0.0
    result.max_ms = max((ms for _, ms, _ in result.latencies_ms), default=0.0)
    result.timeouts = client.stats.timeouts
    result.reports = client.stats.reports
    result.removals = list(master.removed)
    result.final_members = master.members
    for addr in master.members:
        table = replicas[addr].table
        result.lost_writes += sum(1 for k, v in written.items() if table.get(k) != v)
