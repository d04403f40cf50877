"""Cross-checks: constraints that span sections (feasible demands, topology, faults, groups)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from runtime.core.placement import Candidate, place_bundles
from runtime.core.policies import POLICIES, policies_with
from sim.network import build_graph
from sim.scenario.errors import render_value
from sim.scenario.models import (
    GraphWorkload,
    NodeGroupSpec,
    Scenario,
    SchedulerSpec,
    TraceArrivals,
    read_arrival_trace,
    read_task_graph,
)
from sim.topology import TopologyError

POLICY_PARAMS = frozenset(param for policy in POLICIES.values() for param in policy.params)
"""Config fields that are parameters of some policies (a `scheduler` field of the same name
may be set only with a policy that reads it)."""


def cross_checks(scenario: Scenario, policies: tuple[str, ...]) -> list[str]:
    """Constraints that span sections; each problem as a `field: expected ...` line."""
    problems = []
    if scenario.scheduler.policy not in policies:  # a defaulted policy skips the validator
        expected = ", ".join(repr(p) for p in sorted(policies))
        problems.append(
            f"scheduler.policy: expected one of {expected}, got {scenario.scheduler.policy!r}"
        )
    problems.extend(_policy_param_problems(scenario.scheduler))
    workload, cluster = scenario.workload, scenario.cluster
    if workload.drivers > cluster.nodes:
        problems.append(
            f"workload.drivers: expected an integer <= cluster.nodes ({cluster.nodes}),"
            f" got {workload.drivers}"
        )
    problems.extend(_topology_problems(scenario))
    if isinstance(workload, GraphWorkload):
        try:
            read_task_graph(Path(workload.file))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(
                f"workload.file: expected a readable JSON/YAML task graph, got"
                f" {workload.file!r} ({getattr(exc, 'strerror', None) or exc})"
            )
    problems.extend(_trace_problems(workload))
    groups = cluster.node_groups()
    for path, demand in workload.demands():
        problem = _infeasible(path, demand, groups)
        if problem:
            problems.append(problem)
    problems.extend(_placement_group_problems(workload, groups))
    for i, fault in enumerate(scenario.faults):
        problems.extend(_fault_problems(f"faults.{i}", fault, cluster.nodes, workload.drivers))
        problems.extend(_slow_worker_problems(f"faults.{i}", fault, groups))
    return problems


def _policy_param_problems(scheduler: SchedulerSpec) -> list[str]:
    """Policy parameters set in the scenario must be parameters of its policy."""
    policy = POLICIES.get(scheduler.policy)
    if policy is None:  # a name from a caller's registry: its parameters are unknown here
        return []
    problems = []
    for param in sorted(POLICY_PARAMS & scheduler.model_fields_set):
        if param not in policy.params:
            takers = ", ".join(repr(p) for p in policies_with(param))
            problems.append(
                f"scheduler.{param}: expected no {param} with policy {scheduler.policy!r}"
                f" (not one of its parameters; policies that take it: {takers}), got"
                f" {render_value(getattr(scheduler, param))}"
            )
    return problems


def _topology_problems(scenario: Scenario) -> list[str]:
    """Build the topology graph once to report what is wrong with it."""
    net = scenario.network
    if net.topology == "edges" and not net.edges:
        return ["network.edges: expected a non-empty list of edges for topology 'edges'"]
    try:
        build_graph(net, scenario.cluster.nodes)
    except TopologyError as exc:
        field = {"edges": "network.edges", "fat_tree": "network.fat_tree_k"}.get(
            net.topology, "network"
        )
        return [f"{field}: {exc}"]
    return []


_DEMAND_FIELDS = {"CPU": "num_cpus", "GPU": "num_gpus"}


def _infeasible(path: str, demand: dict[str, float], groups: list[NodeGroupSpec]) -> str | None:
    """A problem text if no node group can ever satisfy `demand`, else None."""
    node_res = [(g.name, g.resources()) for g in groups]
    if any(all(res.get(k, 0.0) + 1e-9 >= v for k, v in demand.items()) for _, res in node_res):
        return None
    offered = "; ".join(f"{name}: {_describe_res(res)}" for name, res in node_res)
    for key, amount in sorted(demand.items()):
        if all(res.get(key, 0.0) + 1e-9 < amount for _, res in node_res):
            where = path
            if path == "workload":
                where += "." + _DEMAND_FIELDS.get(key, f"resources.{key}")
            return (
                f"{where}: expected a request some node group can satisfy ({offered}),"
                f" got {_describe_res(demand)}: no node has {render_value(amount)} {key}"
            )
    return (
        f"{path}: expected a request some node group can satisfy ({offered}),"
        f" got {_describe_res(demand)}: no single node has all of it"
    )


def _placement_group_problems(workload: Any, groups: list[NodeGroupSpec]) -> list[str]:
    """The workload's placement group must fit the cluster and hold every task and actor."""
    pg = getattr(workload, "placement_group", None)  # a serving workload has none
    if pg is None:
        return []
    if workload.scheduling_strategy != "default":
        return [
            "workload.scheduling_strategy: expected 'default' with a placement_group (a "
            f"task runs in its group), got {workload.scheduling_strategy!r}"
        ]
    problems = []
    nodes = [Candidate(n, g.resources()) for n, g in enumerate(_nodes_of(groups))]
    bundles = [{k: float(v) for k, v in b.items() if v} for b in pg.bundles]
    placed, reason = place_bundles(pg.strategy, bundles, nodes)
    if placed is None:
        problems.append(
            f"workload.placement_group: expected bundles the cluster can hold, got "
            f"{len(bundles)} bundle(s) by {pg.strategy}: {reason}"
        )
    for path, demand in workload.demands():
        fitting = [i for i, b in enumerate(bundles) if _fits(demand, b)]
        if pg.bundle == "round_robin" and len(fitting) < len(bundles):
            missing = next(i for i in range(len(bundles)) if i not in fitting)
            problems.append(
                f"workload.placement_group.bundles.{missing}: expected a bundle that holds "
                f"{path} {_describe_res(demand)} (bundle: round_robin uses every bundle), "
                f"got {_describe_res(bundles[missing])}"
            )
        elif not fitting:
            problems.append(
                f"workload.placement_group.bundles: expected a bundle that holds {path} "
                f"{_describe_res(demand)}, got {[_describe_res(b) for b in bundles]}"
            )
    return problems


def _nodes_of(groups: list[NodeGroupSpec]) -> list[NodeGroupSpec]:
    return [g for g in groups for _ in range(g.count)]


def _fits(demand: Mapping[str, float], res: Mapping[str, float]) -> bool:
    return all(res.get(k, 0.0) + 1e-9 >= v for k, v in demand.items() if v > 0)


def _describe_res(res: Mapping[str, float]) -> str:
    """`{CPU: 32, GPU: 8}`."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items())) + "}"


def _fault_problems(path: str, fault: Any, nodes: int, drivers: int) -> list[str]:
    """Problems with one fault's targets."""
    problems = []
    targets = [fault.node] if hasattr(fault, "node") else list(getattr(fault, "nodes", []))
    for node in targets:
        if node >= nodes:
            problems.append(f"{path}: expected node < cluster.nodes ({nodes}), got {node}")
    if fault.kind == "node" and fault.node < max(1, drivers):
        problems.append(
            f"{path}.node: expected a node hosting neither the head (0) nor a driver"
            f" (nodes 0..{drivers - 1}): >= {max(1, drivers)}, got {fault.node}"
        )
    return problems


def _slow_worker_problems(path: str, fault: Any, groups: list[Any]) -> list[str]:
    """A one-worker `slow` fault names a worker the node has (one per CPU)."""
    worker = getattr(fault, "worker", None)
    if worker is None:
        return []
    cpus = [group.resources().get("CPU", 0.0) for group in groups for _ in range(group.count)]
    if fault.node >= len(cpus):
        return []  # the node itself is refused by `_fault_problems`
    workers = int(cpus[fault.node])
    if worker >= workers:
        return [
            f"{path}.worker: expected a worker index < the CPUs of node {fault.node}"
            f" ({workers}), got {worker}"
        ]
    return []


def _trace_problems(workload: Any) -> list[str]:
    """A serving workload's arrival trace: readable, well-formed, with enough arrivals."""
    arrivals = getattr(workload, "arrivals", None)
    if not isinstance(arrivals, TraceArrivals):
        return []
    try:
        times = read_arrival_trace(Path(arrivals.file))
    except (OSError, ValueError) as exc:
        return [
            f"workload.arrivals.file: expected a readable trace of arrival times, got"
            f" {arrivals.file!r} ({getattr(exc, 'strerror', None) or exc})"
        ]
    if len(times) < workload.requests:
        return [
            f"workload.arrivals.file: expected at least workload.requests"
            f" ({workload.requests}) arrival times, got {len(times)}"
        ]
    return []
