"""A deployment's replica set as a pure state machine: start, run, stop, replace the dead.

API (the host carries out the returned actions and reports back)::

    rs = ReplicaSet("app#Model", target=2, max_start_failures=3)
    actions = rs.reconcile()        # -> [StartReplica("app#Model#0"), StartReplica(...#1)]
    rs.started("app#Model#0")       # its constructor returned: RUNNING
    rs.start_failed("app#Model#1")  # its constructor raised: DEAD; reconcile replaces it
    rs.died("app#Model#0")          # a RUNNING (or STARTING) replica's process died: DEAD
    rs.set_target(1)                # then reconcile() -> [StopReplica(...)] for the surplus
    rs.stopped("app#Model#0")       # a STOPPING replica is gone: DEAD
    rs.running()                    # replicas requests may go to (router.update_replicas)
    rs.status()                     # Ray's DeploymentStatus name: UPDATING, HEALTHY, UNHEALTHY

Lifecycle: STARTING -> RUNNING -> STOPPING -> DEAD, and STARTING/RUNNING -> DEAD on a death.
``reconcile`` keeps ``target`` replicas STARTING or RUNNING: a dead replica is replaced by a
new one with a fresh id (``<deployment>#<n>``, n counting up); surplus replicas are stopped,
STARTING ones first, then the newest RUNNING. After ``max_start_failures`` constructor failures
in a row with no replica ever started, the set stops trying (Ray's DEPLOY_FAILED): status
UNHEALTHY and ``failed`` True, until ``set_target`` is called again.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.core.serve.errors import ReplicaStateError, ServeConfigError

STARTING = "STARTING"
RUNNING = "RUNNING"
STOPPING = "STOPPING"
DEAD = "DEAD"

UPDATING = "UPDATING"
HEALTHY = "HEALTHY"
UNHEALTHY = "UNHEALTHY"

_NEXT: dict[str, frozenset[str]] = {
    STARTING: frozenset({RUNNING, STOPPING, DEAD}),
    RUNNING: frozenset({STOPPING, DEAD}),
    STOPPING: frozenset({DEAD}),
    DEAD: frozenset(),
}


@dataclass(frozen=True, slots=True)
class StartReplica:
    """Action: create the replica's actor (and run its constructor)."""

    replica_id: str


@dataclass(frozen=True, slots=True)
class StopReplica:
    """Action: stop the replica's actor (it takes no new requests from now on)."""

    replica_id: str


class ReplicaSet:
    """The replicas of one deployment and the actions that keep ``target`` of them running."""

    def __init__(self, deployment: str, target: int, max_start_failures: int = 3) -> None:
        _check_target(target)
        if isinstance(max_start_failures, bool) or not isinstance(max_start_failures, int):
            raise ServeConfigError(f"max_start_failures must be an int, got {max_start_failures!r}")
        if max_start_failures < 1:
            raise ServeConfigError(f"max_start_failures must be >= 1, got {max_start_failures}")
        self.deployment = deployment
        self.target = target
        self.max_start_failures = max_start_failures
        self._state: dict[str, str] = {}
        self._order: list[str] = []  # creation order of live (not DEAD) replicas
        self._next = 0
        self._start_failures = 0
        self._ever_started = False
        self.failed = False
        self.last_error: str | None = None

    # -- queries ---------------------------------------------------------------------------
    def state(self, replica_id: str) -> str:
        """The replica's state (DEAD for one that is gone); KeyError for an unknown id."""
        return self._state[replica_id]

    def running(self) -> list[str]:
        """RUNNING replicas, oldest first: where requests may go."""
        return [r for r in self._order if self._state[r] == RUNNING]

    def live(self) -> list[str]:
        """Replicas STARTING, RUNNING or STOPPING, oldest first."""
        return list(self._order)

    def counts(self) -> dict[str, int]:
        """How many replicas are in each state (DEAD ones counted as well)."""
        out = {STARTING: 0, RUNNING: 0, STOPPING: 0, DEAD: 0}
        for s in self._state.values():
            out[s] += 1
        return out

    def status(self) -> str:
        """Ray's DeploymentStatus: HEALTHY at target, UNHEALTHY when starts failed, else UPDATING."""
        if self.failed:
            return UNHEALTHY
        live = [self._state[r] for r in self._order]
        if len(live) == self.target and all(s == RUNNING for s in live):
            return HEALTHY
        return UPDATING

    # -- commands from the controller --------------------------------------------------------
    def set_target(self, target: int) -> None:
        """Ask for ``target`` replicas (0 to tear down); clears a failed state."""
        _check_target(target)
        self.target = target
        self.failed = False
        self._start_failures = 0

    def reconcile(self) -> list[StartReplica | StopReplica]:
        """The actions that bring the set to ``target`` STARTING-or-RUNNING replicas."""
        actions: list[StartReplica | StopReplica] = []
        active = [r for r in self._order if self._state[r] in (STARTING, RUNNING)]
        surplus = len(active) - self.target
        if surplus > 0:
            starting = [r for r in active if self._state[r] == STARTING]
            running = [r for r in active if self._state[r] == RUNNING]
            for r in (starting[::-1] + running[::-1])[:surplus]:
                self._move(r, STOPPING)
                actions.append(StopReplica(r))
        elif surplus < 0 and not self.failed:
            for _ in range(-surplus):
                rid = f"{self.deployment}#{self._next}"
                self._next += 1
                self._state[rid] = STARTING
                self._order.append(rid)
                actions.append(StartReplica(rid))
        return actions

    # -- events from the host ------------------------------------------------------------------
    def started(self, replica_id: str) -> None:
        """The replica's constructor returned: it takes requests from now on."""
        if self._state.get(replica_id) == STOPPING:
            return  # stopped before it finished starting: stays STOPPING
        self._move(replica_id, RUNNING)
        self._ever_started = True
        self._start_failures = 0

    def start_failed(self, replica_id: str, error: str = "") -> None:
        """The replica's constructor raised (or its process died while starting)."""
        self._die(replica_id)
        self.last_error = error or self.last_error
        self._start_failures += 1
        if not self._ever_started and self._start_failures >= self.max_start_failures:
            self.failed = True

    def died(self, replica_id: str) -> None:
        """The replica's process died (any live state); ``reconcile`` replaces it."""
        if self._state.get(replica_id) == STARTING:
            self.start_failed(replica_id, "the replica died while starting")
            return
        self._die(replica_id)

    def stopped(self, replica_id: str) -> None:
        """A STOPPING replica's actor is gone."""
        self._die(replica_id)

    def _die(self, replica_id: str) -> None:
        if self._state.get(replica_id, DEAD) == DEAD:
            if replica_id not in self._state:
                raise KeyError(f"unknown replica {replica_id!r}")
            return
        self._move(replica_id, DEAD)

    def _move(self, replica_id: str, new: str) -> None:
        old = self._state.get(replica_id)
        if old is None:
            raise KeyError(f"unknown replica {replica_id!r}")
        if new not in _NEXT[old]:
            raise ReplicaStateError(f"replica {replica_id!r} cannot go from {old} to {new}")
        self._state[replica_id] = new
        if new == DEAD:
            self._order.remove(replica_id)


def _check_target(target: int) -> None:
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ServeConfigError(f"num_replicas must be an int >= 0, got {target!r}")
