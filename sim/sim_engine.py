"""The simulator as an engine for workload programs (`sim.programs`): owner calls in simulated time.

Each program runs on one driver: its owner calls are service requests at its owner (they
cost ``owner_us`` like a message) served by `Host.serve_call`; its tasks and actor calls
are `TaskSpec`s submitted through the owner; a released handle is the owner's reference
dropped. A task counts when the future of its first return value resolves (once: a
future resolving again after a lineage reconstruction is not counted twice), then the
program reacts.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any, Final

from runtime.core.ids import RETURN_BITS, ObjectId
from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from runtime.core.resources import shape_key
from runtime.core.task import CheckpointPlan, TaskSpec
from sim.drivers import actor_call_spec, create_actor
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.programs import OwnerCall, Program
from sim.workloads import Completion, _DriverBase

_MISSING: Final[Any] = object()
"""No tag: not a first return (``Final``: a C static when compiled)."""


class SimEngine(_DriverBase):
    """Runs one driver's `Program` on its owner in the simulated cluster."""

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: Any,
        rng: random.Random,
        program: Program,
    ) -> None:
        """The engine of `program` (built from `spec` and the driver's stream `rng`)."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self.program = program
        self._tags: dict[ObjectId, Any] = {}
        """First return of each task not yet counted -> the program's tag for it."""
        self._owner_addr = owner.addr
        try:  # interpreted: bind the hot path's calls once (instance attributes shadow
            # the methods below; never read ``__dict__``, which would slow every attribute)
            setattr(self, "owner_call", partial(host.serve_call, owner.addr))  # noqa: B010
            setattr(self, "release", owner.remove_ref)  # noqa: B010
        except AttributeError:  # compiled: a native instance has no __dict__; the methods stay
            pass

    @property
    def times(self) -> Any:
        """The program's iteration times (training loops; None otherwise)."""
        return self.program.times

    def start(self) -> None:
        """Start the program (its first owner calls)."""
        self.program.start(self)

    def owner_call(self, fn: OwnerCall, at: float | None = None) -> None:
        """Serve `fn(now, out)` at the owner as a call arriving at `at` (default now)."""
        self.host.serve_call(self._owner_addr, fn, at)

    def submit(
        self,
        tag: Any,
        function: str,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float,
        out: Any,
        resources: dict[str, float] | None = None,
        name: str = "",
    ) -> tuple[ObjectId, ...]:
        """Submit a task through the owner; its return object ids."""
        owner = self.owner
        if resources is None:
            res, shape = self.resources, self.shape
        else:
            res, shape = resources, shape_key(resources)
        task_id = owner.new_task_id()
        self._tags[(task_id << RETURN_BITS) | 1] = tag  # before submit: a failed argument
        spec = TaskSpec(  # resolves the task's returns during it
            task_id=task_id,
            owner=owner.addr,
            owner_node=owner.node,
            function=function,
            name=name,
            resources=res,
            duration=duration_s,
            num_returns=len(sizes),
            output_sizes=sizes,
            arg_refs=args,
            shape=shape,
            strategy=self._strategy() if self._strategies else None,
        )
        return owner.submit(spec, now, out)

    def release(self, handle: Any, now: float, out: Any) -> None:
        """Drop the owner's reference to `handle`."""
        self.owner.remove_ref(handle, now, out)

    def create_actor(
        self,
        name: str,
        resources: dict[str, float],
        now: float,
        out: Any,
        max_concurrency: int = 1,
        max_restarts: int = 0,
        checkpoint: CheckpointPlan | None = None,
    ) -> int:
        """Create an anonymous actor owned by the driver's owner; its id."""
        return create_actor(
            self.owner, name, resources, self._strategy(), now, out,
            max_concurrency, max_restarts, checkpoint,
        )  # fmt: skip

    def call(
        self,
        tag: Any,
        actor: Any,
        name: str,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float,
        out: Any,
        max_retries: int = 0,
    ) -> tuple[ObjectId, ...]:
        """Submit a call of the actor through the owner; its return object ids."""
        owner = self.owner
        spec = actor_call_spec(owner, actor, name, duration_s, sizes, args, max_retries)
        self._tags[spec.return_ids()[0]] = tag
        return owner.submit(spec, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        tag = self._tags.pop(cmd.oid, _MISSING)
        if tag is _MISSING:
            return  # not a first return, or resolved again after a reconstruction
        ok = cmd.error_kind is None
        if ok:
            self.metrics.task_done(at - cmd.submitted_at, at)
        else:
            self.metrics.task_failed(at)
        self.completion.task_ended(at)
        self.program.done(tag, cmd.oid, ok, at)
