"""The GCS's failure detector: heartbeats in, nodes silent for ``node_timeout_s`` declared dead.

Raylets send ``Heartbeat`` every ``heartbeat_period_s`` (`CoreConfig`); the GCS hands
each one, its own health timer, every registration and every host-reported death to
the `FailureDetector` it owns. The detector keeps one state per node and moves it by
``TRANSITIONS``, a table from (state, event) to (next state, action); nothing else
changes a state. Sans-I/O like the rest of the core: time comes as ``now``, the timer is
a ``SetTimer`` command, a declaration is a ``FenceNode`` command.

Declaring a node dead does not run the recovery itself: ``FenceNode`` asks the host to
cut the node off, and the host hands the GCS ``NodeDied``, the path a closed connection
takes in real mode and a crash in the simulator (so a sharded simulated GCS hears it on
every shard, as it hears a crash). A node heard from after it was declared dead is
fenced again, never revived (Ray's raylet exits when told it was marked dead): its tasks
were retried and its objects reported lost, so nothing it says can be trusted. A fresh
registration of the same node id (a restarted node in the simulator) starts a new
incarnation, tracked from its first heartbeat.

A timer handled more than a period late (the GCS itself was held up: a busy head, a
stopped process) declares nobody: it waits one more period, so that heartbeats queued
behind the GCS are counted first. The timer is set for the earliest deadline (last heartbeat + timeout) among the nodes
alive, so a silent node is declared dead at that deadline (plus the host's timer slack),
never before, and an idle cluster's GCS wakes about once per timeout, not per heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from runtime.core.ids import Address, NodeId
from runtime.core.messages import Command, FenceNode, SetTimer

RAY_HEALTH_CHECK_PERIOD_S: Final = 3.0
"""Ray 2.60's ``health_check_period_ms`` (3000), in seconds: the real node processes'
default heartbeat period."""
RAY_HEALTH_CHECK_FAILURE_THRESHOLD: Final = 5
"""Ray 2.60's ``health_check_failure_threshold``: missed checks before a node is dead."""
RAY_NODE_TIMEOUT_S: Final = RAY_HEALTH_CHECK_PERIOD_S * RAY_HEALTH_CHECK_FAILURE_THRESHOLD
"""The real node processes' default ``node_timeout_s``: Ray's period x threshold (15 s)."""

HEALTH_TIMER: Final = "health"
"""The key of the GCS's health timer."""
SLACK_S: Final = 1e-9
"""A deadline this close to the timer's time counts as reached (float rounding of
``now + delay`` must not re-arm a timer for the same instant forever)."""

# states
UNTRACKED: Final = "untracked"
"""Not heard from yet (registered, or re-registered after a death)."""
ALIVE: Final = "alive"
"""Heard from within the timeout."""
DEAD: Final = "dead"
"""Declared dead (by the detector or by the host): fenced from now on."""

# events
HEARTBEAT: Final = "heartbeat"
"""A ``Heartbeat`` from the node."""
SILENT: Final = "silent"
"""The health timer found the node silent for ``node_timeout_s``."""
DIED: Final = "died"
"""The host reported the node dead (``NodeDied``: its connection closed, a crash)."""
REGISTERED: Final = "registered"
"""A ``RegisterNode`` for the node id: a fresh raylet (a restarted node)."""

# actions
SEEN: Final = "seen"
"""Record the heartbeat's time: the node's deadline moves on."""
DECLARE: Final = "declare"
"""Declare the node dead: ``FenceNode`` (the host reports ``NodeDied``)."""
FENCE: Final = "fence"
"""A dead node spoke: ``FenceNode`` again (the host cuts it off if it has not yet)."""
FORGET: Final = "forget"
"""Forget the node's times: it is tracked again from its next heartbeat."""
NOTHING: Final = "nothing"

TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    (UNTRACKED, HEARTBEAT): (ALIVE, SEEN),
    (UNTRACKED, DIED): (DEAD, NOTHING),
    (UNTRACKED, REGISTERED): (UNTRACKED, NOTHING),
    (ALIVE, HEARTBEAT): (ALIVE, SEEN),
    (ALIVE, SILENT): (DEAD, DECLARE),
    (ALIVE, DIED): (DEAD, NOTHING),
    (ALIVE, REGISTERED): (UNTRACKED, FORGET),
    (DEAD, HEARTBEAT): (DEAD, FENCE),
    (DEAD, DIED): (DEAD, NOTHING),
    (DEAD, REGISTERED): (UNTRACKED, FORGET),
}
"""(state, event) -> (next state, action). A pair not listed cannot happen (SILENT is
raised only for ALIVE nodes); `FailureDetector.step` raises ``KeyError`` on one.
``(ALIVE, REGISTERED)``: the GCS handles a re-registration of a node it holds alive as
that node's previous incarnation dying first (see `Gcs._on_register_node`)."""


def check_health_config(period_s: float, timeout_s: float) -> None:
    """Raise ``ValueError`` naming the bad value unless period and timeout make sense.

    ``period_s`` 0 turns heartbeats off; otherwise it must be positive and the timeout
    longer than one period (else a node on time is declared dead between two beats).
    """
    if not period_s >= 0:
        raise ValueError(f"heartbeat_period_s must be >= 0 (0: off), got {period_s!r}")
    if period_s and not timeout_s > period_s:
        raise ValueError(
            f"node_timeout_s must be longer than heartbeat_period_s ({period_s!r} s),"
            f" got {timeout_s!r}"
        )


@dataclass(slots=True)
class FailureDetector:
    """Per-node heartbeat states of one GCS; deaths are declared through ``FenceNode``."""

    addr: Address
    """The GCS's address (its health timer is set to it)."""
    timeout_s: float
    period_s: float
    """The raylets' heartbeat period (how late a timer may be before the GCS counts as held up)."""
    states: dict[NodeId, str] = field(default_factory=dict)
    """Node -> its state (`UNTRACKED`, `ALIVE`, `DEAD`); a node never heard of is absent."""
    last_seen: dict[NodeId, float] = field(default_factory=dict)
    """ALIVE nodes -> when their last heartbeat was handled."""
    timer_due: float | None = None
    """When the health timer set last fires (None: none set)."""
    declared: int = 0
    """Nodes declared dead by the detector (not counting deaths the host reported)."""
    fenced: int = 0
    """Heartbeats refused from nodes already dead."""
    stalls: int = 0
    """Health timers handled too late to judge (the GCS was held up)."""

    def step(self, node: NodeId, event: str) -> str:
        """Move ``node`` by ``event`` through `TRANSITIONS`; return the action to take."""
        state = self.states.get(node, UNTRACKED)
        nxt, action = TRANSITIONS[(state, event)]
        self.states[node] = nxt
        return action

    def state(self, node: NodeId) -> str:
        """The detector's state of ``node`` (`UNTRACKED` if never heard of)."""
        return self.states.get(node, UNTRACKED)

    def on_heartbeat(self, node: NodeId, now: float, out: list[Command]) -> None:
        """A heartbeat from ``node``: refresh it, or fence it if it was declared dead."""
        action = self.step(node, HEARTBEAT)
        if action == SEEN:
            self.last_seen[node] = now
            if self.timer_due is None:
                self._arm(now, out)
        else:
            self.fenced += 1
            out.append(FenceNode(node, f"node {node} was declared dead; it is fenced"))

    def on_timer(self, now: float, out: list[Command]) -> None:
        """The health timer fired: declare every node silent for the timeout, re-arm.

        A timer handled more than a heartbeat period late means the GCS itself was held
        up (a busy or stopped head): the heartbeats that waited behind it may not be
        handled yet, so nobody is declared now; the timer is set again a period ahead.
        """
        due, self.timer_due = self.timer_due, None
        if due is not None and now - due > self.period_s:
            self.timer_due = now + self.period_s
            out.append(SetTimer(self.addr, self.period_s, HEALTH_TIMER))
            self.stalls += 1
            return
        last_seen, timeout = self.last_seen, self.timeout_s
        cutoff = now + SLACK_S
        silent = sorted(n for n, seen in last_seen.items() if seen + timeout <= cutoff)
        for node in silent:
            quiet = now - last_seen.pop(node)
            self.step(node, SILENT)
            self.declared += 1
            reason = f"node {node} sent no heartbeat for {quiet:.3g} s (node_timeout_s {timeout:g})"
            out.append(FenceNode(node, reason))
        if self.last_seen:
            self._arm(now, out)

    def on_died(self, node: NodeId) -> None:
        """The host reported ``node`` dead: it is fenced from now on."""
        self.step(node, DIED)
        self.last_seen.pop(node, None)

    def on_registered(self, node: NodeId) -> None:
        """A fresh raylet registered as ``node``: tracked again from its first heartbeat."""
        if self.step(node, REGISTERED) == FORGET:
            self.last_seen.pop(node, None)

    def _arm(self, now: float, out: list[Command]) -> None:
        due = min(self.last_seen.values()) + self.timeout_s
        self.timer_due = due
        out.append(SetTimer(self.addr, max(0.0, due - now), HEALTH_TIMER))
