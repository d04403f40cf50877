"""The serving workload's driver: a Serve proxy routing requests to batched replica actors.

The decisions are the core's own objects (``runtime.core.serve``), the ones the real proxy
and replicas use: each deployment's ``ReplicaSet`` says which replicas to start, its
``PowerOfTwoChoicesRouter`` where each request goes (or that it waits, or gets a 503), and
each replica's ``Batcher`` which of its requests form a batch and when it starts. This module
only carries those decisions out on the simulated cluster:

- replicas are actors created through the driver's owner (placed by the core's scheduler on
  CPU or GPU nodes); a replica is RUNNING once a first call on it (its constructor) returned,
  and requests start arriving when every deployment is HEALTHY, as after ``serve.run``;
- the proxy is one serial server (Serve's proxy is one event loop): each request costs it
  ``proxy_overhead_ms`` before routing and ``response_overhead_ms`` when its answer returns;
- a batch of n requests is one actor call of ``latency_fixed_ms + n * latency_per_item_ms``
  (the actor runs ``max_concurrent_batches`` calls at once);
- a request's latency runs from its arrival to its response leaving the proxy.

The workload's draws (arrivals, each request's deployment, each batch's model cost, the
proxy's overheads) are `sim.serving_program.ServingProgram`'s, the description every engine
reads; only the router's stream (``serve:<deployment>:router``) is drawn here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runtime.core.ids import ObjectId
from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from runtime.core.placement import SPREAD
from runtime.core.serve import (
    ASSIGNED,
    REJECTED,
    Batch,
    Batcher,
    PowerOfTwoChoicesRouter,
    ReplicaSet,
    StartReplica,
)
from runtime.core.serve.replicas import HEALTHY
from sim.drivers import call_actor, create_actor
from sim.host import Host
from sim.metrics import LogHistogram, MetricsRecorder, round_sig
from sim.scenario import ServeDeploymentSpec
from sim.serving_cost import ModelCost, batch_seconds
from sim.serving_program import Request, ServingProgram, stream
from sim.workloads import Completion


@dataclass(slots=True)
class SimReplica:
    """One replica: its actor, its batcher and the model time it was busy."""

    replica_id: str
    actor_id: int
    batcher: Batcher
    busy_s: float = 0.0
    armed: float | None = None
    """The batch deadline a poll is scheduled for (None: none)."""


@dataclass(slots=True)
class SimDeployment:
    """A deployment's decision objects, replicas, latency model and counts."""

    spec: ServeDeploymentSpec
    router: PowerOfTwoChoicesRouter
    replica_set: ReplicaSet
    cost: ModelCost
    replicas: dict[str, SimReplica] = field(default_factory=dict)
    latency: LogHistogram = field(default_factory=LogHistogram)
    batch_sizes: dict[int, int] = field(default_factory=dict)
    completed: int = 0
    rejected: int = 0
    failed: int = 0


class ServingDriver:
    """One Serve proxy in front of the workload's deployments (see the module docstring)."""

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        program: ServingProgram,
        record: bool = False,
    ) -> None:
        """A proxy driving `program`; `record` keeps every decision in `decisions` (tests)."""
        self.host = host
        self.owner = owner
        self.metrics = metrics
        self.completion = completion
        self.program = program
        self.spec = spec = program.spec
        self.deployments: list[SimDeployment] = []
        for i, d in enumerate(spec.deployments):
            self.deployments.append(
                SimDeployment(
                    d,
                    PowerOfTwoChoicesRouter(
                        stream(program.seed, f"serve:{d.name}:router"),
                        d.max_ongoing_requests,
                        d.max_queued_requests,
                    ),
                    ReplicaSet(d.name, d.num_replicas),
                    program.model_cost(i),
                )
            )
        self.proxy_ms, self.response_ms = program.proxy_costs()
        self.record = record
        self.decisions: list[tuple[Any, ...]] = []
        """With `record`: ("route", t, request, deployment, outcome, replica), ("assign", ...),
        ("batch", t, replica, batch_id, requests) and ("done", t, replica, batch_id)."""
        self.latency = LogHistogram()
        self.batch_sizes: dict[int, int] = {}
        self._arrivals: Iterator[Request] = iter(())
        self._next: Request | None = None
        """The request whose arrival is scheduled."""
        self._arrived_count = 0
        self._t0 = 0.0
        self._arrived: dict[int, float] = {}
        self._proxy_free = 0.0
        self._to_route: deque[tuple[SimDeployment, int]] = deque()
        """Requests the proxy has taken, in arrival order, to route once its work is done."""
        self._pending: dict[ObjectId, tuple[SimDeployment, SimReplica, Batch | None]] = {}
        self._retire: ObjectId = 0
        self._retire_fn = self._retire_ref
        self.first_arrival: float | None = None
        self.last_response = 0.0
        self.spread = spec.scheduling_strategy == "spread"
        host.on_ready(owner.addr, self._on_ready)

    # -- start-up: replicas ----------------------------------------------------------------
    @property
    def arrivals_pending(self) -> bool:
        """Requests will still arrive (idle gaps between arrivals are not a stall)."""
        return self._arrived_count < self.spec.requests

    def make_groups(self) -> None:
        """No placement groups: replicas are placed by the scheduling strategy."""

    def start(self) -> None:
        """Start every deployment's replicas (requests begin once all of them run)."""
        self.host.serve_call(self.owner.addr, self._start_replicas)

    def _start_replicas(self, now: float, out: list[Any]) -> None:
        for dep in self.deployments:
            for action in dep.replica_set.reconcile():
                assert isinstance(action, StartReplica)
                actor_id = self._create_actor(dep, action.replica_id, now, out)
                batcher = Batcher(
                    dep.spec.max_batch_size,
                    dep.spec.batch_wait_timeout_s,
                    dep.spec.max_concurrent_batches,
                )
                rep = SimReplica(action.replica_id, actor_id, batcher)
                dep.replicas[rep.replica_id] = rep
                (oid,) = self._submit_call(rep, "__init__", 0.0, now, out)
                self._pending[oid] = (dep, rep, None)

    def _create_actor(self, dep: SimDeployment, name: str, now: float, out: list[Any]) -> int:
        strategy = SPREAD if self.spread else None
        resources = dep.spec.demand()
        return create_actor(
            self.owner, name, resources, strategy, now, out, dep.spec.max_concurrent_batches
        )

    def _submit_call(
        self, rep: SimReplica, name: str, duration_s: float, now: float, out: list[Any]
    ) -> tuple[ObjectId, ...]:
        return call_actor(self.owner, rep.actor_id, name, duration_s, (0,), (), now, out)

    def _replica_started(self, dep: SimDeployment, rep: SimReplica, at: float) -> None:
        dep.replica_set.started(rep.replica_id)
        if all(d.replica_set.status() == HEALTHY for d in self.deployments):
            for d in self.deployments:
                d.router.update_replicas(d.replica_set.running())
            self._t0 = at
            self._arrivals = self.program.requests()
            self._schedule_arrival()

    # -- requests --------------------------------------------------------------------------
    def _schedule_arrival(self) -> None:
        self._next = upcoming = next(self._arrivals, None)
        if upcoming is not None:
            self.host.call_at(self._t0 + upcoming.offset, self._arrive)

    def _proxy(self, cost_ms: float, at: float) -> float:
        """Serve `cost_ms` of proxy work arriving at `at`; returns when it is done."""
        start = at if at > self._proxy_free else self._proxy_free
        self._proxy_free = done = start + cost_ms * 1e-3
        return done

    def _arrive(self) -> None:
        now = self.host.now
        upcoming = self._next
        assert upcoming is not None
        request = upcoming.index
        self._arrived_count += 1
        if self.first_arrival is None:
            self.first_arrival = now
        self._arrived[request] = now
        dep = self.deployments[upcoming.deployment]
        routed = self._proxy(self.proxy_ms(), now)
        self._to_route.append((dep, request))
        self.host.call_at(routed, self._route_next)
        self._schedule_arrival()

    def _route_next(self) -> None:
        """The proxy routes in arrival order (same-time events fire in any order)."""
        dep, request = self._to_route.popleft()
        self._route(dep, request)

    def _route(self, dep: SimDeployment, request: int) -> None:
        now = self.host.now
        decision = dep.router.route(request)
        if self.record:
            self.decisions.append(
                ("route", now, request, dep.spec.name, decision.outcome, decision.replica_id)
            )
        if decision.outcome == ASSIGNED:
            assert decision.replica_id is not None
            self._enqueue(dep, dep.replicas[decision.replica_id], request, now)
        elif decision.outcome == REJECTED:
            dep.rejected += 1
            del self._arrived[request]
            self.completion.task_ended(now)

    def _enqueue(self, dep: SimDeployment, rep: SimReplica, request: int, now: float) -> None:
        self._launch(dep, rep, rep.batcher.add(request, now), now)
        self._arm(dep, rep, now)

    def _arm(self, dep: SimDeployment, rep: SimReplica, now: float) -> None:
        deadline = rep.batcher.next_deadline()
        if deadline is not None and deadline != rep.armed:
            rep.armed = deadline
            at = deadline if deadline > now else now
            self.host.call_at(at, partial(self._poll, dep, rep, deadline))

    def _poll(self, dep: SimDeployment, rep: SimReplica, deadline: float) -> None:
        if rep.armed != deadline:
            return  # that batch closed (it filled up) and a newer one was armed
        now = self.host.now
        rep.armed = None
        self._launch(dep, rep, rep.batcher.poll(now), now)
        if rep.batcher.next_deadline() == deadline:
            # opened + timeout rounded below the exact sum: try again one step later
            rep.armed = deadline
            self.host.call_at(
                math.nextafter(now, math.inf), partial(self._poll, dep, rep, deadline)
            )
        else:
            self._arm(dep, rep, now)

    def _launch(
        self, dep: SimDeployment, rep: SimReplica, batches: list[Batch], now: float
    ) -> None:
        for batch in batches:
            n = len(batch.items)
            _, fixed, per_item = dep.cost.draw()
            duration = batch_seconds(fixed, per_item, n)
            rep.busy_s += duration
            dep.batch_sizes[n] = dep.batch_sizes.get(n, 0) + 1
            self.batch_sizes[n] = self.batch_sizes.get(n, 0) + 1
            if self.record:
                self.decisions.append(
                    ("batch", now, rep.replica_id, batch.batch_id, list(batch.items))
                )
            self.host.serve_call(
                self.owner.addr, partial(self._submit_batch, dep, rep, batch, duration)
            )

    def _submit_batch(
        self,
        dep: SimDeployment,
        rep: SimReplica,
        batch: Batch,
        duration: float,
        now: float,
        out: list[Any],
    ) -> None:
        (oid,) = self._submit_call(rep, "__call__", duration, now, out)
        self._pending[oid] = (dep, rep, batch)

    # -- results ---------------------------------------------------------------------------
    def _retire_ref(self, now: float, out: list[Any]) -> None:
        self.owner.remove_ref(self._retire, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        entry = self._pending.pop(cmd.oid, None)
        if entry is None:
            return
        self._retire = cmd.oid
        self.host.serve_call(self.owner.addr, self._retire_fn, at)
        dep, rep, batch = entry
        if batch is None:
            if cmd.error_kind is not None:
                raise RuntimeError(f"serving: replica {rep.replica_id} failed to start")
            self._replica_started(dep, rep, at)
            return
        if self.record:
            self.decisions.append(("done", at, rep.replica_id, batch.batch_id))
        self._launch(dep, rep, rep.batcher.finished(batch.batch_id, at), at)
        self._arm(dep, rep, at)
        for request in batch.items:
            arrived = self._arrived.pop(request)
            if cmd.error_kind is None:
                done = self._proxy(self.response_ms(), at)
                latency = done - arrived
                self.latency.add(latency)
                dep.latency.add(latency)
                dep.completed += 1
                self.metrics.task_done(latency, done)
                if done > self.last_response:
                    self.last_response = done
            else:
                done = at
                dep.failed += 1
                self.metrics.task_failed(at)
            self.completion.task_ended(done)
            for placed in dep.router.release(rep.replica_id):
                if self.record:
                    self.decisions.append(
                        ("assign", at, placed.request_id, dep.spec.name, placed.replica_id)
                    )
                self._enqueue(dep, dep.replicas[placed.replica_id], placed.request_id, at)

    # -- metrics ---------------------------------------------------------------------------
    def serving_summary(self) -> dict[str, Any]:
        """Throughput, latency percentiles, 503s, batch sizes and replica utilisation."""
        first = self.first_arrival if self.first_arrival is not None else 0.0
        span = max(0.0, self.last_response - first)
        completed = sum(d.completed for d in self.deployments)
        return {
            "requests": self.spec.requests,
            "completed": completed,
            "rejected": sum(d.rejected for d in self.deployments),
            "failed": sum(d.failed for d in self.deployments),
            "duration_s": round_sig(span),
            "throughput_rps": round_sig(completed / span) if span > 0 else 0.0,
            "latency_s": latency_summary(self.latency),
            "batch_size_histogram": _histogram(self.batch_sizes),
            "deployments": {
                d.spec.name: self._deployment_summary(d, span) for d in self.deployments
            },
        }

    def _deployment_summary(self, dep: SimDeployment, span: float) -> dict[str, Any]:
        slots = span * dep.spec.max_concurrent_batches
        util = [
            round_sig(rep.busy_s / slots) if slots > 0 else 0.0 for rep in dep.replicas.values()
        ]
        batches = sum(dep.batch_sizes.values())
        items = sum(n * c for n, c in dep.batch_sizes.items())
        return {
            "replicas": len(dep.replicas),
            "completed": dep.completed,
            "rejected": dep.rejected,
            "failed": dep.failed,
            "latency_s": latency_summary(dep.latency),
            "batches": batches,
            "mean_batch_size": round_sig(items / batches) if batches else 0.0,
            "batch_size_histogram": _histogram(dep.batch_sizes),
            "replica_utilization": util,
            "mean_replica_utilization": round_sig(sum(util) / len(util)) if util else 0.0,
        }


def latency_summary(hist: LogHistogram) -> dict[str, float | None]:
    """`{"mean", "p50", "p95", "p99", "max"}` of a latency histogram (None when empty)."""
    if not hist.count:
        return dict.fromkeys(("mean", "p50", "p95", "p99", "max"))
    return {
        "mean": round_sig(hist.mean),
        "p50": round_sig(hist.percentile(50)),
        "p95": round_sig(hist.percentile(95)),
        "p99": round_sig(hist.percentile(99)),
        "max": round_sig(hist.max),
    }


def _histogram(counts: dict[int, int]) -> dict[str, int]:
    """Batch size -> batches, sizes ascending, keys as strings (JSON)."""
    return {str(n): counts[n] for n in sorted(counts)}
