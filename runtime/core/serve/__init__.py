"""Ray Serve's decisions as pure objects: request routing, request batching and replica sets.

No I/O, no clock (``now`` is passed in, in seconds, by the host), no threads, randomness only
from an injected ``Rng``. The real Serve (``runtime/serve/``) and the simulator's serving
workload drive the same objects:

- ``router.PowerOfTwoChoicesRouter``: where a request goes (two replicas sampled, the one
  with fewer ongoing requests wins, ``max_ongoing_requests`` respected), a bounded FIFO queue
  when every replica is full, and rejection past ``max_queued_requests`` (HTTP 503).
- ``batcher.Batcher``: ``@serve.batch``'s rule (``max_batch_size``,
  ``batch_wait_timeout_s``, ``max_concurrent_batches``): which queued items form a batch and
  when it starts.
- ``replicas.ReplicaSet``: a deployment's replicas through STARTING, RUNNING, STOPPING and
  DEAD, with the start and stop actions that keep ``target`` replicas running and replace a
  dead one.

Each module's docstring documents its API; ``tests/core/test_serve_*.py`` are its examples.
"""

from __future__ import annotations

from runtime.core.serve.batcher import Batch, Batcher
from runtime.core.serve.errors import ReplicaStateError, ServeConfigError
from runtime.core.serve.replicas import (
    DEAD,
    RUNNING,
    STARTING,
    STOPPING,
    ReplicaSet,
    StartReplica,
    StopReplica,
)
from runtime.core.serve.router import (
    ASSIGNED,
    QUEUED,
    REJECTED,
    Assignment,
    PowerOfTwoChoicesRouter,
    RouteDecision,
)

__all__ = [
    "ASSIGNED",
    "Assignment",
    "Batch",
    "Batcher",
    "DEAD",
    "PowerOfTwoChoicesRouter",
    "QUEUED",
    "REJECTED",
    "RUNNING",
    "ReplicaSet",
    "RouteDecision",
    "STARTING",
    "STOPPING",
    "ReplicaStateError",
    "ServeConfigError",
    "StartReplica",
    "StopReplica",
]
