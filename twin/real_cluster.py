"""`run-scenario FILE --mode real|both --nodes N`: a scenario's workload on a real cluster of N node processes.

`fit_cluster` maps the scenario onto N node processes on this machine (the scenario's
per-node CPUs, fewer where the machine cannot hold them; one driver; node faults mapped
onto worker nodes); `run_cluster` starts a `runtime.cluster_utils.Cluster` (a head and
N - 1 worker nodes, real processes), connects this process as its driver, runs the
workload with the drivers of `twin.real_workloads`, carries out the node faults
(``remove_node(allow_graceful=False)`` at the fault's time, ``add_node`` when it comes
back) and returns the simulator's metrics schema plus per-node placement counts and the
recovery time after each kill. `measure_network` times the network and failure effects the
calibration report compares with the simulator's models (`network_comparison`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.metrics import MetricsRecorder, recovery, round_sig, wait_summary
from sim.scenario import NodeFault, Scenario, ScenarioError, validate_scenario
from twin.real_mode import _SCALERS, RealModeRefused, _fit_budget, _held_cpus, _map_gpus
from twin.real_workloads import RUNNERS, RealDriver, work

__all__ = [
    "ClusterFit",
    "ClusterDriver",
    "fit_cluster",
    "measure_network",
    "network_comparison",
    "run_cluster",
]

NODE_STORE_CAP_BYTES = 256 << 20
"""Each node process's object store: the scenario's, capped at 256 MiB (one machine holds them all)."""

WARMUP_PER_NODE = 4
"""Warm-up tasks per node (SPREAD) before the workload: every node's workers are started."""

STATE_LIMIT = 10**9
"""`list_tasks` limit: every row of the task table."""


@dataclass(frozen=True)
class ClusterFit:
    """How a scenario maps onto N node processes on this machine, and what was changed."""

    scenario: Scenario
    """The scenario to run (and to simulate side by side): N nodes x `cpus`, faults mapped."""
    nodes: int
    cpus: int
    """CPUs of each node."""
    note: str = ""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources of each node."""


def fit_cluster(scenario: Scenario, nodes: int, machine_cpus: int | None = None) -> ClusterFit:
    """Map `scenario` onto `nodes` node processes of this machine (`RealModeRefused` if not).

    Each node gets the scenario's CPUs per node, or `machine_cpus // nodes` (at least 1)
    when the N nodes would hold more CPU slots than the machine has CPUs; the workload's
    drivers are merged into one (as `--scale-down` does), GPU requests become CPU
    requests, and a workload estimated to run long is shortened. Node faults on node k
    >= N land on worker node 1 + (k - 1) % (N - 1) (the scenario's checks keep faults off
    node 0, the head); the fault kinds real mode cannot carry out (worker, gcs, partition,
    slow) are refused.
    """
    if nodes < 1:
        raise RealModeRefused(f"--nodes {nodes}: a cluster has at least 1 node (the head)")
    machine = machine_cpus or os.cpu_count() or 1
    cluster, workload = scenario.cluster, scenario.workload
    groups = cluster.node_groups()
    notes: list[str] = []
    wanted = max(g.cpus for g in groups)
    if len(groups) > 1:
        notes.append(f"node groups {[g.name for g in groups]} run as {nodes} equal nodes")
    cpus = wanted
    if nodes * wanted > machine:
        cpus = max(1, machine // nodes)
        if cpus < wanted:
            notes.append(
                f"{nodes} nodes x {wanted} CPUs do not fit this machine's {machine} CPUs: "
                f"each node gets {cpus} CPU(s)"
            )
        if nodes * cpus > machine:
            notes.append(
                f"{nodes} nodes x {cpus} CPU(s) are more slots than this machine's {machine} "
                "CPUs: the real times include their contention"
            )
    if cluster.nodes != nodes:
        notes.append(f"the scenario's {cluster.nodes} node(s) run as {nodes} node processes")
    custom: dict[str, float] = {}
    for group in groups:
        for key, value in group.custom_resources.items():
            custom[key] = max(custom.get(key, 0.0), value)
    raw = scenario.model_dump(mode="json")
    store_mb = min(g.object_store_mb for g in groups)
    raw["cluster"] = {
        "nodes": nodes,
        "cpus_per_node": cpus,
        "object_store_mb": store_mb,
        "custom_resources": custom,
    }
    raw["faults"] = _map_faults(scenario, nodes, notes)
    wl = raw["workload"]
    drivers, wl["drivers"] = wl["drivers"], 1
    if drivers > 1:
        notes.append(f"{drivers} drivers run as 1 (this process, connected to the head)")
    gpu_fields = _map_gpus(wl, workload, cpus)
    if gpu_fields:
        notes.append(f"GPU requests mapped to CPU ({', '.join(gpu_fields)})")
    _SCALERS[workload.kind](wl, drivers, nodes * cpus, notes)
    try:
        fitted = validate_scenario(raw, f"{scenario.name} ({nodes} nodes)")
    except ScenarioError as exc:
        raise RealModeRefused(
            f"scenario {scenario.name!r} cannot run on {nodes} nodes x {cpus} CPUs: {exc}"
        ) from None
    held = _held_cpus(fitted.workload)
    if held and held[0] > nodes * cpus:
        raise RealModeRefused(
            f"scenario {scenario.name!r}: its actors hold {held[0]:g} CPUs ({held[1]}), more "
            f"than {nodes} nodes x {cpus} CPUs"
        )
    fitted = _fit_budget(fitted, raw, nodes * cpus, notes)
    return ClusterFit(fitted, nodes, cpus, "; ".join(notes), custom)


def _map_faults(scenario: Scenario, nodes: int, notes: list[str]) -> list[dict[str, Any]]:
    """The scenario's faults as real mode carries them out (raw dicts), or `RealModeRefused`."""
    out = []
    for fault in scenario.faults:
        if not isinstance(fault, NodeFault):
            raise RealModeRefused(
                f"scenario {scenario.name!r}: a {fault.kind!r} fault cannot be carried out on "
                "real nodes (real mode kills and adds node processes only; use --mode sim, "
                "or --set faults=[] to run without it)"
            )
        if nodes < 2:
            raise RealModeRefused(
                f"scenario {scenario.name!r} kills node {fault.node}: needs --nodes 2 or more"
            )
        raw = fault.model_dump(mode="json")
        if fault.node >= nodes:
            raw["node"] = 1 + (fault.node - 1) % (nodes - 1)
            notes.append(f"the fault on node {fault.node} hits node {raw['node']}")
        out.append(raw)
    return out


# --- the driver: where each task ran ---------------------------------------------------------


class ClusterDriver(RealDriver):
    """A `RealDriver` that remembers when it saw each task finish (for spans from the task table)."""

    def __init__(self, ray: Any, scenario: Scenario) -> None:
        """As `RealDriver`, plus the time each task was seen done (`done_at`, by name)."""
        super().__init__(ray, scenario)
        self.done_at: dict[str, float] = {}

    def next_done(self) -> list[tuple[Any, Any]]:
        """`RealDriver.next_done`, recording when each finished task was seen."""
        names = {ref: name for ref, (name, _) in self.pending.items()}
        done = super().next_done()
        for ref, _ in done:
            self.done_at[names[ref]] = self.last
        return done


@dataclass
class _NodeSlot:
    """One scenario node's current process (None while it is dead) and its history."""

    index: int
    node: Any | None
    node_ids: list[str] = field(default_factory=list)


class FaultPlan:
    """Carries out node faults on a `Cluster` at their times, on a timer thread."""

    def __init__(
        self,
        cluster: Any,
        slots: list[_NodeSlot],
        faults: list[NodeFault],
        add: Callable[[int], Any],
    ) -> None:
        """`slots[k]` is scenario node k; `add(k)` starts a fresh node process for it."""
        self.cluster = cluster
        self.slots = slots
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.add = add
        self.events: list[dict[str, Any]] = []
        """What was done: ``{"time_s", "kind": "kill"|"add", "node"}`` (seconds from t0)."""
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def start(self, t0: float) -> None:
        """Start carrying out the faults, their times counted from `t0` (monotonic)."""
        self.t0 = t0
        if self.faults:
            self._thread = threading.Thread(target=self._run, name="twin-faults", daemon=True)
            self._thread.start()

    def _plan(self) -> list[tuple[float, str, int]]:
        steps = []
        for fault in self.faults:
            steps.append((fault.at_s, "kill", fault.node))
            if fault.restart_after_s is not None:
                steps.append((fault.at_s + fault.restart_after_s, "add", fault.node))
        return sorted(steps)

    def _run(self) -> None:
        for at, kind, index in self._plan():
            if self._stop.wait(max(0.0, self.t0 + at - time.monotonic())):
                return
            slot = self.slots[index]
            try:
                if kind == "kill":
                    if slot.node is None:
                        continue  # already dead
                    now = time.monotonic() - self.t0
                    self.cluster.remove_node(slot.node, allow_graceful=False)
                    slot.node = None
                else:
                    if slot.node is not None:
                        continue
                    slot.node = self.add(index)
                    now = time.monotonic() - self.t0
            except BaseException as exc:  # reported by `stop`
                self.errors.append(exc)
                return
            self.events.append({"time_s": now, "kind": kind, "node": index})

    def stop(self) -> None:
        """Cancel what is not due yet and wait for a step in progress; re-raise its error."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.errors:
            raise RuntimeError(f"a fault could not be carried out: {self.errors[0]}")


# --- running ------------------------------------------------------------------------------------


def _node_args(fit: ClusterFit) -> dict[str, Any]:
    store = min(int(fit.scenario.cluster.object_store_mb * 2**20), NODE_STORE_CAP_BYTES)
    return {"num_cpus": fit.cpus, "object_store_memory": store, "resources": dict(fit.resources)}


class NodeStarter:
    """Starts scenario node k's process: on loopback, or in its network namespace."""

    def __init__(self, cluster: Any, args: dict[str, Any], spaces: Any | None) -> None:
        """`spaces`: a `runtime.real.netns.Namespaces` (None: loopback)."""
        self.cluster = cluster
        self.args = args
        self.spaces = spaces

    def __call__(self, index: int) -> Any:
        """Start node `index` (0: the head, first); the `ClusterNode` once it listens."""
        if self.spaces is None:
            return self.cluster.add_node(**self.args)
        from runtime.cluster_utils import ClusterNode, _node_config
        from runtime.net.auth import new_token, save_token
        from runtime.real import sessions
        from runtime.real.node_process import launch

        cluster, config = self.cluster, _node_config(self.args)
        if index == 0:  # the head: on the bridge, in this namespace (drivers reach it)
            session = sessions.new_session()
            config.session, config.host = str(session), self.spaces.head_ip
            save_token(session, new_token())
            proc, address = launch(config)
            cluster.session, cluster.head_node = session, ClusterNode(address, True, proc)
            return cluster.head_node
        config.session, config.head = str(cluster.session), False
        config.head_address, config.host = cluster.head_node.address, self.spaces.node_ip(index)
        proc, _ = launch(config, wrap=self.spaces.wrap(index))
        node = ClusterNode(cluster.head_node.address, False, proc)
        cluster.worker_nodes.add(node)
        return node


def make_namespaces(fit: ClusterFit) -> tuple[Any | None, str]:
    """Network namespaces for the fit's worker nodes, shaped by the scenario's network section.

    Returns (the `Namespaces`, a line saying what was built) or (None, why not: the
    fallback to plain loopback).
    """
    from runtime.real.netns import NetnsUnavailable, create

    network = fit.scenario.network
    if fit.nodes < 2:
        return None, "network namespaces: a 1-node cluster has no links; plain loopback"
    rate = network.link_bandwidth_gbps * 1e9
    latency = network.link_latency_us * 1e-6
    try:
        spaces = create(fit.nodes, rate, latency)
    except NetnsUnavailable as exc:
        return None, f"network namespaces not used: {exc}; falling back to plain loopback"
    line = (
        f"network namespaces: nodes 1-{fit.nodes - 1} in their own, joined to the head's by "
        f"veth pairs on bridge {spaces.bridge}, links {network.link_bandwidth_gbps:g} Gb/s"
    )
    if network.topology != "star":
        line += f" (the {network.topology} topology taken as a star of its links)"
    return spaces, "; ".join([line, *spaces.notes])


def run_cluster(fit: ClusterFit, measure: bool = False, netns: bool = False) -> dict[str, Any]:
    """Run the fitted scenario on a real cluster of `fit.nodes` node processes; the metrics dict.

    The metrics follow `run_real`'s (wall-clock seconds, ``world: "real"``) with
    ``placement`` (tasks that finished on each node, by scenario node index; a re-added
    node is listed under its index with its new node id), ``faults`` (what was carried
    out), ``recovery`` (the simulator's throughput-dip measure) and ``kill_recovery_s``
    (kill -> the last task retried after it finished). Task spans come from the head's task
    table: each body's run time on its node, ended when the driver saw it finish.
    `measure`: also time the network effects (`measure_network`) on the same cluster
    after the workload (a fresh worker node added if every one was killed), under
    ``network``. `netns`: worker nodes in network namespaces (`make_namespaces`) where
    they can be made; ``cluster.network`` says what was used.
    """
    import runtime as ray
    from runtime.cluster_utils import Cluster
    from runtime.util.state import list_nodes, list_tasks

    if ray.is_initialized():
        raise RuntimeError("run_cluster connects its own driver: call runtime.shutdown() first")
    scenario, workload = fit.scenario, fit.scenario.workload
    run = RUNNERS.get(workload.kind)
    if run is None or (getattr(workload, "from_rllib", None) is not None):
        raise RealModeRefused(f"--nodes does not run workload {workload.kind!r} (RLlib configs)")
    args = _node_args(fit)
    spaces, network_line = make_namespaces(fit) if netns else (None, "plain loopback")
    if netns:
        print(f"network             {network_line}", flush=True)
    cluster = Cluster(shutdown_at_exit=True)
    start = NodeStarter(cluster, args, spaces)
    try:
        slots = [_NodeSlot(i, start(i)) for i in range(fit.nodes)]
        cluster.connect()
        warm = ray.remote(work).options(scheduling_strategy="SPREAD")
        ray.get([warm.remote(0.0, 0) for _ in range(WARMUP_PER_NODE * fit.nodes * fit.cpus)])
        ids_before = {row["node_id"] for row in list_nodes(limit=STATE_LIMIT)}
        _assign_ids(slots, sorted(ids_before))
        driver = ClusterDriver(ray, scenario)
        faults = FaultPlan(cluster, slots, list(scenario.faults), start)
        driver.t0 = time.monotonic()
        faults.start(driver.t0)
        try:
            run(driver, workload)
        finally:
            faults.stop()
        end = driver.last
        rows = _settled_rows(list_tasks, set(driver.submitted_at))
        added = [e for e in faults.events if e["kind"] == "add"]
        if added:  # a re-added node's id: the ones not known before, in order of joining
            new = sorted({r["node_id"] for r in list_nodes(limit=STATE_LIMIT)} - ids_before)
            for event, node_id in zip(added, new, strict=False):
                slots[event["node"]].node_ids.append(node_id)
        network = None
        if measure:
            if fit.nodes >= 2 and all(slot.node is None for slot in slots[1:]):
                slots[1].node = start(1)  # every worker node was killed: one to measure on
            network = measure_network(ray, fit)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.connected = False
        cluster.shutdown()
        if spaces is not None:
            spaces.close()
    metrics = _metrics(fit, driver, rows, slots, faults.events, end, network)
    metrics["cluster"]["network"] = network_line
    return metrics


SETTLE_S = 10.0
"""Seconds to wait for worker nodes' task events (they are batched) to reach the head's table."""


def _settled_rows(list_tasks: Any, names: set[str]) -> list[dict[str, Any]]:
    """The task table's rows of `names`, once each is FINISHED or FAILED (or `SETTLE_S` passed)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        rows = [r for r in list_tasks(detail=True, limit=STATE_LIMIT) if r["name"] in names]
        ended = sum(1 for r in rows if r["state"] in ("FINISHED", "FAILED"))
        if ended >= len(names) or time.monotonic() >= deadline:
            return rows
        time.sleep(0.1)  # polling the head's table: the events arrive in batches


def _assign_ids(slots: list[_NodeSlot], ids: list[str]) -> None:
    """Node ids in order of joining (the head's is 0, then 1, 2, ...) -> scenario node indexes."""
    for slot, node_id in zip(slots, ids, strict=False):
        slot.node_ids.append(node_id)


def _metrics(
    fit: ClusterFit,
    driver: ClusterDriver,
    rows: list[dict[str, Any]],
    slots: list[_NodeSlot],
    events: list[dict[str, Any]],
    end: float,
    network: dict[str, Any] | None,
) -> dict[str, Any]:
    """The metrics schema of a multi-node real run (see `run_cluster`)."""
    metrics: MetricsRecorder = driver.metrics
    metrics.track_nodes(fit.nodes)
    index_of = {node_id: slot.index for slot in slots for node_id in slot.node_ids}
    placement = [0] * fit.nodes
    for row in rows:
        node = index_of.get(row["node_id"])
        if node is not None and row["state"] == "FINISHED":
            placement[node] += 1
        _span(metrics, driver, row, node or 0)
    makespan = max(0.0, end - driver.t0)
    total = fit.nodes * fit.cpus
    result = metrics.summary(makespan, total)
    capacity = [{"CPU": float(fit.cpus)} for _ in range(fit.nodes)]
    result["utilization"], result["node_utilization"] = metrics.utilization(makespan, capacity)
    for event in events:
        if event["kind"] == "kill":
            metrics.fault(event["time_s"], "node", event["node"])
    result.update(
        messages=None,
        message_bytes=None,
        spilled_tasks=None,  # decided inside the node processes: not seen by the driver
        transfers=None,
        bytes_transferred=None,
        faults=list(metrics.faults),
        warnings=_warnings(fit, events, makespan),
        world="real",
        cluster={"nodes": fit.nodes, "cpus_per_node": fit.cpus, "network": "loopback"},
        placement={
            "tasks_per_node": placement,
            "node_ids": [slot.node_ids for slot in slots],
        },
    )
    result["wait_breakdown"] = wait_summary({}, result["tasks"])
    if metrics.faults:
        first = min(f["time_s"] for f in metrics.faults)
        result["recovery"] = recovery(metrics.series, first, 0.0)
        result["kill_recovery_s"] = _kill_recovery(driver, rows, events)
    if network is not None:
        result["network"] = network
    return result


def _span(metrics: MetricsRecorder, driver: ClusterDriver, row: dict[str, Any], node: int) -> None:
    """One task's body from its task-table row: its run time on its node, ended when seen done.

    The row's times are the executing node's clock (each node process counts from its own
    start), so only their difference is used; the end is the driver's time of seeing the
    result, a little after the body ended.
    """
    name = row["name"]
    seen = driver.done_at.get(name)
    start_ms, end_ms = row["start_time_ms"], row["end_time_ms"]
    if seen is None or start_ms is None or end_ms is None:
        return
    submitted = driver.submitted_at[name] - driver.t0
    end = seen - driver.t0
    # a retried task's row may hold its first attempt's start (another node's clock):
    # a body cannot have run longer than from its submission to its result
    run_s = min(max(0.0, (end_ms - start_ms) / 1000), end - submitted)
    start = max(0.0, end - run_s)
    metrics.task_started(node, start)
    queued = max(0.0, start - submitted)
    metrics.task_finished(run_s, queued, node, end)
    shape = tuple(sorted((k, float(v)) for k, v in (row["required_resources"] or {}).items()))
    metrics.busy(node, shape, run_s)


def _kill_recovery(driver: ClusterDriver, rows: list[dict[str, Any]], events: list) -> float | None:
    """Seconds from the first kill until the last task retried after it was seen done."""
    kills = [e["time_s"] for e in events if e["kind"] == "kill"]
    retried = [
        driver.done_at[r["name"]] - driver.t0
        for r in rows
        if r["attempt_number"] > 0 and r["name"] in driver.done_at
    ]
    if not kills or not retried:
        return None
    return round_sig(max(retried) - min(kills))


def _warnings(fit: ClusterFit, events: list[dict[str, Any]], makespan: float) -> list[str]:
    """Faults that were due after the workload ended (not carried out), as the simulator says."""
    done = sum(1 for e in events if e["kind"] == "kill")
    return [
        f"fault node at {f.at_s:g} s was not injected: the workload ended first, at "
        f"{makespan:.6g} s"
        for f in sorted(fit.scenario.faults, key=lambda f: f.at_s)[done:]
    ]


# --- the network and failure models, measured -------------------------------------------------

TRANSFER_BYTES = 32 << 20
"""Size of the cross-node argument whose transfer is timed (a numpy array, out of band)."""

REPEATS = 5
"""Each measurement is the median of this many tries."""

HOLD_S = 1.0
"""How long the head's CPUs are held busy while a spilled task is timed."""

SPILL_QUEUE = 20
"""Trivial tasks submitted to the busy head: more than the raylet queues (its spillback
threshold, 16 in a node process) before it spills to another node."""


def _make(nbytes: int) -> tuple[Any, bool]:
    """An `nbytes` array (the object that crosses nodes) and a small marker that it exists."""
    import numpy as np

    return np.ones(nbytes, dtype=np.uint8), True


def _size(value: Any) -> int:
    """The size of an argument (it had to be here to be measured)."""
    return int(value.nbytes)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def measure_network(ray: Any, fit: ClusterFit) -> dict[str, Any]:
    """Time, on the connected cluster, a cross-node transfer and a spillback (seconds).

    transfer: a task on the head takes a `TRANSFER_BYTES` array already stored on node 1
    (made by a task whose small second return was read first); the time beyond the same
    task taking an array stored on the head is the pull. spillback: with the
    head's CPUs held by tasks pinned there, `SPILL_QUEUE` trivial tasks submitted to the
    head overflow its queue and spill to another node; the time until the first is done,
    beyond one such task on the idle head, is the spillback (None: none spilled).
    Needs 2 nodes (empty dict otherwise).
    """
    from runtime.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from runtime.util.state import list_nodes

    if fit.nodes < 2:
        return {}
    alive = sorted(r["node_id"] for r in list_nodes(limit=STATE_LIMIT) if r["state"] == "ALIVE")
    head, other = alive[0], alive[1]

    def on(node: str) -> dict[str, Any]:
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}

    make, size = ray.remote(_make), ray.remote(_size)

    def pair(src: str) -> float:
        value, made = make.options(num_returns=2, **on(src)).remote(TRANSFER_BYTES)
        ray.get(made)  # the value is stored on `src`; the driver has not read it
        t = time.perf_counter()
        ray.get(size.options(**on(head)).remote(value))
        return time.perf_counter() - t

    cross = _median([pair(other) for _ in range(REPEATS)])
    local = _median([pair(head) for _ in range(REPEATS)])
    trivial = ray.remote(work)

    def one(**options: Any) -> float:
        t = time.perf_counter()
        ray.get(trivial.options(**options).remote(0.0, 0))
        return time.perf_counter() - t

    idle = _median([one(**on(head)) for _ in range(REPEATS)])
    spilled = []
    for _ in range(REPEATS):
        holds = [trivial.options(**on(head)).remote(HOLD_S, 0) for _ in range(fit.cpus)]
        time.sleep(0.1)  # the holds reach the head's workers
        t = time.perf_counter()
        queue = [trivial.remote(0.0, 0) for _ in range(SPILL_QUEUE)]
        ready, _ = ray.wait(queue, num_returns=1, timeout=HOLD_S * 0.8)
        if ready:  # the first one done ran elsewhere: the head was busy
            spilled.append(time.perf_counter() - t)
        ray.get(holds + queue)
    return {
        "transfer_bytes": TRANSFER_BYTES,
        "transfer_s": round_sig(max(0.0, cross - local)),
        "spillback_s": round_sig(max(0.0, _median(spilled) - idle)) if spilled else None,
    }


def _sim_network(fit: ClusterFit, sim: dict[str, Any] | None) -> dict[str, float | None]:
    """The simulator's models of the same effects, for the scenario's network section.

    transfer: the network model's delay of `TRANSFER_BYTES` from node 1 to node 0 (path
    latency + size / bottleneck bandwidth, alone on the links); spillback: the two control
    hops a spilled task takes (its raylet to the global scheduler on the head, the global
    scheduler to the other node's raylet) on the same model, message costs left out;
    recovery: the simulated run's own (None without a fault or a run).
    """
    from sim.network import Network

    net = Network(fit.scenario.network, fit.nodes)
    small = 512
    return {
        "transfer_s": net.delay(1, 0, TRANSFER_BYTES),
        "spillback_s": net.delay(0, 0, small) + net.delay(0, 1, small),
        "kill_recovery_s": (sim or {}).get("recovery", {}).get("recovery_s"),
    }


def network_comparison(
    fit: ClusterFit, real: dict[str, Any], sim: dict[str, Any] | None
) -> list[tuple[str, float | None, float | None, float | None]]:
    """Rows (label, sim, real, (sim - real) / real) for transfer, spillback and recovery."""
    model = _sim_network(fit, sim)
    measured = dict(real.get("network") or {})
    measured["kill_recovery_s"] = (real.get("recovery") or {}).get("recovery_s")
    rows = []
    labels = (
        ("transfer_s", f"transfer {TRANSFER_BYTES >> 20} MiB (s)"),
        ("spillback_s", "spillback (s)"),
        ("kill_recovery_s", "recovery after kill (s)"),
    )
    for key, label in labels:
        s, r = model.get(key), measured.get(key)
        diff = None if s is None or r is None or r == 0 else (s - r) / r
        rows.append((label, s, r, diff))
    return rows


# --- the command-line mode ----------------------------------------------------------------------


def _table(rows: list[tuple[str, float | None, float | None, float | None]]) -> list[str]:
    lines = [f"{'metric':<26} {'sim':>12} {'real':>12} {'sim vs real':>12}"]
    for label, s, r, d in rows:
        fs = "n/a" if s is None else f"{s:.4g}"
        fr = "n/a" if r is None else f"{r:.4g}"
        fd = "n/a" if d is None else f"{d * 100:+.1f} %"
        lines.append(f"{label:<26} {fs:>12} {fr:>12} {fd:>12}")
    return lines


def run_cluster_mode(scenario: Scenario, mode: str, nodes: int, netns: bool = False) -> int:
    """`run-scenario FILE --mode real|both --nodes N`: run, print, write reports; the exit code.

    real: `reports/<name>/real/{metrics.json,report.md}` with placement per node. both:
    also the simulated run of the same fitted scenario under `sim/`, `comparison.md`,
    and `network.md`: the network and failure models against the measured run.
    """
    import sys
    from pathlib import Path

    from sim.metrics import write_json
    from sim.report import write_comparison, write_report
    from twin.real_mode import _print, _sim, comparison_lines

    try:
        fit = fit_cluster(scenario, nodes)
    except RealModeRefused as exc:
        print(f"run-scenario: cannot run in real mode: {exc}", file=sys.stderr)
        return 2
    _print(f"cluster             {fit.nodes} node processes x {fit.cpus} CPU(s)")
    if fit.note:
        _print(f"note                {fit.note}")
    base = Path(scenario.output.report_dir) / scenario.name
    intro = " ".join(
        x for x in (scenario.description, f"Real mode on {nodes} node processes. {fit.note}") if x
    )
    real = run_cluster(fit, measure=mode == "both", netns=netns)
    write_json(base / "real" / "metrics.json", real)
    write_report(real, base / "real", f"{scenario.name} (real, {nodes} nodes)", intro=intro)
    _print(f"real throughput     {real['throughput_tps']:,.0f} tasks/s over {real['tasks']} tasks")
    _print(f"tasks per node      {real['placement']['tasks_per_node']}")
    for fault in real["faults"]:
        _print(f"fault               node {fault['target']} killed at {fault['time_s']:.3g} s")
    if real.get("kill_recovery_s") is not None:
        _print(
            f"recovery            retried tasks done {real['kill_recovery_s']:.3g} s after the kill"
        )
    _print(f"real report         {base / 'real' / 'report.md'}")
    if mode == "real":
        return 0
    sim = _sim(fit.scenario)
    write_json(base / "sim" / "metrics.json", sim)
    write_report(sim, base / "sim", f"{scenario.name} (sim)", intro=intro)
    for line in comparison_lines(sim, real):
        _print(line)
    comparison = write_comparison(sim, real, base, scenario.name)
    rows = network_comparison(fit, real, sim)
    lines = _table(rows)
    for line in lines:
        _print(line)
    network = base / "network.md"
    network.write_text(
        f"# {scenario.name}: network and failure models vs {nodes} real nodes\n\n"
        f"Real nodes' network: {real['cluster']['network']}. The simulator's times are for "
        "the scenario's network section.\n\n```\n" + "\n".join(lines) + "\n```\n",
        encoding="utf-8",
    )
    text = comparison.read_text(encoding="utf-8")
    links = (
        "\n\nNetwork and failure models: [network.md](network.md). "
        "Per-world reports: [sim](sim/report.md), [real](real/report.md).\n"
    )
    (base / "report.md").write_text(text.rstrip() + "\n\n" + intro + links, encoding="utf-8")
    _print(f"comparison          {comparison}")
    return 0
