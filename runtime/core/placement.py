"""Placement groups and scheduling strategies: bundle resource names and the per-strategy placement rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from runtime.core.ids import Address, NodeId
from runtime.core.resources import EPS, Resources, describe, fits

# -- strategies carried by a TaskSpec (``TaskSpec.strategy``) ------------------------------


@dataclass(slots=True, frozen=True)
class PlacementGroupStrategy:
    """Run the task (or actor) in bundle ``bundle_index`` of group ``pg_id`` (-1: any bundle).

    ``capture_child_tasks``: tasks the task submits without a strategy of their own go in
    the same group (Ray's ``placement_group_capture_child_tasks``).
    """

    pg_id: int
    bundle_index: int = -1
    capture_child_tasks: bool = False


@dataclass(slots=True, frozen=True)
class NodeAffinity:
    """Run the task on ``node``; ``soft``: elsewhere when that node is gone or cannot fit it."""

    node: NodeId
    soft: bool = False


@dataclass(slots=True, frozen=True)
class Spread:
    """Spread tasks across nodes (Ray's ``scheduling_strategy="SPREAD"``): round robin,
    preferring nodes with the resources free now."""


SPREAD = Spread()
"""The one ``Spread`` instance."""


@dataclass(slots=True, frozen=True)
class AvoidNodes:
    """Run the task on any node but ``nodes`` (a speculative backup copy: never where the
    copy it backs up runs; ``runtime.core.speculation``). No other node: unschedulable."""

    nodes: tuple[NodeId, ...]


Strategy = PlacementGroupStrategy | NodeAffinity | Spread | AvoidNodes

# -- placement group strategies and states -------------------------------------------------

PACK: Final = "PACK"
SPREAD_BUNDLES: Final = "SPREAD"
STRICT_PACK: Final = "STRICT_PACK"
STRICT_SPREAD: Final = "STRICT_SPREAD"
PG_STRATEGIES: Final = (PACK, SPREAD_BUNDLES, STRICT_PACK, STRICT_SPREAD)

PG_PENDING: Final = "PENDING"
"""Not every bundle is reserved yet (``reason`` says why)."""
PG_CREATED: Final = "CREATED"
"""Every bundle is reserved on a node."""
PG_RESCHEDULING: Final = "RESCHEDULING"
"""A node holding some of its bundles died; those are being placed again."""
PG_REMOVED: Final = "REMOVED"
"""Removed: its bundles are returned, its actors killed, its tasks failed."""

BUNDLE_UNIT: Final = 1000.0
"""Each bundle also grants ``bundle_group_<i>_<pg>: 1000`` (Ray's bundle resource)."""
BUNDLE_DEMAND: Final = 0.001
"""What a task in a bundle asks of the bundle resource, so even a zero-CPU task targets one."""


def group_suffix(pg_id: int) -> str:
    """The suffix of a group's resource names: its id in hex, as Ray names them."""
    return f"{pg_id:x}"


def bundle_demand(resources: Resources, pg_id: int, index: int) -> Resources:
    """The resource vector of a task placed in bundle ``index`` (-1: any) of ``pg_id``.

    As in Ray, ``CPU: 1`` in bundle 0 becomes ``CPU_group_0_<pg>: 1`` and the wildcard
    ``CPU_group_<pg>: 1``; both are what the raylet granted when it committed the bundle.
    Idempotent: names already of this group are kept (a retried task is not renamed twice).
    """
    suffix = group_suffix(pg_id)
    wildcard = f"bundle_group_{suffix}"
    if wildcard in resources:
        return resources  # renamed already (a retry, or a host that renamed it once)
    out: Resources = {}
    for name, amount in resources.items():
        if name.endswith("_" + suffix) and "_group_" in name:
            out[name] = amount
            continue
        if amount <= 0:
            continue
        out[f"{name}_group_{suffix}"] = amount
        if index >= 0:
            out[f"{name}_group_{index}_{suffix}"] = amount
    if wildcard not in out:
        out[wildcard] = BUNDLE_DEMAND
        if index >= 0:
            out[f"bundle_group_{index}_{suffix}"] = BUNDLE_DEMAND
    return out


def bundle_grant(bundle: Resources, pg_id: int, index: int) -> Resources:
    """The resources a raylet adds to its totals when it commits bundle ``index`` of ``pg_id``."""
    suffix = group_suffix(pg_id)
    out: Resources = {}
    for name, amount in bundle.items():
        if amount > 0:
            out[f"{name}_group_{suffix}"] = amount
            out[f"{name}_group_{index}_{suffix}"] = amount
    out[f"bundle_group_{suffix}"] = BUNDLE_UNIT
    out[f"bundle_group_{index}_{suffix}"] = BUNDLE_UNIT
    return out


def original_demand(resources: Resources, pg_id: int) -> Resources:
    """Undo ``bundle_demand``: the plain request (for messages naming what a task asked)."""
    suffix = "_" + group_suffix(pg_id)
    out: Resources = {}
    for name, amount in resources.items():
        if not name.endswith(suffix) or name.startswith("bundle_group_"):
            continue
        base = name[: -len(suffix)]
        head, _, tail = base.rpartition("_group")
        if tail == "":  # the wildcard name: <resource>_group_<pg>
            out[head] = amount
    return out


def plain_name(name: str) -> str:
    """The resource a bundle resource stands for: ``CPU`` for the wildcard ``CPU_group_<pg>``.

    Indexed names (``CPU_group_<i>_<pg>``) and ``bundle_group_*`` give ``""``: each task in
    a bundle also holds the wildcard, which is what to count.
    """
    head, sep, tail = name.partition("_group_")
    if not sep or head == "bundle" or "_" in tail:
        return ""
    return head


# -- the GCS table row ---------------------------------------------------------------------


@dataclass(slots=True)
class PlacementGroupRecord:
    """A row of the GCS placement-group table (read by ``placement_group_table`` and the state API).

    ``bundle_nodes[i]`` is the node holding bundle ``i`` (-1 while unplaced); ``reason``
    explains a PENDING group: which bundle could not be placed and why.
    """

    pg_id: int
    name: str
    bundles: list[Resources]
    strategy: str
    lifetime: str | None
    owner: Address
    state: str = PG_PENDING
    bundle_nodes: list[NodeId] = field(default_factory=list)
    reason: str = ""
    created_at: float = 0.0
    placed_at: float = -1.0
    attempts: int = 0
    creator_actor: int = 0
    """The actor that created the group (0: the job); it dies with it unless detached."""
    subscribers: list[Address] = field(default_factory=list)


# -- placement rules -----------------------------------------------------------------------


@dataclass(slots=True)
class Candidate:
    """One node as the placement rules see it: its id and the resources they may use."""

    node: NodeId
    free: Resources


def _total(bundles: Sequence[Resources]) -> Resources:
    total: Resources = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _take(free: Resources, demand: Resources) -> None:
    for k, v in demand.items():
        free[k] = free.get(k, 0.0) - v


def _size(bundle: Resources) -> tuple[float, ...]:
    return (-sum(v for v in bundle.values()),)


def place_bundles(
    strategy: str,
    bundles: Sequence[Resources],
    nodes: Sequence[Candidate],
    fixed: Mapping[int, NodeId] | None = None,
) -> tuple[dict[int, NodeId] | None, str]:
    """Choose a node for every bundle not in ``fixed``, by ``strategy``; all or nothing.

    ``nodes`` are the live nodes in a stable order with the resources the rules may use
    (what is free, or their totals to ask whether the group can ever be placed); their
    ``free`` dicts are not modified. ``fixed`` holds bundles already placed (a group
    being rescheduled after a node died): they count for the strict strategies. Returns
    ``(assignment, reason)``: the new bundles' nodes, or None and which bundle could not
    be placed and why.
    """
    fixed = dict(fixed or {})
    todo = [i for i in range(len(bundles)) if i not in fixed]
    todo.sort(key=lambda i: (_size(bundles[i]), i))  # biggest first, then by index
    pool = [Candidate(c.node, dict(c.free)) for c in nodes]
    by_node = {c.node: c for c in pool}
    used: dict[NodeId, int] = {}
    for node in fixed.values():
        used[node] = used.get(node, 0) + 1
    assignment: dict[int, NodeId] = {}
    if not todo:
        return assignment, "nothing to place"
    if not pool:
        return None, "no node is alive"

    if strategy == STRICT_PACK:
        need = _total([bundles[i] for i in todo])
        targets = [by_node[n] for n in used if n in by_node] if used else pool
        for c in targets:
            if fits(need, c.free):
                return {i: c.node for i in todo}, f"STRICT_PACK: all bundles on node {c.node}"
        if used and not targets:
            return None, "STRICT_PACK: the node holding the other bundles is gone"
        return None, (
            f"STRICT_PACK: no node has {describe(need)} for all "
            f"{len(todo)} bundle(s) together (largest free: {describe(_largest(pool))})"
        )

    if strategy == PACK:
        need = _total([bundles[i] for i in todo])
        if not used:
            for c in pool:
                if fits(need, c.free):
                    return {i: c.node for i in todo}, f"PACK: all bundles on node {c.node}"
        for i in todo:
            b = bundles[i]
            # nodes already used first (fewest nodes), then the one with the most free
            chosen = next(
                (by_node[n] for n in used if n in by_node and fits(b, by_node[n].free)), None
            )
            if chosen is None:
                fitting = [c for c in pool if fits(b, c.free)]
                if not fitting:
                    return None, _unplaceable(i, b, pool)
                chosen = max(fitting, key=lambda c: (_capacity(c.free), -c.node))
            _take(chosen.free, b)
            used[chosen.node] = used.get(chosen.node, 0) + 1
            assignment[i] = chosen.node
        return assignment, f"PACK: on {len(set(assignment.values()) | set(fixed.values()))} node(s)"

    if strategy in (SPREAD_BUNDLES, STRICT_SPREAD):
        strict = strategy == STRICT_SPREAD
        for i in todo:
            b = bundles[i]
            fitting = [c for c in pool if fits(b, c.free)]
            if strict:
                fitting = [c for c in fitting if c.node not in used]
            if not fitting:
                if strict:
                    distinct = sum(1 for c in pool if c.node not in used)
                    return None, (
                        f"STRICT_SPREAD: bundle {i} {describe(b)} needs a node of its own, and "
                        f"none of the {distinct} node(s) not holding another bundle of the "
                        f"group can fit it ({len(bundles)} bundles, {len(pool)} live node(s))"
                    )
                return None, _unplaceable(i, b, pool)
            chosen = min(fitting, key=lambda c: (used.get(c.node, 0), c.node))
            _take(chosen.free, b)
            used[chosen.node] = used.get(chosen.node, 0) + 1
            assignment[i] = chosen.node
        return assignment, f"{strategy}: on {len(set(assignment.values()))} node(s)"

    raise ValueError(f"unknown placement group strategy {strategy!r}")


def _capacity(free: Resources) -> float:
    return sum(v for v in free.values() if v > EPS)


def _largest(pool: Sequence[Candidate]) -> Resources:
    largest: Resources = {}
    for c in pool:
        for k, v in c.free.items():
            largest[k] = max(largest.get(k, 0.0), v)
    return largest


def _unplaceable(i: int, bundle: Resources, pool: Sequence[Candidate]) -> str:
    return (
        f"bundle {i} {describe(bundle)} fits no node "
        f"(largest free per resource: {describe(_largest(pool))})"
    )


def describe_strategy(strategy: Any) -> str:
    """A short readable name for a task's strategy (for reasons and errors)."""
    if isinstance(strategy, PlacementGroupStrategy):
        return f"placement group {strategy.pg_id:x} bundle {strategy.bundle_index}"
    if isinstance(strategy, NodeAffinity):
        return f"node affinity to node {strategy.node} ({'soft' if strategy.soft else 'hard'})"
    if isinstance(strategy, AvoidNodes):
        return "a backup copy, away from node(s) " + ", ".join(map(str, strategy.nodes))
    return "SPREAD"


def apply_strategy(spec: Any) -> None:
    """Rename a placement-group task's request to its bundle's resources (idempotent)."""
    strategy = spec.strategy
    if isinstance(strategy, PlacementGroupStrategy):
        renamed = bundle_demand(spec.resources, strategy.pg_id, strategy.bundle_index)
        if renamed is not spec.resources:
            spec.resources = renamed
            spec.shape = None
        if spec.hold is not None:
            spec.hold = bundle_demand(spec.hold, strategy.pg_id, strategy.bundle_index)
