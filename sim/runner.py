"""Build a simulated cluster from a Scenario, run its workload and return the metrics dict."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runtime.core.config import CoreConfig
from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.network import Network
from sim.scenario import ChainWorkload, IndependentWorkload, Scenario
from sim.workloads import ChainDriver, Completion, IndependentDriver

GCS_ADDR = 0
GS_ADDR = 1
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


def raylet_addr(node: int) -> int:
    """Address of the raylet of `node`."""
    return 2 + node


def owner_addr(nodes: int, driver: int) -> int:
    """Address of the owner of driver `driver` (after all raylets)."""
    return 2 + nodes + driver


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

    def run(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Settle start-up, run the workload to completion and return the metrics summary.

        `progress(done)` is called about every 1% of tasks.
        """
        host, nodes = self.host, self.scenario.cluster.nodes
        host.start()
        views = self.global_scheduler.views
        host.run_while(lambda: len(views) < nodes)  # registration settles first
        self.started_at = host.now
        completion = self.completion
        assert completion is not None
        completion.progress = progress
        completion.progress_every = max(1, completion.total // 100)
        for driver in self.drivers:
            host.call_at(host.now, driver.start)
        self._watch(host.now, -1)
        with _gc_tuned():
            host.run()
        return self.summary()

    def _watch(self, now: float, last_done: int) -> None:
        """Periodic stall check: fail loudly instead of simulating idle timers forever."""
        completion, host = self.completion, self.host
        assert completion is not None
        idle = self.metrics.running == 0 and host.transfers_in_flight == 0
        if completion.done == last_done and idle and not host.stopped:
            raise SimulationStalled(
                f"no progress for {WATCHDOG_S:g} simulated s at t={now:.6g} s: "
                f"{completion.total - completion.done} of {completion.total} tasks unfinished"
            )
        done = completion.done
        host.call_at(now + WATCHDOG_S, lambda: self._watch(now + WATCHDOG_S, done))

    def summary(self) -> dict[str, Any]:
        """The shared metrics schema for this run (makespan from the workload's start)."""
        completion = self.completion
        assert completion is not None
        self.metrics.spilled = sum(r.spilled for r in self.raylets)
        makespan = max(0.0, completion.finished_at - self.started_at)
        cluster = self.scenario.cluster
        return self.metrics.summary(makespan, cluster.nodes * cluster.cpus_per_node)


def _node_resources(scenario: Scenario) -> dict[str, float]:
    cluster = scenario.cluster
    resources = {"CPU": float(cluster.cpus_per_node)}
    if cluster.gpus_per_node:
        resources["GPU"] = float(cluster.gpus_per_node)
    resources.update(cluster.custom_resources)
    return resources


def _independent_drivers(sim: Simulation, spec: IndependentWorkload) -> int:
    """One driver per owner; tasks split as evenly as possible."""
    seed, n = sim.scenario.seed, len(sim.owners)
    for i, owner in enumerate(sim.owners):
        tasks = spec.tasks // n + (1 if i < spec.tasks % n else 0)
        rng = _rng(seed, f"workload:{i}")
        driver = IndependentDriver(sim.host, owner, sim.metrics, sim.completion, spec, rng, tasks)
        sim.drivers.append(driver)
    return spec.tasks


def _chain_drivers(sim: Simulation, spec: ChainWorkload) -> int:
    """Chains handed to drivers round robin."""
    seed, n = sim.scenario.seed, len(sim.owners)
    for i, owner in enumerate(sim.owners):
        chains = list(range(i, spec.chains, n))
        rng = _rng(seed, f"workload:{i}")
        driver = ChainDriver(sim.host, owner, sim.metrics, sim.completion, spec, rng, chains)
        sim.drivers.append(driver)
    return spec.chains * spec.length


_WORKLOADS: dict[type, Callable[[Simulation, Any], int]] = {
    IndependentWorkload: _independent_drivers,
    ChainWorkload: _chain_drivers,
}


def build(scenario: Scenario) -> Simulation:
    """Wire GCS, global scheduler, raylets, owners and drivers into a host."""
    cluster, plane, sched = scenario.cluster, scenario.control_plane, scenario.scheduler
    config = CoreConfig(
        policy=sched.policy,
        spillback_threshold=sched.spillback_threshold,
        report_interval=sched.report_interval_ms * 1e-3,
        record_task_events=plane.record_task_events,
    )
    metrics = MetricsRecorder()
    network = Network(scenario.network, cluster.nodes)
    host = Host(network, metrics, _rng(scenario.seed, "ties"), plane.per_kib_us * 1e-6)
    gcs = Gcs(GCS_ADDR, config)
    gs = GlobalScheduler(GS_ADDR, GCS_ADDR, _rng(scenario.seed, "core"), config)
    host.add(GCS_ADDR, gcs, HEAD_NODE, plane.gcs_us * 1e-6)
    host.add(GS_ADDR, gs, HEAD_NODE, plane.global_scheduler_us * 1e-6)
    resources = _node_resources(scenario)
    store_bytes = int(cluster.object_store_mb * 2**20)
    raylets = []
    for node in range(cluster.nodes):
        addr = raylet_addr(node)
        raylet = Raylet(node, addr, GCS_ADDR, GS_ADDR, resources, store_bytes, config)
        host.add_raylet(addr, raylet, node, plane.raylet_us * 1e-6)
        raylets.append(raylet)
    owners = []
    for driver in range(scenario.workload.drivers):
        addr = owner_addr(cluster.nodes, driver)
        owner = Owner(addr, driver, driver, raylet_addr(driver), GCS_ADDR, config)
        host.add(addr, owner, driver, plane.owner_us * 1e-6)
        owners.append(owner)
    sim = Simulation(scenario, host, metrics, gcs, gs, raylets, owners)
    sim.completion = Completion(host, 0)
    sim.completion.total = _WORKLOADS[type(scenario.workload)](sim, scenario.workload)
    return sim


def run_scenario(
    scenario: Scenario, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Build and run `scenario`; return the metrics summary dict."""
    return build(scenario).run(progress)
