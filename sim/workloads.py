"""The base of the simulator's drivers (owner, samplers, placement groups) and run completion.

The closed-loop workload kinds run as `sim.programs` on `sim.sim_engine.SimEngine`.

A driver reacts to its futures resolving (ObjectReady) by dropping the result and
submitting more, so memory is proportional to the tasks in flight, never to the total.
Each call a driver makes on its owner is a service request at that owner (it costs
``owner_us`` like a message). The reaction to a resolved future is served right after
the owner's handling of the TaskDone that resolved it: driver and owner share a process.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from runtime.core.ids import MAX_RETURNS, ObjectId
from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from runtime.core.placement import SPREAD, PlacementGroupStrategy
from runtime.core.resources import shape_key
from runtime.core.task import TaskSpec
from sim.distributions import Sampler, make_sampler
from sim.host import Host
from sim.metrics import MetricsRecorder


@dataclass(slots=True)
class Completion:
    """Counts finished tasks of all drivers; stops the host when all are done."""

    host: Host
    total: int
    progress: Callable[[int], None] | None = None
    progress_every: int = 1
    done: int = 0
    finished_at: float = 0.0

    def shrink(self, n: int, at: float) -> None:
        """`n` planned tasks will not run after all (a trial stopped early)."""
        self.total -= n
        self.done -= 1
        self.task_ended(at)

    def task_ended(self, at: float) -> None:
        """One task ended (success or failure) at `at`."""
        self.done += 1
        if at > self.finished_at:
            self.finished_at = at
        if self.done >= self.total:
            self.host.stopped = True
            if self.progress is not None:
                self.progress(self.done)
        elif self.progress is not None and self.done % self.progress_every == 0:
            self.progress(self.done)


@mypyc_attr(allow_interpreted_subclasses=True)
class _DriverBase:
    """What every driver has: its owner, samplers, shared resources dict and accounting."""

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: Any,
        rng: random.Random,
    ) -> None:
        self.host = host
        self.owner = owner
        self.metrics = metrics
        self.completion = completion
        self.rng = rng
        self.resources = spec.demand()  # one dict shared by all tasks
        self.shape = shape_key(self.resources)
        dist = spec.duration_ms
        if spec.gpu_duration_ms is not None and self.resources.get("GPU", 0.0) > 0:
            dist = spec.gpu_duration_ms  # GPU work has its own duration model
        self.duration_ms: Sampler = make_sampler(dist, rng)
        self.output_bytes: Sampler = make_sampler(spec.output_bytes, rng)
        self._pg_spec = spec.placement_group
        self._strategies: list[Any] = [SPREAD] if spec.scheduling_strategy == "spread" else []
        """The strategies of this driver's tasks and actors, used in turn (none: default)."""
        self._next_strategy = 0
        host.on_ready(owner.addr, self._on_ready)

    def make_groups(self) -> None:
        """Create this driver's placement groups (before ``start``: its first owner call)."""
        if self._pg_spec is not None:
            self.host.serve_call(self.owner.addr, self._create_groups)

    def _create_groups(self, now: float, out: list[Any]) -> None:
        pg, owner = self._pg_spec, self.owner
        bundles = [{k: float(v) for k, v in b.items() if v} for b in pg.bundles]
        for _ in range(pg.count):
            pg_id = owner.new_task_id()
            owner.create_placement_group(pg_id, bundles, pg.strategy, "", None, out)
            if pg.bundle == "any":
                self._strategies.append(PlacementGroupStrategy(pg_id, -1))
            else:
                self._strategies.extend(
                    PlacementGroupStrategy(pg_id, i) for i in range(len(bundles))
                )

    def _strategy(self) -> Any:
        """The strategy of the next task or actor (None: default placement)."""
        strategies = self._strategies
        if not strategies:
            return None
        i = self._next_strategy
        self._next_strategy = i + 1
        return strategies[i % len(strategies)]

    def _new_spec(self, function: str, arg_refs: tuple[ObjectId, ...] = ()) -> TaskSpec:
        """A task with freshly drawn duration and output size."""
        owner = self.owner
        return TaskSpec(
            task_id=owner.new_task_id(),
            owner=owner.addr,
            owner_node=owner.node,
            function=function,
            resources=self.resources,
            duration=self.duration_ms() * 1e-3,
            output_sizes=(int(self.output_bytes()),),
            arg_refs=arg_refs,
            shape=self.shape,
            strategy=self._strategy() if self._strategies else None,
        )

    def _record(self, cmd: ObjectReady, at: float) -> None:
        """Account for a resolved future (one per task: its first return value)."""
        if cmd.oid & MAX_RETURNS != 1:
            return
        if cmd.error_kind is None:
            self.metrics.task_done(at - cmd.submitted_at, at)
        else:
            self.metrics.task_failed(at)
        self.completion.task_ended(at)

    def _group_completed(
        self, group_of: dict[ObjectId, int], left: dict[int, int], cmd: ObjectReady, at: float
    ) -> bool:
        """Count a task of a group (graph instance, iteration) done; True when it was the last.

        ``group_of`` maps each task's first return to its group, ``left`` counts the
        group's tasks not yet done. A future resolving again after a lineage reconstruction
        is not counted twice.
        """
        if cmd.oid & MAX_RETURNS != 1:
            return False
        group = group_of.pop(cmd.oid, None)
        if group is None:
            return False  # resolved again after a lineage reconstruction: counted already
        self._record(cmd, at)
        remaining = left[group] - 1
        if remaining:
            left[group] = remaining
            return False
        del left[group]
        return True

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        raise NotImplementedError
