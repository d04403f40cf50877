"""Build a simulated cluster from a Scenario, run its workload and return the metrics dict."""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runtime.core.cluster import (
    GCS_ADDR,
    GS_ADDR,
    ControlPlane,
    NodeCapacity,
    build_control_plane,
)
from runtime.core.config import CoreConfig
from runtime.core.explain import Explanation, explain_task
from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.owner import Owner
from runtime.core.raylet import WAIT_CAUSES, Raylet
from runtime.core.speculation import SpeculationPolicy
from sim.drivers import PoissonDriver, SearchDriver, rl_summary, split
from sim.flows import FlowNetwork
from sim.gcs_memory import GcsMemoryModel
from sim.host import Host
from sim.metrics import MetricsRecorder, recovery, round_sig, wait_summary
from sim.network import Network
from sim.programs import make_program
from sim.scenario import (
    ActorWorkload,
    AllreduceWorkload,
    ChainWorkload,
    GraphWorkload,
    HyperparameterSearchWorkload,
    IndependentWorkload,
    ParameterServerWorkload,
    PutsWorkload,
    RLWorkload,
    Scenario,
    ServingWorkload,
    ShuffleWorkload,
    StreamWorkload,
    TreeWorkload,
)
from sim.serving import ServingDriver
from sim.serving_program import ServingProgram
from sim.sim_engine import SimEngine
from sim.store import PutDriver
from sim.streams import StreamDriver
from sim.topology import Routes
from sim.workloads import Completion

HEAD_NODE = 0
WATCHDOG_S = 10.0
"""Simulated seconds without any progress (nothing running, moving or finishing) = stall."""


GC_THRESHOLD = (10_000, 10, 10)
"""Young-generation GC threshold while simulating: fewer collections of a large live heap."""


@contextmanager
def _gc_tuned() -> Iterator[None]:
    """Freeze objects built so far and collect less often; restore the GC afterwards.

    The simulation allocates millions of short-lived acyclic objects; with the default
    threshold, collections repeatedly scan long-lived state (measured: ~25% of wall time).
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


class SimulationStalled(RuntimeError):
    """The simulated cluster stopped making progress before the workload finished."""


def _rng(seed: int, stream: str) -> random.Random:
    """An independent generator per named stream, derived from the scenario seed."""
    return random.Random(f"{seed}:{stream}")


@dataclass
class Simulation:
    """A built, runnable simulation of one scenario (components exposed for tests)."""

    scenario: Scenario
    host: Host
    metrics: MetricsRecorder
    gcs: Gcs
    global_scheduler: GlobalScheduler
    raylets: list[Raylet]
    owners: list[Owner]
    drivers: list[Any] = field(default_factory=list)
    completion: Completion | None = None
    started_at: float = 0.0
    capacity: list[dict[str, float]] = field(default_factory=list)
    """Resources of each node."""
    gcs_shards: list[Gcs] = field(default_factory=list)
    """Every GCS shard (shard 0 is `gcs`)."""
    retired_waits: dict[str, float] = field(default_factory=lambda: dict.fromkeys(WAIT_CAUSES, 0.0))
    """Wait seconds by cause accumulated by raylets replaced since (a restarted node's)."""
    plane: ControlPlane | None = None
    """The wiring the components came from (builds a restarted node's raylet)."""
    prepared: bool = False
    """Whether `prepare` ran (start-up settled, drivers and faults scheduled)."""
    injected: list[Any] = field(default_factory=list)
    """The scenario's faults injected so far (a fault due after the workload ended is not)."""
    gcs_memory: GcsMemoryModel | None = None
    """The GCS memory model, when the scenario's ``gcs_memory.record_bytes`` turns it on."""

    def run(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Settle start-up, run the workload to completion and return the metrics summary.

        `progress(done)` is called about every 1% of tasks. A simulation advanced with
        `run_until` first carries on from where it paused.
        """
        self.prepare(progress)
        with _gc_tuned():
            self.host.run()
        return self.summary()

    def prepare(self, progress: Callable[[int], None] | None = None) -> None:
        """Start the components, let registration settle, schedule drivers and faults (once)."""
        completion = self.completion
        assert completion is not None
        completion.progress = progress
        completion.progress_every = max(1, completion.total // 100)
        if self.prepared:
            return
        self.prepared = True
        host, nodes = self.host, self.scenario.cluster.nodes
        host.start()
        gs = self.global_scheduler
        host.run_while(lambda: gs.node_count() < nodes)  # registration settles first
        self.started_at = host.now
        for driver in self.drivers:
            host.call_at(host.now, partial(_start_driver, driver))
        for fault in self.scenario.faults:
            host.call_at(self.started_at + fault.at_s, partial(self._inject, fault))
        if self.gcs_memory is not None:
            self.gcs_memory.start(self.started_at)
        self._sample_queues()
        self._watch(host.now, -1)

    def run_until(self, time_s: float) -> None:
        """Advance the simulation to `time_s` simulated seconds after the workload's start.

        The run pauses there (or earlier, when the workload ends): inspect it (`explain`,
        the components), then call `run_until` again or `run` to finish it.
        """
        self.prepare()
        host = self.host
        until = self.started_at + time_s
        times = host.calendar.times
        host.run_while(lambda: not host.stopped and bool(times) and times[0] <= until)

    def explain(self, task_id: int) -> Explanation:
        """Why task `task_id` is pending, where it runs or ran and why, or how it ended.

        The same core function as `runtime.explain`, over this simulation's owners,
        raylets, global scheduler and GCS task table; works paused or finished.
        """
        shards = self.gcs_shards or [self.gcs]
        gcs = shards[task_id % len(shards)]  # the task table is split by task id
        raylets = {r.node: r for r in self.raylets}
        return explain_task(task_id, self.owners, raylets, gcs, self.global_scheduler)

    def wait_breakdown(self) -> dict[str, float]:
        """Simulated seconds tasks spent waiting, by cause (`raylet.WAIT_CAUSES`), in total."""
        totals = dict(self.retired_waits)
        for raylet in self.raylets:
            for cause, seconds in raylet.wait_seconds().items():
                totals[cause] += seconds
        return totals

    def _watch(self, now: float, last_done: int) -> None:
        """Periodic stall check: fail loudly instead of simulating idle timers forever."""
        completion, host = self.completion, self.host
        assert completion is not None
        idle = (
            self.metrics.running == 0
            and host.transfers_in_flight == 0
            and not host.fault_pending(now)
            and not any(getattr(d, "arrivals_pending", False) for d in self.drivers)
        )
        if completion.done == last_done and idle and not host.stopped:
            raise SimulationStalled(
                f"no progress for {WATCHDOG_S:g} simulated s at t={now:.6g} s: "
                f"{completion.total - completion.done} of {completion.total} tasks unfinished"
                + "".join(
                    f"; placement group {g['id']} is {g['state']}: {g['reason']}"
                    for g in self.placement_groups()
                    if g["state"] != "CREATED"
                )
            )
        done = completion.done
        host.call_at(now + WATCHDOG_S, lambda: self._watch(now + WATCHDOG_S, done))

    def _inject(self, fault: Any) -> None:
        """Apply one scenario fault now and record it."""
        now = self.host.now
        target = _FAULTS[fault.kind](self, fault)
        self.injected.append(fault)
        self.metrics.fault(now - self.started_at, fault.kind, target)

    def _sample_queues(self) -> None:
        """Record the tasks queued across raylets, once per queue-series bin (an observer)."""
        host, metrics = self.host, self.metrics
        if host.stopped:
            return
        queued = sum(r.backlog() for r in self.raylets)
        metrics.queues.sample_raylets(host.now, queued)
        step = metrics.queues.bin_s
        host.call_at((int(host.now / step) + 1) * step, self._sample_queues, observer=True)

    def summary(self) -> dict[str, Any]:
        """The shared metrics schema for this run (makespan from the workload's start)."""
        completion = self.completion
        assert completion is not None
        metrics = self.metrics
        metrics.spilled = sum(r.spilled for r in self.raylets)
        makespan = max(0.0, completion.finished_at - self.started_at)
        cpus = int(sum(res.get("CPU", 0.0) for res in self.capacity))
        result = metrics.summary(makespan, cpus)
        result["utilization"], result["node_utilization"] = metrics.utilization(
            makespan, self.capacity
        )
        result["faults"] = list(metrics.faults)
        result["wait_breakdown"] = wait_summary(self.wait_breakdown(), result["tasks"])
        result["warnings"] = self.warnings(makespan)
        if self.gcs.placement_group_table():
            result["placement_groups"] = self.placement_groups()
        if self.gcs_memory is not None:
            result["gcs_memory"] = self.gcs_memory.summary()
        timed = [d.times.summary() for d in self.drivers if getattr(d, "times", None)]
        if timed:
            result["rl"] = rl_summary(timed)
        served = [d.serving_summary() for d in self.drivers if isinstance(d, ServingDriver)]
        if served:
            result["serving"] = served[0]
        if metrics.faults:
            first = min(f["time_s"] for f in metrics.faults) + self.started_at
            result["recovery"] = recovery(metrics.series, first, self.started_at)
        if getattr(self.scenario.workload, "max_restarts", 0):
            result["actor_recovery"] = self.actor_recovery()
        if self.scenario.cluster.health is not None:
            result["detection"] = self.detection()
        if self.scenario.scheduler.speculation is not None:
            result["speculation"] = self.speculation()
        return result

    def detection(self) -> dict[str, Any]:
        """With ``cluster.health``: the detector's settings and each node it declared dead
        (when, from the workload's start, and how long after that node's crash)."""
        health = self.scenario.cluster.health
        assert health is not None
        crashed = {f["target"]: f["time_s"] for f in self.metrics.faults if f["kind"] == "node"}
        declared: list[dict[str, Any]] = []
        for at, node in self.host.declared:
            time_s = at - self.started_at
            entry: dict[str, Any] = {"node": node, "time_s": round_sig(time_s)}
            if node in crashed:
                entry["after_crash_s"] = round_sig(time_s - crashed[node])
            declared.append(entry)
        return {
            "heartbeat_period_s": health.heartbeat_period_s,
            "node_timeout_s": health.node_timeout_s,
            "declared": declared,
        }

    def speculation(self) -> dict[str, int]:
        """Backup copies started (speculative execution) and those that finished first."""
        owners = {id(d.owner): d.owner for d in self.drivers}.values()
        speculators = [o.speculator for o in owners if o.speculator is not None]
        return {
            "backups": sum(s.launched for s in speculators),
            "backups_won": sum(s.won for s in speculators),
        }

    def actor_recovery(self) -> dict[str, int]:
        """Restarted actors and the calls run again to rebuild them (replays) or because
        they were running when their actor died (retries); checkpoints saved."""
        actors = self.gcs.actor_table().values()
        owners = {id(d.owner): d.owner for d in self.drivers}.values()
        return {
            "restarts": sum(rec.restarts for rec in actors),
            "checkpoints": sum(rec.spec.checkpoint.saves for rec in actors if rec.spec.checkpoint),
            "replayed_calls": sum(o.replays for o in owners),
            "retried_calls": sum(o.retries for o in owners),
        }

    def warnings(self, makespan_s: float) -> list[str]:
        """What the run did not do as the scenario asked: faults due after the workload ended."""
        done = {id(f) for f in self.injected}
        return [
            f"fault {fault.kind} at {fault.at_s:g} s was not injected: the workload "
            f"ended first, at {makespan_s:.6g} s"
            for fault in self.scenario.faults
            if id(fault) not in done
        ]

    def placement_groups(self) -> list[dict[str, Any]]:
        """The GCS placement-group table: id, strategy, state, bundle nodes and reason."""
        return [
            {
                "id": f"{rec.pg_id:x}",
                "strategy": rec.strategy,
                "state": rec.state,
                "bundle_nodes": list(rec.bundle_nodes),
                "reason": rec.reason,
            }
            for rec in self.gcs.placement_group_table().values()
        ]


def _start_driver(driver: Any) -> None:
    """Create the driver's placement groups (if any), then start its workload."""
    driver.make_groups()
    driver.start()


def _kill_node(sim: Simulation, fault: Any) -> Any:
    sim.host.kill_node(fault.node)
    if fault.restart_after_s is not None:
        at = sim.host.now + fault.restart_after_s
        sim.host.call_at(at, lambda: _restart_node(sim, fault.node))
    return fault.node


def _restart_node(sim: Simulation, node: int) -> None:
    """Bring `node` back with a fresh raylet of the same capacity, and record it."""
    resources, store_bytes = node_capacities(sim.scenario)[node]
    old = sim.raylets[node]
    for cause, seconds in old.wait_seconds().items():
        sim.retired_waits[cause] += seconds
    assert sim.plane is not None
    raylet = sim.plane.new_raylet(node, NodeCapacity(resources, store_bytes))
    sim.raylets[node] = raylet
    sim.host.revive_node(node, raylet)
    sim.metrics.fault(sim.host.now - sim.started_at, "node_restart", node)


def _kill_worker(sim: Simulation, fault: Any) -> Any:
    return f"node {fault.node}: {sim.host.kill_worker(fault.node)}"


def _gcs_down(sim: Simulation, fault: Any) -> Any:
    for shard in sim.gcs_shards or [sim.gcs]:
        sim.host.stall(shard.addr, fault.duration_s)
    return "gcs"


def _partition(sim: Simulation, fault: Any) -> Any:
    nodes = sorted(set(fault.nodes))
    sim.host.partition(frozenset(nodes), fault.duration_s)
    return nodes


def _slow_node(sim: Simulation, fault: Any) -> Any:
    if fault.worker is not None:
        sim.host.slow_worker(fault.node, fault.worker, fault.factor, fault.duration_s)
        return f"node {fault.node}: worker {fault.worker}"
    sim.host.slow_node(fault.node, fault.factor, fault.duration_s)
    return fault.node


_FAULTS: dict[str, Callable[[Simulation, Any], Any]] = {
    "node": _kill_node,
    "worker": _kill_worker,
    "gcs": _gcs_down,
    "partition": _partition,
    "slow": _slow_node,
}
"""Fault kind -> injector (returns the target recorded in metrics)."""


def node_capacities(scenario: Scenario) -> list[tuple[dict[str, float], int]]:
    """(resources, object store bytes) of every node, group by group."""
    nodes = []
    for group in scenario.cluster.node_groups():
        res, store = group.resources(), int(group.object_store_mb * 2**20)
        nodes.extend((dict(res), store) for _ in range(group.count))
    return nodes


def _program_drivers(sim: Simulation, spec: Any) -> int:
    """One engine per owner running that driver's workload program (`sim.programs`)."""
    seed, n = sim.scenario.seed, len(sim.owners)
    total = 0
    for i, owner in enumerate(sim.owners):
        rng = _rng(seed, f"workload:{i}")
        program = make_program(spec, rng, i, n)
        args = (sim.host, owner, sim.metrics, sim.completion, spec, rng, program)
        sim.drivers.append(SimEngine(*args))
        total += program.tasks
    return total


def _independent_drivers(sim: Simulation, spec: IndependentWorkload) -> int:
    """Closed-loop programs, or open-loop arrivals at a rate (tasks split evenly)."""
    if spec.poisson_rate_tps is None:
        return _program_drivers(sim, spec)
    seed, n = sim.scenario.seed, len(sim.owners)
    for i, owner in enumerate(sim.owners):
        tasks = split(spec.tasks, n, i)
        rng = _rng(seed, f"workload:{i}")
        args = (sim.host, owner, sim.metrics, sim.completion, spec, rng, tasks)
        sim.drivers.append(PoissonDriver(*args, spec.poisson_rate_tps / n))
    return spec.tasks


def _search_drivers(sim: Simulation, spec: HyperparameterSearchWorkload) -> int:
    """Trials split over the drivers; driver i's trials follow the next rows of `curves`."""
    seed, n, first = sim.scenario.seed, len(sim.owners), 0
    for i, owner in enumerate(sim.owners):
        rng = _rng(seed, f"workload:{i}")
        share = split(spec.trials, n, i)
        args = (sim.host, owner, sim.metrics, sim.completion, spec, rng, share, first)
        sim.drivers.append(SearchDriver(*args))
        first += share
    return spec.trials * spec.epochs


def _serving_drivers(sim: Simulation, spec: ServingWorkload) -> int:
    """One proxy (driver 0) in front of every deployment; one unit per request."""
    program = ServingProgram(spec, sim.scenario.seed)
    driver = ServingDriver(sim.host, sim.owners[0], sim.metrics, sim.completion, program)
    sim.drivers.append(driver)
    return spec.requests


def _stream_drivers(sim: Simulation, spec: StreamWorkload) -> int:
    """Producers split as evenly as possible over the drivers; one consumer per item."""
    seed, n = sim.scenario.seed, len(sim.owners)
    for i, owner in enumerate(sim.owners):
        rng = _rng(seed, f"workload:{i}")
        producers = split(spec.producers, n, i)
        args = (sim.host, owner, sim.metrics, sim.completion, spec, rng, producers)
        sim.drivers.append(StreamDriver(*args))
    return spec.producers * (1 + spec.items)


def _puts_drivers(sim: Simulation, spec: PutsWorkload) -> int:
    """One put loop per driver, each putting ``puts`` objects."""
    seed = sim.scenario.seed
    for i, owner in enumerate(sim.owners):
        rng = _rng(seed, f"workload:{i}")
        args = (sim.host, owner, sim.metrics, sim.completion, spec, rng, spec.puts)
        sim.drivers.append(PutDriver(*args, sim.scenario.object_store))
    return spec.puts * len(sim.owners)


_WORKLOADS: dict[type, Callable[[Simulation, Any], int]] = {
    StreamWorkload: _stream_drivers,
    IndependentWorkload: _independent_drivers,
    ChainWorkload: _program_drivers,
    TreeWorkload: _program_drivers,
    ShuffleWorkload: _program_drivers,
    GraphWorkload: _program_drivers,
    ActorWorkload: _program_drivers,
    RLWorkload: _program_drivers,
    ParameterServerWorkload: _program_drivers,
    HyperparameterSearchWorkload: _search_drivers,
    ServingWorkload: _serving_drivers,
    PutsWorkload: _puts_drivers,
    AllreduceWorkload: _program_drivers,
}
"""Workload kind -> builder of its drivers (returns the number of tasks to run)."""


def build(scenario: Scenario) -> Simulation:
    """Wire GCS, global scheduler, raylets, owners and drivers into a host."""
    cluster, plane_spec, sched = scenario.cluster, scenario.control_plane, scenario.scheduler
    config = CoreConfig(
        policy=sched.policy,
        spillback_threshold=sched.spillback_threshold,
        report_interval=sched.report_interval_ms * 1e-3,
        record_task_events=plane_spec.record_task_events,
        sample_size=sched.sample_size,
        check_transitions=plane_spec.check_invariants,
    )
    if cluster.health is not None:  # else: no heartbeats, deaths known at once
        config.heartbeat_period_s = cluster.health.heartbeat_period_s
        config.node_timeout_s = cluster.health.node_timeout_s
    if sched.speculation is not None:
        config.speculation = SpeculationPolicy(**sched.speculation.model_dump())
    memory = scenario.gcs_memory
    if memory.record_bytes:  # the GCS memory model: the table bounded only when flushing
        config.task_table_max = memory.table_records if memory.flush else sys.maxsize
    metrics = MetricsRecorder()
    network = Network(scenario.network, cluster.nodes)
    host = Host(network, metrics, _rng(scenario.seed, "ties"), plane_spec.per_kib_us * 1e-6)
    host.detect_by_heartbeats = cluster.health is not None
    host.flows = FlowNetwork(
        Routes(network.graph), local_latency_s=scenario.network.local_latency_us * 1e-6
    )
    host.gcs_addr = GCS_ADDR
    host.watch([GS_ADDR], gcs=False)
    capacity = node_capacities(scenario)
    plane = build_control_plane(
        config,
        _rng(scenario.seed, "core"),
        [NodeCapacity(resources, store_bytes) for resources, store_bytes in capacity],
        scenario.workload.drivers,
        gcs_shards=plane_spec.gcs_shards,
    )
    gcs, gs, shards = plane.gcs, plane.global_scheduler, plane.shards
    if plane_spec.check_invariants:
        checked = [*plane.shards, plane.global_scheduler, *plane.raylets, *plane.owners]
        host.check_invariants(component.addr for component in checked)
    host.add(GCS_ADDR, gcs, HEAD_NODE, plane_spec.gcs_us * 1e-6)
    host.add(GS_ADDR, gs, HEAD_NODE, plane_spec.global_scheduler_us * 1e-6)
    for shard in shards[1:]:
        host.add(shard.addr, shard, HEAD_NODE, plane_spec.gcs_us * 1e-6)
    host.shard_gcs([g.addr for g in shards])
    host.set_task_overhead(
        plane_spec.task_overhead_us * 1e-6,
        plane_spec.store_put_us_per_mib * 1e-6 / (1 << 20),
        config.inline_threshold,
        plane_spec.store_get_us_per_mib * 1e-6 / (1 << 20),
        plane_spec.task_overhead_sigma,
        _rng(scenario.seed, "task_overhead") if plane_spec.task_overhead_sigma else None,
    )
    metrics.track_nodes(len(capacity))
    raylets, owners = plane.raylets, plane.owners
    for raylet in raylets:
        host.add_raylet(raylet.addr, raylet, raylet.node, plane_spec.raylet_us * 1e-6)
    for driver, owner in enumerate(owners):
        host.add(owner.addr, owner, driver, plane_spec.owner_us * 1e-6)
    sim = Simulation(scenario, host, metrics, gcs, gs, raylets, owners)
    sim.gcs_shards = shards
    sim.plane = plane
    sim.capacity = [res for res, _ in capacity]
    sim.completion = Completion(host, 0)
    sim.completion.total = _WORKLOADS[type(scenario.workload)](sim, scenario.workload)
    if memory.record_bytes:
        sim.gcs_memory = GcsMemoryModel(memory, host, list(shards))
    return sim


def run_scenario(
    scenario: Scenario, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Build and run `scenario`; return the metrics summary dict."""
    return build(scenario).run(progress)
