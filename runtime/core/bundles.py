"""The raylet's placement-group half: prepare, commit and return bundles, and admit strategy tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    """Mixin of ``Raylet``: bundles as resources, in Ray's names.

    Preparing a bundle takes its resources out of ``available``; committing it adds
    ``<name>_group_<i>_<pg>`` and ``<name>_group_<pg>`` (plus ``bundle_group_*``) to the
    node's totals and availability, so a task of the group, whose request the owner
    renamed the same way, is accounted by the ordinary fits/acquire/release arithmetic.
    Returning a committed bundle first fails what runs in it.
    """

    node: int
    gcs_addr: int
    gs_addr: int
    total: Resources
    available: Resources
    peers: set[int]

    def _init_bundles(self) -> None:
        self.bundles: dict[int, LocalBundles] = {}

    def _on_prepare_bundles(self, msg: PrepareBundles, now: float, out: list[Any]) -> None:
        need: Resources = {}
        for _, bundle in msg.bundles:
            for k, v in bundle.items():
                need[k] = need.get(k, 0.0) + v
        if not fits(need, self.available):
            reason = f"needs {describe(need)}, has {describe(self.available)} free"
            refuse = BundlesPrepared(msg.pg_id, msg.attempt, self.node, False, reason)
            out.append(Send(self.gs_addr, refuse, 128))
            return
        acquire(self.available, need)
        local = self.bundles.setdefault(msg.pg_id, LocalBundles())
        local.prepared[msg.attempt] = list(msg.bundles)
        out.append(Send(self.gs_addr, BundlesPrepared(msg.pg_id, msg.attempt, self.node, True), 64))

    def _on_commit_bundles(self, msg: CommitBundles, now: float, out: list[Any]) -> None:
        local = self.bundles.get(msg.pg_id)
        items = local.prepared.pop(msg.attempt, None) if local is not None else None
        if local is None or items is None:
            return
        for index, bundle in items:
            local.committed[index] = bundle
            grant = bundle_grant(bundle, msg.pg_id, index)
            release(self.total, grant)
            release(self.available, grant)
        self._feasible.clear()  # type: ignore[attr-defined]

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
                    left = self.total.get(name, 0.0) - amount
                    if left > 1e-9:
                        self.total[name] = left
                        self.available[name] = self.available.get(name, 0.0) - amount
                    else:
                        self.total.pop(name, None)
                        self.available.pop(name, None)
            self._feasible.clear()  # type: ignore[attr-defined]
        for _, bundle in items + committed:
            release(self.available, bundle)
        if not local.prepared and not local.committed:
            del self.bundles[msg.pg_id]
        if self.queued:  # type: ignore[attr-defined]
            self._dispatch_queued(now, out)  # type: ignore[attr-defined]

    def _evict_group(self, pg_id: int, reason: str, now: float, out: list[Any]) -> None:
        """Fail everything of ``pg_id`` on this node (its bundles are going away)."""
        error = f"{reason}: the task's bundle on node {self.node} was returned"
        for queue in self.queues.values():  # type: ignore[attr-defined]
            doomed = [s for s in queue if _in_group(s, pg_id)]
            for spec in doomed:
                queue.remove(spec)
                self.queued -= 1  # type: ignore[attr-defined]
                self._drop_task(spec, error, out)
        for tid, (spec, missing) in list(self.waiting.items()):  # type: ignore[attr-defined]
            if _in_group(spec, pg_id) and spec.kind != ACTOR_METHOD:  # calls: their actor's
                del self.waiting[tid]  # type: ignore[attr-defined]
                for dep in spec.deps:
                    if dep.oid not in missing:
                        self.store.unpin(dep.oid)  # type: ignore[attr-defined]
                self._leave(spec)  # type: ignore[attr-defined]
                out.append(Send(spec.owner, TaskDone(tid, self.node, [], ERR_PG_REMOVED, error)))
        for actor_id, actor in list(self.actors.items()):  # type: ignore[attr-defined]
            if _in_group(actor.spec, pg_id):
                out.append(KillWorker(self.node, actor_id))
                self._actor_gone(actor_id, reason, True, now, out)  # type: ignore[attr-defined]
        for tid, spec in list(self.running.items()):  # type: ignore[attr-defined]
            if not _in_group(spec, pg_id):
                continue
            del self.running[tid]  # type: ignore[attr-defined]
            self._leave(spec)  # type: ignore[attr-defined]
            if tid in self.blocked:  # type: ignore[attr-defined]
                self.blocked.discard(tid)  # type: ignore[attr-defined]
            else:
                release(self.available, spec.resources)
            if spec.kind == ACTOR_CREATION:
                out.append(KillWorker(self.node, spec.actor_id))
                died = ActorDied(spec.actor_id, self.node, reason, True)
                out.append(Send(self.gcs_addr, died))
            else:
                out.append(CancelRunning(self.node, tid, spec.kind == TASK))
            for dep in spec.deps:
                self.store.unpin(dep.oid)  # type: ignore[attr-defined]
            out.append(Send(spec.owner, TaskDone(tid, self.node, [], ERR_PG_REMOVED, error)))
        for tid, spec in list(self.ahead.items()):  # type: ignore[attr-defined]
            if _in_group(spec, pg_id):  # prefetched: the host takes it back (a late report
                self._ahead_cancelled.add(tid)  # type: ignore[attr-defined]  # is ignored)
                if spec.rstate == "ahead":
                    self._move(spec, "ahead_cancelled")  # type: ignore[attr-defined]
                out.append(CancelRunning(self.node, tid, False))
                out.append(Send(spec.owner, TaskDone(tid, self.node, [], ERR_PG_REMOVED, error)))

    def _drop_task(self, spec: TaskSpec, error: str, out: list[Any]) -> None:
        for dep in spec.deps:
            self.store.unpin(dep.oid)  # type: ignore[attr-defined]
        self._leave(spec)  # type: ignore[attr-defined]
        out.append(Send(spec.owner, TaskDone(spec.task_id, self.node, [], ERR_PG_REMOVED, error)))

    def _submit_with_strategy(self, spec: TaskSpec, now: float, out: list[Any]) -> bool:
        """Admit or spill a task that has a strategy; False: decide as for any task."""
        strategy = spec.strategy
        if isinstance(strategy, PlacementGroupStrategy):
            if fits(spec.resources, self.total):
                return False  # it holds the bundle: run or spill as the policy says
            self._spill(spec, "spill: " + describe_strategy(strategy), out)  # type: ignore[attr-defined]
            return True
        if isinstance(strategy, NodeAffinity):
            if strategy.node == self.node and fits(spec.resources, self.total):
                spec.reason = "local: node affinity"
                self._admit(spec, now, out)  # type: ignore[attr-defined]
                return True
            if strategy.soft and not self.peers:
                return False  # nowhere else to go: the default decision runs it here
            self._spill(spec, "spill: " + describe_strategy(strategy), out)  # type: ignore[attr-defined]
            return True
        if isinstance(strategy, Spread) and self.peers:
            self._spill(spec, "spill: SPREAD is decided by the global scheduler", out)  # type: ignore[attr-defined]
            return True
        if isinstance(strategy, AvoidNodes) and self.node in strategy.nodes:
            self._spill(spec, "spill: " + describe_strategy(strategy), out)  # type: ignore[attr-defined]
            return True
        return False
