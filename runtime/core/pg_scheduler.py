"""The global scheduler's placement-group half: gang-reserves bundles (prepare/commit) and routes strategy tasks."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from runtime.core.ids import NodeId
from runtime.core.messages import (
    BundlesPrepared,
    CancelPlacementGroup,
    Command,
    CommitBundles,
    PlacementGroupPending,
    PlacementGroupPlaced,
    PrepareBundles,
    ReturnBundles,
    SchedulePlacementGroup,
    ScheduleTask,
    Send,
    TaskDone,
    Trace,
)
from runtime.core.placement import (
    AvoidNodes,
    Candidate,
    NodeAffinity,
    PlacementGroupStrategy,
    describe_strategy,
    original_demand,
    place_bundles,
)
from runtime.core.policies import NodeView
from runtime.core.resources import Resources, acquire, describe, fits, release
from runtime.core.task import ERR_PG_REMOVED, ERR_UNSCHEDULABLE, TaskSpec

if TYPE_CHECKING:
    from runtime.core.global_scheduler import GlobalScheduler

REMOVED_GROUPS_KEPT: Final = 100_000
"""Removed group ids remembered so that a late task for one fails instead of waiting (a
task can only name a removed group through a handle kept across that many removals)."""


@dataclass(slots=True)
class GroupPlacement:
    """The global scheduler's state of one placement group."""

    pg_id: int
    bundles: list[Resources]
    strategy: str
    placed: dict[int, NodeId] = field(default_factory=dict)
    """Committed bundles: index -> node."""
    attempt: int = 0
    tentative: dict[int, NodeId] = field(default_factory=dict)
    """The bundles of the attempt in flight (prepared or being prepared)."""
    awaiting: set[NodeId] = field(default_factory=set)
    """Nodes whose answer to this attempt's ``PrepareBundles`` has not come."""
    prepared: list[NodeId] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    reason: str = ""
    """The last reason it could not be placed (sent to the GCS when it changes)."""
    waiting: list[TaskSpec] = field(default_factory=list)
    """Tasks and actors for bundles not placed yet."""

    def complete(self) -> bool:
        """Every bundle is committed."""
        return len(self.placed) == len(self.bundles)


def _has_room(demand: Resources, view: NodeView) -> bool:
    """Whether `view`'s last reported availability, less its SPREAD tasks since, fits `demand`."""
    available, pending = view.available, view.spread_pending
    return all(
        available.get(name, 0.0) - pending.get(name, 0.0) >= amount
        for name, amount in demand.items()
    )


class PlacementGroupScheduling:
    """The placement-group part of a ``GlobalScheduler`` (its ``pg``): groups, SPREAD, node affinity.

    A group is placed all or nothing: the bundles' nodes are chosen by the strategy's
    rules (``runtime.core.placement.place_bundles``) from the scheduler's view, each node
    is asked to set its bundles aside (``PrepareBundles``), and only when every node said
    yes are they committed (``CommitBundles``); a refusal (the view was stale) returns
    the prepared ones and the group waits for the next resource report. A group no node
    set can ever hold stays pending with the reason, and is tried again when a node joins.
    """

    def __init__(self, gs: GlobalScheduler) -> None:
        self.gs = gs
        """The scheduler this part belongs to (its node views, policy and placement helpers)."""
        self.groups: dict[int, GroupPlacement] = {}
        self.pending_groups: dict[int, GroupPlacement] = {}
        """Groups waiting for resources (not in flight), tried again on each report."""
        self.infeasible_groups: dict[int, GroupPlacement] = {}
        """Groups no set of live nodes could ever hold, tried again only when a node joins."""
        self.removed_groups: set[int] = set()
        """Recently removed groups (the last ``REMOVED_GROUPS_KEPT``): their tasks fail."""
        self._removed_order: deque[int] = deque()
        self.early_tasks: dict[int, list[TaskSpec]] = {}
        """Tasks for a group this scheduler has not heard of yet (it overtook the group)."""
        self._spread_next = 0

    # -- groups ---------------------------------------------------------------------------

    def _on_schedule_pg(self, msg: SchedulePlacementGroup, now: float, out: list[Command]) -> None:
        if msg.pg_id in self.removed_groups:
            return
        group = self.groups.get(msg.pg_id)
        if group is None:
            group = GroupPlacement(msg.pg_id, [dict(b) for b in msg.bundles], msg.strategy)
            self.groups[msg.pg_id] = group
            group.waiting.extend(self.early_tasks.pop(msg.pg_id, ()))
        group.placed = dict(msg.placed)
        self._try_group(group, now, out)

    def _try_group(self, group: GroupPlacement, now: float, out: list[Command]) -> None:
        """Place ``group``'s missing bundles if the view allows; else record why not."""
        self.pending_groups.pop(group.pg_id, None)
        self.infeasible_groups.pop(group.pg_id, None)
        if group.awaiting or group.complete():
            return
        live = sorted(self.gs.views.items())
        nodes = [Candidate(n, v.available) for n, v in live]
        assignment, reason = place_bundles(group.strategy, group.bundles, nodes, group.placed)
        if assignment is None:
            totals = [Candidate(n, v.total) for n, v in live]
            ever, why = place_bundles(group.strategy, group.bundles, totals, group.placed)
            infeasible = ever is None
            reason = why if infeasible else reason
            waiting = self.infeasible_groups if infeasible else self.pending_groups
            waiting[group.pg_id] = group
            if reason != group.reason:
                group.reason = reason
                pending = PlacementGroupPending(group.pg_id, reason, infeasible)
                out.append(Send(self.gs.gcs_addr, pending, 128))
            return
        group.attempt += 1
        group.tentative = assignment
        group.prepared, group.refusals = [], []
        per_node: dict[NodeId, list[tuple[int, Resources]]] = {}
        for index, node in sorted(assignment.items()):
            per_node.setdefault(node, []).append((index, group.bundles[index]))
        group.awaiting = set(per_node)
        for node, items in sorted(per_node.items()):
            view = self.gs.views[node]
            for _, bundle in items:
                acquire(view.available, bundle)  # until the next report shows it
            prepare = PrepareBundles(group.pg_id, group.attempt, items)
            out.append(Send(view.addr, prepare, 96 + 32 * len(items)))
        if self.gs.config.trace:
            out.append(Trace("pg_prepare", group.pg_id, -1, reason))

    def _on_bundles_prepared(self, msg: BundlesPrepared, now: float, out: list[Command]) -> None:
        group = self.groups.get(msg.pg_id)
        if group is None or msg.attempt != group.attempt or msg.node not in group.awaiting:
            if msg.ok:  # a stale yes (the group was removed or retried): give it back
                view = self.gs.views.get(msg.node)
                if view is not None:
                    reason = "stale preparation"
                    out.append(Send(view.addr, ReturnBundles(msg.pg_id, reason, msg.attempt)))
            return
        group.awaiting.discard(msg.node)
        if msg.ok:
            group.prepared.append(msg.node)
        else:
            group.refusals.append(f"node {msg.node}: {msg.reason}")
        if group.awaiting:
            return
        if group.refusals:  # all or nothing: give back what was set aside, wait for reports
            for node in group.prepared:
                view = self.gs.views.get(node)
                if view is not None:
                    back = ReturnBundles(group.pg_id, "prepare refused elsewhere", group.attempt)
                    out.append(Send(view.addr, back, 64))
            prepared = set(group.prepared)
            self._credit({i: n for i, n in group.tentative.items() if n in prepared}, group)
            group.tentative = {}
            group.reason = "a node refused its bundles: " + "; ".join(group.refusals)
            out.append(Send(self.gs.gcs_addr, PlacementGroupPending(group.pg_id, group.reason)))
            self.pending_groups[group.pg_id] = group
            return
        for node in sorted(set(group.tentative.values())):
            view = self.gs.views.get(node)
            if view is not None:
                out.append(Send(view.addr, CommitBundles(group.pg_id, group.attempt), 64))
        group.placed.update(group.tentative)
        group.tentative = {}
        group.reason = ""
        nodes = [group.placed.get(i, -1) for i in range(len(group.bundles))]
        out.append(Send(self.gs.gcs_addr, PlacementGroupPlaced(group.pg_id, nodes), 64))
        waiting, group.waiting = group.waiting, []
        for spec in waiting:
            self._place_in_group(spec, group, now, out)

    def _on_cancel_pg(self, msg: CancelPlacementGroup, now: float, out: list[Command]) -> None:
        self.removed_groups.add(msg.pg_id)
        self._removed_order.append(msg.pg_id)
        if len(self._removed_order) > REMOVED_GROUPS_KEPT:
            self.removed_groups.discard(self._removed_order.popleft())
        self.pending_groups.pop(msg.pg_id, None)
        self.infeasible_groups.pop(msg.pg_id, None)
        group = self.groups.pop(msg.pg_id, None)
        waiting = self.early_tasks.pop(msg.pg_id, [])
        if group is not None:
            waiting += group.waiting
            held = {**group.placed, **group.tentative}
            for node in sorted(set(held.values())):
                view = self.gs.views.get(node)
                if view is not None:
                    out.append(Send(view.addr, ReturnBundles(msg.pg_id, msg.reason), 64))
            self._credit(held, group)
        for spec in waiting:
            self._fail(spec, ERR_PG_REMOVED, msg.reason, out)
        if group is not None and self.pending_groups:  # what it held may place others now
            self._groups_on_report(now, out)

    def _credit(self, held: dict[int, NodeId], group: GroupPlacement) -> None:
        """Bundles given back: the view shows them free until the next report says more.

        Channels are FIFO, so a raylet handles the return before any later preparation.
        """
        for index, node in held.items():
            view = self.gs.views.get(node)
            if view is not None:
                release(view.available, group.bundles[index])

    def _groups_on_report(self, now: float, out: list[Command]) -> None:
        """Fresh availability: try the groups waiting for resources again."""
        for group in list(self.pending_groups.values()):
            self._try_group(group, now, out)

    def _groups_on_node_added(self, now: float, out: list[Command]) -> None:
        """A node joined: every group not placed may fit now."""
        for group in list(self.infeasible_groups.values()) + list(self.pending_groups.values()):
            self._try_group(group, now, out)

    def _groups_on_node_removed(self, node: NodeId, now: float, out: list[Command]) -> None:
        for group in self.groups.values():
            lost = [i for i, n in group.placed.items() if n == node]
            for i in lost:
                del group.placed[i]  # the GCS sends the group again to place them
            if node in group.awaiting:  # it will never answer: the attempt fails
                group.awaiting.discard(node)
                group.refusals.append(f"node {node} died")
                if not group.awaiting:
                    self._abort_attempt(group, out)

    def _abort_attempt(self, group: GroupPlacement, out: list[Command]) -> None:
        for node in group.prepared:
            view = self.gs.views.get(node)
            if view is not None:
                out.append(Send(view.addr, ReturnBundles(group.pg_id, "node died", group.attempt)))
        group.tentative, group.prepared = {}, []
        group.reason = "; ".join(group.refusals)
        self.pending_groups[group.pg_id] = group

    # -- tasks with a strategy ------------------------------------------------------------

    def _place_strategic(self, spec: TaskSpec, now: float, out: list[Command]) -> bool:
        """Place a task that has a strategy; False: use the default policy instead."""
        strategy = spec.strategy
        if isinstance(strategy, PlacementGroupStrategy):
            group = self.groups.get(strategy.pg_id)
            if group is None:
                if strategy.pg_id in self.removed_groups:
                    reason = f"placement group {strategy.pg_id:x} was removed"
                    self._fail(spec, ERR_PG_REMOVED, reason, out)
                else:
                    self.early_tasks.setdefault(strategy.pg_id, []).append(spec)
                return True
            self._place_in_group(spec, group, now, out)
            return True
        if isinstance(strategy, NodeAffinity):
            view = self.gs.views.get(strategy.node)
            if view is not None and fits(spec.resources, view.total):
                self._send_to(spec, view, "global: node affinity", out)
                return True
            if strategy.soft:
                return False
            why = "is not alive" if view is None else f"cannot fit {describe(spec.resources)}"
            detail = (
                f"task {spec.name or spec.task_id} has a hard node affinity to node "
                f"{strategy.node}, which {why}"
            )
            self._fail(spec, ERR_UNSCHEDULABLE, detail, out)
            return True
        if isinstance(strategy, AvoidNodes):
            return self._place_away(spec, strategy, out)
        # SPREAD: round robin over the feasible nodes, preferring one with room now (as
        # Ray's policy does: its first pass takes an available node, the second any
        # feasible one). Room is the node's last reported availability less what SPREAD
        # tasks sent there since asked for, so a burst does not pile onto one node.
        candidates = self.gs.feasible(spec)
        if not candidates:
            return False  # the default path explains the infeasibility
        n = len(candidates)
        start = self._spread_next % n
        self._spread_next += 1
        demand = spec.resources
        chosen = candidates[start]
        for k in range(n):
            view = candidates[(start + k) % n]
            if _has_room(demand, view):
                chosen = view
                break
        pending = chosen.spread_pending
        for name, amount in demand.items():
            pending[name] = pending.get(name, 0.0) + amount
        self._send_to(spec, chosen, "global: SPREAD round robin", out)
        return True

    def _place_away(self, spec: TaskSpec, strategy: AvoidNodes, out: list[Command]) -> bool:
        """Place a speculative backup copy by the policy, on any feasible node but those
        avoided; none left: unschedulable (its owner drops the backup)."""
        candidates = [v for v in self.gs.feasible(spec) if v.node not in strategy.nodes]
        if not candidates:
            avoided = ", ".join(map(str, strategy.nodes))
            detail = f"no node but {avoided} can run task {spec.name or spec.task_id}"
            self._fail(spec, ERR_UNSCHEDULABLE, detail, out)
            return True
        view, reason = self.gs.policy.choose(candidates, spec, self.gs.rng)
        self._send_to(spec, view, f"global: {describe_strategy(strategy)}; {reason}", out)
        return True

    def _place_in_group(
        self, spec: TaskSpec, group: GroupPlacement, now: float, out: list[Command]
    ) -> None:
        strategy = spec.strategy
        index = strategy.bundle_index
        demand = original_demand(spec.resources, group.pg_id)
        if index >= len(group.bundles):
            detail = (
                f"task {spec.name or spec.task_id} asks for bundle {index} of placement group "
                f"{group.pg_id:x}, which has {len(group.bundles)} bundle(s)"
            )
            self._fail(spec, ERR_UNSCHEDULABLE, detail, out)
            return
        indices = [index] if index >= 0 else list(range(len(group.bundles)))
        fitting = [i for i in indices if fits(demand, group.bundles[i])]
        if not fitting:
            where = f"bundle {index}" if index >= 0 else "any bundle"
            shapes = ", ".join(describe(group.bundles[i]) for i in indices)
            detail = (
                f"task {spec.name or spec.task_id} requests {describe(demand)}, more than "
                f"{where} of placement group {group.pg_id:x} has ({shapes})"
            )
            self._fail(spec, ERR_UNSCHEDULABLE, detail, out)
            return
        nodes = sorted({group.placed[i] for i in fitting if i in group.placed})
        views = [self.gs.views[n] for n in nodes if n in self.gs.views]
        if not views:
            group.waiting.append(spec)  # placed when the group (or its bundle) is
            return
        free = [v for v in views if v.assigned == 0 and fits(spec.resources, v.available)]
        view = min(free or views, key=lambda v: (v.load(), v.node))
        self._send_to(spec, view, "global: " + describe_strategy(strategy), out)

    def _send_to(self, spec: TaskSpec, view: NodeView, reason: str, out: list[Command]) -> None:
        view.assigned += 1
        spec.node = view.node
        if spec.kind:  # an actor's creation: remembered (`GlobalScheduler._on_check_actor`)
            self.gs.creations[spec.actor_id] = (view.node, spec.attempt)
        spec.spills += 1
        spec.reason = reason
        self.gs.placed += 1
        if self.gs.config.trace:
            out.append(Trace("place", spec.task_id, view.node, reason))
        self.gs._note_placed(spec, view.node, out)
        out.append(Send(view.addr, ScheduleTask(spec), spec.nbytes))

    @staticmethod
    def _fail(spec: TaskSpec, kind: str, detail: str, out: list[Command]) -> None:
        out.append(Send(spec.owner, TaskDone(spec.task_id, -1, [], kind, detail), 256))
