"""The global scheduler: places tasks that raylets spill, from a periodically refreshed view of the cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from runtime.core.component import Component
from runtime.core.config import CoreConfig
from runtime.core.ids import Address, NodeId
from runtime.core.invariants import InvariantError
from runtime.core.messages import (
    ActorDied,
    BundlesPrepared,
    CancelPlacementGroup,
    CancelTask,
    CheckActorPlacement,
    Command,
    HostEvent,
    Message,
    NodeAdded,
    NodeRemoved,
    ResourceReport,
    SchedulePlacementGroup,
    ScheduleTask,
    Send,
    SpillTask,
    Subscribe,
    TaskDone,
    TasksPlaced,
    Trace,
)
from runtime.core.pg_scheduler import PlacementGroupScheduling
from runtime.core.policies import NodeView, PlacementPolicy, make_policy
from runtime.core.resources import Resources, ShapeKey, describe, fits, shape_key
from runtime.core.rng import Rng
from runtime.core.task import ERR_UNSCHEDULABLE, TaskSpec


class GlobalScheduler(Component):
    """Places spilled tasks on feasible nodes using a pluggable policy.

    Feasibility (which nodes could ever run a resource shape) is cached per shape and
    recomputed only when the node table changes, so a placement costs O(1) for the
    sampling policies whatever the cluster size.
    """

    def __init__(
        self,
        addr: Address,
        gcs_addr: Address,
        rng: Rng,
        config: CoreConfig | None = None,
        policy: PlacementPolicy | None = None,
    ) -> None:
        self.addr = addr
        self.gcs_addr = gcs_addr
        self.rng = rng
        self.config = config or CoreConfig()
        self.policy = policy or make_policy(self.config)
        self.views: dict[NodeId, NodeView] = {}
        """What this scheduler believes of each live node (updated by reports and its own sends)."""
        self.placed = 0
        """Tasks placed so far (a counter for metrics)."""
        self.parked: list[TaskSpec] = []
        """Tasks spilled before any node registered; placed when one does."""
        self._feasible: dict[ShapeKey, list[NodeView]] = {}
        """Per resource shape: the nodes whose totals can ever hold it (cleared when nodes change)."""
        self.creations: dict[int, tuple[NodeId, int]] = {}
        """Actor creations sent to a node: actor id -> (node, attempt), the last one each
        (`_on_check_actor`: a node that died as the creation was sent to it)."""
        self.unreported: dict[NodeId, dict[Address, list[tuple[int, int]]]] = {}
        """Per node, per owner: ``(task_id, attempt)`` placed there, not yet told to the owner."""
        self._unreported_count: dict[NodeId, int] = {}
        self.pg = PlacementGroupScheduling(self)
        """Placement groups, SPREAD and node affinity: the part that places by strategy."""
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            CheckActorPlacement: self._on_check_actor,
            NodeAdded: self._on_node_added,
            ResourceReport: self._on_report,
            SpillTask: self._on_spill,
            CancelTask: self._on_cancel,
            NodeRemoved: self._on_node_removed,
            SchedulePlacementGroup: self.pg._on_schedule_pg,
            BundlesPrepared: self.pg._on_bundles_prepared,
            CancelPlacementGroup: self.pg._on_cancel_pg,
        }

    def start(self, now: float, out: list[Command]) -> None:
        """Subscribe to the GCS node table."""
        out.append(Send(self.gcs_addr, Subscribe(self.addr), 64))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """React to one message, appending commands to ``out``."""
        self._handlers[type(msg)](msg, now, out)

    def feasible(self, spec: TaskSpec) -> list[NodeView]:
        """The nodes whose total resources can ever satisfy ``spec`` (cached per shape)."""
        key = spec.shape
        if key is None:
            key = spec.shape = shape_key(spec.resources)
        nodes = self._feasible.get(key)
        if nodes is None:
            nodes = [v for _, v in sorted(self.views.items()) if fits(spec.resources, v.total)]
            self._feasible[key] = nodes
        return nodes

    # -- invariants (tests and debug runs only: never called on the hot path) ------------

    def check(self) -> None:
        """Verify the scheduler's node views and group tables agree (``InvariantError`` if not).

        Each view is filed under its node; the feasibility cache holds only current views;
        tasks are parked only while no node is known; every pending or infeasible group is
        a known group, in one of the two at most, and no removed group is still placed.
        """
        for node, view in self.views.items():
            if view.node != node:
                self._broken(f"views[{node}] describes node {view.node}")
        known = {id(v) for v in self.views.values()}
        for key, nodes in self._feasible.items():
            if any(id(v) not in known for v in nodes):
                self._broken(f"the feasibility cache for {key} holds a node no longer viewed")
        if self.parked and self.views:
            self._broken(f"{len(self.parked)} task(s) parked although nodes are known")
        for table in (self.pg.pending_groups, self.pg.infeasible_groups):
            for pg_id, group in table.items():
                if self.pg.groups.get(pg_id) is not group:
                    self._broken(f"group {pg_id:x} waits but is not in the group table")
        both = self.pg.pending_groups.keys() & self.pg.infeasible_groups.keys()
        if both:
            self._broken(f"groups both pending and infeasible: {sorted(both)}")
        removed = self.pg.removed_groups & self.pg.groups.keys()
        if removed:
            self._broken(f"removed groups still in the group table: {sorted(removed)}")
        for pg_id, group in self.pg.groups.items():
            if any(not 0 <= i < len(group.bundles) for i in group.placed):
                self._broken(f"group {pg_id:x} places a bundle index out of range")

    def _broken(self, what: str) -> NoReturn:
        raise InvariantError(f"global scheduler {self.addr}: {what}")

    def _on_node_added(self, msg: NodeAdded, now: float, out: list[Command]) -> None:
        self.views[msg.node] = NodeView(
            msg.node, msg.addr, dict(msg.resources), dict(msg.resources)
        )
        self._feasible.clear()
        parked, self.parked = self.parked, []
        for spec in parked:
            self._place(spec, now, out)
        if self.pg.pending_groups or self.pg.infeasible_groups:
            self.pg._groups_on_node_added(now, out)

    def _on_node_removed(self, msg: NodeRemoved, now: float, out: list[Command]) -> None:
        self._report_placements(msg.node, out)  # their owners retry what was lost there
        if self.views.pop(msg.node, None) is not None:
            self._feasible.clear()
            if self.pg.groups:
                self.pg._groups_on_node_removed(msg.node, now, out)

    def _on_check_actor(self, msg: CheckActorPlacement, now: float, out: list[Command]) -> None:
        """The GCS asks whether an actor's creation attempt went to a node now dead."""
        if self.creations.get(msg.actor_id) == (msg.node, msg.attempt):
            reason = f"the node {msg.node} the actor was being started on died"
            died = ActorDied(msg.actor_id, msg.node, reason, attempt=msg.attempt)
            out.append(Send(self.gcs_addr, died, 128))

    def _on_report(self, msg: ResourceReport, now: float, out: list[Command]) -> None:
        view = self.views.get(msg.node)
        if view is not None:
            view.available = msg.available
            view.queued = msg.queued
            view.running = msg.running
            view.assigned = 0
            if view.spread_pending:
                view.spread_pending = {}
        if self.pg.pending_groups:
            self.pg._groups_on_report(now, out)

    def _on_cancel(self, msg: CancelTask, now: float, out: list[Command]) -> None:
        view = self.views.get(msg.node)
        if view is not None:
            out.append(Send(view.addr, msg, 64))

    def _on_spill(self, msg: SpillTask, now: float, out: list[Command]) -> None:
        if msg.queued >= 0:
            view = self.views.get(msg.from_node)
            if view is not None:
                view.queued, view.running, view.assigned = msg.queued, msg.running, 0
        self._place(msg.spec, now, out)

    def _place(self, spec: TaskSpec, now: float, out: list[Command]) -> None:
        if not self.views:
            self.parked.append(spec)
            return
        if spec.strategy is not None and self.pg._place_strategic(spec, now, out):
            return
        candidates = self.feasible(spec)
        if not candidates:
            detail = (
                f"task {spec.name or spec.task_id} requests {describe(spec.resources)} but no "
                f"node of the {len(self.views)} in the cluster has that much "
                f"(largest node: {describe(self._largest())})"
            )
            out.append(
                Send(spec.owner, TaskDone(spec.task_id, -1, [], ERR_UNSCHEDULABLE, detail), 256)
            )
            return
        view, reason = self.policy.choose(candidates, spec, self.rng)
        view.assigned += 1
        spec.node = view.node
        spec.spills += 1
        spec.reason = reason
        self.placed += 1
        if spec.kind:  # an actor's creation (calls never come here)
            self.creations[spec.actor_id] = (view.node, spec.attempt)
        if self.config.trace:
            out.append(
                Trace("place", spec.task_id, view.node, f"{reason} (load {view.load():.3g})")
            )
        self._note_placed(spec, view.node, out)
        out.append(Send(view.addr, ScheduleTask(spec), spec.nbytes))

    def _note_placed(self, spec: TaskSpec, node: NodeId, out: list[Command]) -> None:
        """Remember for its owner that this attempt of ``spec`` went to ``node`` (batched).

        The owner may be in another process (a worker node's task's subtasks): the spec it
        holds does not show this placement, so it learns it from a `TasksPlaced`, sent when
        the node's batch is full or at once when the node dies (no message per task).
        """
        by_owner = self.unreported.get(node)
        if by_owner is None:
            by_owner = self.unreported[node] = {}
            self._unreported_count[node] = 0
        placed = by_owner.get(spec.owner)
        if placed is None:
            placed = by_owner[spec.owner] = []
        placed.append((spec.task_id, spec.attempt))
        count = self._unreported_count[node] + 1
        self._unreported_count[node] = count
        if count >= self.config.placement_batch:
            self._report_placements(node, out)

    def _report_placements(self, node: NodeId, out: list[Command]) -> None:
        """Tell each owner which of its tasks were placed on ``node`` since the last batch."""
        by_owner = self.unreported.pop(node, None)
        self._unreported_count.pop(node, None)
        for owner in sorted(by_owner or ()):
            tasks = by_owner[owner]  # type: ignore[index]
            out.append(Send(owner, TasksPlaced(node, tasks), 32 + 16 * len(tasks)))

    def _largest(self) -> dict[str, float]:
        largest: dict[str, float] = {}
        for view in self.views.values():
            for name, amount in view.total.items():
                largest[name] = max(largest.get(name, 0.0), amount)
        return largest

    def node_count(self) -> int:
        """How many nodes have registered with the global scheduler (its views)."""
        return len(self.views)

    def node_available(self, node: NodeId) -> Resources | None:
        """What this scheduler believes is free on ``node`` now (a copy; None: not alive)."""
        view = self.views.get(node)
        return None if view is None else dict(view.available)
