"""The raylet's placement-group half: prepare, commit and return bundles, and admit strategy tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.core.messages import (
    ActorDied,
    BundlesPrepared,
    CancelRunning,
    CommitBundles,
    KillWorker,
    PrepareBundles,
    ReturnBundles,
    Send,
    TaskDone,
)
from runtime.core.placement import (
    AvoidNodes,
    NodeAffinity,
    PlacementGroupStrategy,
    Spread,
    bundle_grant,
    describe_strategy,
)
from runtime.core.resources import Resources, acquire, describe, fits, release
from runtime.core.task import ACTOR_CREATION, ACTOR_METHOD, ERR_PG_REMOVED, TASK, TaskSpec

if TYPE_CHECKING:
    from runtime.core.raylet import Raylet


@dataclass(slots=True)
class LocalBundles:
    """A placement group's bundles on this node: prepared (per attempt) and committed."""

    prepared: dict[int, list[tuple[int, Resources]]] = field(default_factory=dict)
    """Attempt -> (index, bundle) set aside and not committed yet."""
    committed: dict[int, Resources] = field(default_factory=dict)
    """Index -> bundle: its resources are granted under the group's names."""


def _in_group(spec: TaskSpec, pg_id: int) -> bool:
    strategy = spec.strategy
    return isinstance(strategy, PlacementGroupStrategy) and strategy.pg_id == pg_id


class RayletBundles:
    """The placement-group part of a ``Raylet`` (its ``pg``): bundles as resources, in Ray's names.

    Preparing a bundle takes its resources out of ``available``; committing it adds
    ``<name>_group_<i>_<pg>`` and ``<name>_group_<pg>`` (plus ``bundle_group_*``) to the
    node's totals and availability, so a task of the group, whose request the owner
    renamed the same way, is accounted by the ordinary fits/acquire/release arithmetic.
    Returning a committed bundle first fails what runs in it.
    """

    def __init__(self, raylet: Raylet) -> None:
        self.raylet = raylet
        """The raylet this part belongs to (its resources, queues and helpers)."""
        self.bundles: dict[int, LocalBundles] = {}

    def _on_prepare_bundles(self, msg: PrepareBundles, now: float, out: list[Any]) -> None:
        need: Resources = {}
        for _, bundle in msg.bundles:
            for k, v in bundle.items():
                need[k] = need.get(k, 0.0) + v
        if not fits(need, self.raylet.available):
            reason = f"needs {describe(need)}, has {describe(self.raylet.available)} free"
            refuse = BundlesPrepared(msg.pg_id, msg.attempt, self.raylet.node, False, reason)
            out.append(Send(self.raylet.gs_addr, refuse, 128))
            return
        acquire(self.raylet.available, need)
        local = self.bundles.setdefault(msg.pg_id, LocalBundles())
        local.prepared[msg.attempt] = list(msg.bundles)
        out.append(
            Send(
                self.raylet.gs_addr,
                BundlesPrepared(msg.pg_id, msg.attempt, self.raylet.node, True),
                64,
            )
        )

    def _on_commit_bundles(self, msg: CommitBundles, now: float, out: list[Any]) -> None:
        local = self.bundles.get(msg.pg_id)
        items = local.prepared.pop(msg.attempt, None) if local is not None else None
        if local is None or items is None:
            return
        for index, bundle in items:
            local.committed[index] = bundle
            grant = bundle_grant(bundle, msg.pg_id, index)
            release(self.raylet.total, grant)
            release(self.raylet.available, grant)
        self.raylet._feasible.clear()

    def _on_return_bundles(self, msg: ReturnBundles, now: float, out: list[Any]) -> None:
        local = self.bundles.get(msg.pg_id)
        if local is None:
            return
        if msg.attempt >= 0:
            items = local.prepared.pop(msg.attempt, [])
            committed: list[tuple[int, Resources]] = []
        else:
            items = [it for attempt in sorted(local.prepared) for it in local.prepared[attempt]]
            local.prepared.clear()
            committed = sorted(local.committed.items())
            local.committed.clear()
        if committed:
            self._evict_group(msg.pg_id, msg.reason, now, out)
            for index, bundle in committed:
                grant = bundle_grant(bundle, msg.pg_id, index)
                for name, amount in grant.items():
                    left = self.raylet.total.get(name, 0.0) - amount
                    if left > 1e-9:
                        self.raylet.total[name] = left
                        self.raylet.available[name] = self.raylet.available.get(name, 0.0) - amount
                    else:
                        self.raylet.total.pop(name, None)
                        self.raylet.available.pop(name, None)
            self.raylet._feasible.clear()
        for _, bundle in items + committed:
            release(self.raylet.available, bundle)
        if not local.prepared and not local.committed:
            del self.bundles[msg.pg_id]
        if self.raylet.queued:
            self.raylet._dispatch_queued(now, out)

    def _evict_group(self, pg_id: int, reason: str, now: float, out: list[Any]) -> None:
        """Fail everything of ``pg_id`` on this node (its bundles are going away)."""
        error = f"{reason}: the task's bundle on node {self.raylet.node} was returned"
        for queue in self.raylet.queues.values():
            doomed = [s for s in queue if _in_group(s, pg_id)]
            for spec in doomed:
                queue.remove(spec)
                self.raylet.queued -= 1
                self._drop_task(spec, error, out)
        for tid, (spec, missing) in list(self.raylet.waiting.items()):
            if _in_group(spec, pg_id) and spec.kind != ACTOR_METHOD:  # calls: their actor's
                del self.raylet.waiting[tid]
                for dep in spec.deps:
                    if dep.oid not in missing:
                        self.raylet.store.unpin(dep.oid)
                self.raylet._leave(spec)
                out.append(
                    Send(spec.owner, TaskDone(tid, self.raylet.node, [], ERR_PG_REMOVED, error))
                )
        for actor_id, actor in list(self.raylet.actors.items()):
            if _in_group(actor.spec, pg_id):
                out.append(KillWorker(self.raylet.node, actor_id))
                self.raylet._actor_gone(actor_id, reason, True, now, out)
        for tid, spec in list(self.raylet.running.items()):
            if not _in_group(spec, pg_id):
                continue
            del self.raylet.running[tid]
            self.raylet._leave(spec)
            if tid in self.raylet.blocked:
                self.raylet.blocked.discard(tid)
            else:
                release(self.raylet.available, spec.resources)
            if spec.kind == ACTOR_CREATION:
                out.append(KillWorker(self.raylet.node, spec.actor_id))
                died = ActorDied(spec.actor_id, self.raylet.node, reason, True)
                out.append(Send(self.raylet.gcs_addr, died))
            else:
                out.append(CancelRunning(self.raylet.node, tid, spec.kind == TASK))
            for dep in spec.deps:
                self.raylet.store.unpin(dep.oid)
            out.append(Send(spec.owner, TaskDone(tid, self.raylet.node, [], ERR_PG_REMOVED, error)))
        for tid, spec in list(self.raylet.ahead.items()):
            if _in_group(spec, pg_id):  # prefetched: the host takes it back (a late report
                self.raylet._ahead_cancelled.add(tid)  # is ignored)
                if spec.rstate == "ahead":
                    self.raylet._move(spec, "ahead_cancelled")
                out.append(CancelRunning(self.raylet.node, tid, False))
                out.append(
                    Send(spec.owner, TaskDone(tid, self.raylet.node, [], ERR_PG_REMOVED, error))
                )

    def _drop_task(self, spec: TaskSpec, error: str, out: list[Any]) -> None:
        for dep in spec.deps:
            self.raylet.store.unpin(dep.oid)
        self.raylet._leave(spec)
        out.append(
            Send(spec.owner, TaskDone(spec.task_id, self.raylet.node, [], ERR_PG_REMOVED, error))
        )

    def _submit_with_strategy(self, spec: TaskSpec, now: float, out: list[Any]) -> bool:
        """Admit or spill a task that has a strategy; False: decide as for any task."""
        strategy = spec.strategy
        if isinstance(strategy, PlacementGroupStrategy):
            if fits(spec.resources, self.raylet.total):
                return False  # it holds the bundle: run or spill as the policy says
            self.raylet._spill(spec, "spill: " + describe_strategy(strategy), out)
            return True
        if isinstance(strategy, NodeAffinity):
            if strategy.node == self.raylet.node and fits(spec.resources, self.raylet.total):
                spec.reason = "local: node affinity"
                self.raylet._admit(spec, now, out)
                return True
            if strategy.soft and not self.raylet.peers:
                return False  # nowhere else to go: the default decision runs it here
            self.raylet._spill(spec, "spill: " + describe_strategy(strategy), out)
            return True
        if isinstance(strategy, Spread) and self.raylet.peers:
            self.raylet._spill(spec, "spill: SPREAD is decided by the global scheduler", out)
            return True
        if isinstance(strategy, AvoidNodes) and self.raylet.node in strategy.nodes:
            self.raylet._spill(spec, "spill: " + describe_strategy(strategy), out)
            return True
        return False
