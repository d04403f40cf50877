"""Ray Serve's PowerOfTwoChoices request router as a pure object, with a bounded wait queue.

API (``now`` is never needed: routing depends only on counts)::

    router = PowerOfTwoChoicesRouter(rng, max_ongoing_requests=5, max_queued_requests=-1)
    router.update_replicas(["d#0", "d#1"])   # -> [Assignment]: queued requests now placed
    d = router.route(request_id)             # -> RouteDecision(outcome, replica_id)
    #   ASSIGNED: send the request to d.replica_id now
    #   QUEUED:   every replica is full (or none runs yet); it waits in FIFO order
    #   REJECTED: the queue holds max_queued_requests already: answer 503 / BackPressureError
    router.release(replica_id)               # a request on it finished -> [Assignment]
    router.cancel(request_id)                # drop a queued request (True if it was queued)

The rule is Ray's: sample two distinct replicas (all of them when there are fewer), send the
request to the one with fewer ongoing requests among those below ``max_ongoing_requests``
(ties go to the first sampled). Ray retries the sampling with a backoff while both sampled
replicas are full; this router instead takes the least-loaded replica with room at once (the
outcome Ray's retries reach without the backoff delay), and when no replica has room the
request waits in a FIFO queue, served as replicas free up. ``max_queued_requests=-1`` (Ray's
default) means no bound. Counts are this router's own: each handle (driver, proxy, replica)
routes with its own router, as each Ray handle does; a replica enforces its own limit too.
A replica dropped by ``update_replicas`` (dead, stopping) takes its count with it: the host
fails or retries the requests it had there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from runtime.core.rng import Rng
from runtime.core.serve.errors import ServeConfigError

ASSIGNED = "ASSIGNED"  #: the request goes to ``replica_id`` now
QUEUED = "QUEUED"  #: the request waits for a replica with room
REJECTED = "REJECTED"  #: the wait queue is full: the caller answers 503


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What ``route`` decided for one request: the outcome and, when ASSIGNED, the replica."""

    outcome: str
    replica_id: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """A queued request placed on a replica (returned by ``release`` / ``update_replicas``)."""

    request_id: Hashable
    replica_id: str


class PowerOfTwoChoicesRouter:
    """Routes requests to a deployment's replicas by Ray's power-of-two-choices rule."""

    def __init__(self, rng: Rng, max_ongoing_requests: int, max_queued_requests: int = -1) -> None:
        if not isinstance(max_ongoing_requests, int) or max_ongoing_requests < 1:
            raise ServeConfigError(
                f"max_ongoing_requests must be an int >= 1, got {max_ongoing_requests!r}"
            )
        if not isinstance(max_queued_requests, int) or (
            max_queued_requests < 0 and max_queued_requests != -1
        ):
            raise ServeConfigError(
                f"max_queued_requests must be -1 (no bound) or an int >= 0, "
                f"got {max_queued_requests!r}"
            )
        self._rng = rng
        self.max_ongoing_requests = max_ongoing_requests
        self.max_queued_requests = max_queued_requests
        self._replicas: list[str] = []
        self._ongoing: dict[str, int] = {}
        self._queue: deque[Hashable] = deque()

    # -- queries ---------------------------------------------------------------------------
    @property
    def replicas(self) -> list[str]:
        """The replicas requests may go to, in the order given to ``update_replicas``."""
        return list(self._replicas)

    @property
    def queue_len(self) -> int:
        """How many requests wait for a replica with room."""
        return len(self._queue)

    def ongoing(self, replica_id: str) -> int:
        """Requests this router has on ``replica_id`` (0 for an unknown replica)."""
        return self._ongoing.get(replica_id, 0)

    def total_ongoing(self) -> int:
        """Requests this router has on all its replicas."""
        return sum(self._ongoing.values())

    # -- events ----------------------------------------------------------------------------
    def update_replicas(self, replica_ids: Sequence[str]) -> list[Assignment]:
        """Set the replicas to route to; keep the counts of those that stay.

        Returns the queued requests that the new replicas' room lets start now.
        """
        kept = {r: self._ongoing.get(r, 0) for r in replica_ids}
        self._replicas = list(dict.fromkeys(replica_ids))
        self._ongoing = kept
        return self._drain()

    def route(self, request_id: Hashable) -> RouteDecision:
        """Decide where a new request goes: ASSIGNED (with a replica), QUEUED or REJECTED."""
        if not self._queue:
            replica = self._choose()
            if replica is not None:
                self._ongoing[replica] += 1
                return RouteDecision(ASSIGNED, replica)
        if self.max_queued_requests != -1 and len(self._queue) >= self.max_queued_requests:
            return RouteDecision(REJECTED)
        self._queue.append(request_id)
        return RouteDecision(QUEUED)

    def release(self, replica_id: str) -> list[Assignment]:
        """A request on ``replica_id`` finished (or failed); returns queued requests placed."""
        count = self._ongoing.get(replica_id)
        if count is not None and count > 0:
            self._ongoing[replica_id] = count - 1
        return self._drain()

    def cancel(self, request_id: Hashable) -> bool:
        """Drop a queued request (its caller gave up); False when it was not queued."""
        try:
            self._queue.remove(request_id)
        except ValueError:
            return False
        return True

    # -- the rule --------------------------------------------------------------------------
    def _choose(self) -> str | None:
        """Power of two choices among replicas with room; None when every one is full."""
        replicas = self._replicas
        n = len(replicas)
        if n == 0:
            return None
        limit = self.max_ongoing_requests
        ongoing = self._ongoing
        if n == 1:
            only = replicas[0]
            return only if ongoing[only] < limit else None
        i = int(self._rng.random() * n) % n
        j = int(self._rng.random() * (n - 1)) % (n - 1)
        if j >= i:
            j += 1
        a, b = replicas[i], replicas[j]
        best = None
        for r in (a, b):
            if ongoing[r] < limit and (best is None or ongoing[r] < ongoing[best]):
                best = r
        if best is not None:
            return best
        for r in replicas:  # both sampled are full: the least-loaded with room, if any
            if ongoing[r] < limit and (best is None or ongoing[r] < ongoing[best]):
                best = r
        return best

    def _drain(self) -> list[Assignment]:
        placed: list[Assignment] = []
        while self._queue:
            replica = self._choose()
            if replica is None:
                break
            self._ongoing[replica] += 1
            placed.append(Assignment(self._queue.popleft(), replica))
        return placed
