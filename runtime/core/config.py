"""Tunables of the control plane shared by both worlds (thresholds, intervals, limits)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CoreConfig:
    """Knobs of the scheduler, store and GCS; one instance is shared by a cluster's components."""

    policy: str = "bottom_up"
    """Placement policy name, see ``runtime.core.policies.POLICIES``."""
    spillback_threshold: int = 16
    """A raylet queues at most this many tasks it cannot start yet before spilling the rest."""
    report_interval: float = 0.1
    """Seconds between a raylet's resource reports and task-event flushes."""
    inline_threshold: int = 100 * 1024
    """Return values smaller than this travel inline to the owner instead of the store."""
    task_table_max: int = 100_000
    """Finished tasks kept in the GCS task table (the oldest are dropped beyond it)."""
    sample_size: int = 2
    """Nodes sampled per placement by the sampling policies (bottom-up's global step,
    locality's fallback, power-of-two): a parameter of those policies only."""
    trace: bool = False
    """Emit a ``Trace`` command for every placement decision (costly; for debugging)."""
    record_task_events: bool = True
    """Report task state changes to the GCS task table."""
    lineage: bool = True
    """Keep the lineage of stored objects so lost ones can be recomputed (as Ray does)."""
    object_spilling: bool = True
    """When a store is full, spill unpinned primary copies to disk (else: store-full errors)."""
    actor_pipeline: int = 1
    """Calls of one actor dispatched to its worker beyond the ``max_concurrency`` it runs at
    once (they wait in the worker, in order); 1: the next call waits for a running one."""
    worker_prefetch: int = 0
    """Queued tasks a raylet may hand its host ahead of free resources, so a busy worker
    starts its next task without a round trip (Ray's pipelining to leased workers); 0: off."""
    heartbeat_period_s: float = 0.0
    """Seconds between a raylet's heartbeats to the GCS (Ray: ``health_check_period_ms``,
    3 s); 0: no heartbeats and no failure detector, a node is dead when its host says so
    (``NodeDied``: a closed connection; in the simulator, at the crash)."""
    node_timeout_s: float = 15.0
    """With heartbeats: a node the GCS has not heard from for this long is declared dead
    (Ray: ``health_check_period_ms`` x ``health_check_failure_threshold``, 3 s x 5)."""
    placement_batch: int = 1024
    """Placements the global scheduler gathers per node before it tells the tasks' owners
    where they went (one ``TasksPlaced`` per owner); a dead node's batch goes out at once."""
    check_transitions: bool = False
    """Assert that every lifecycle transition a raylet makes is in its table (debugging:
    costs a lookup per transition); ``check()`` methods work either way."""
