"""`Introspection` driven directly over a control plane, no node: the queue is run inline."""

from __future__ import annotations

import json
import random
from collections import deque
from typing import Any

import pytest

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.task import ACTOR_METHOD, TaskSpec
from runtime.exceptions import RayError
from runtime.object_ref import ObjectRef
from runtime.real.introspect import Introspection
from runtime.real.pool import WorkerHandle


class StandIns:
    """What the part reads of the other parts: spans, nested owners, actor workers, replies."""

    def __init__(self) -> None:
        self.spans: list[tuple] = []
        self.owner_workers: dict[int, Any] = {}
        self.workers: dict[int, Any] = {}
        self.replies: list[tuple] = []
        self.capacity = 1 << 20

    def reply(self, w: Any, req_id: int, ok: bool, value: Any) -> None:
        self.replies.append((req_id, ok, value))


class World:
    """A control plane, its command list, and an operation queue run when woken."""

    def __init__(self) -> None:
        self.plane = build_control_plane(
            CoreConfig(), random.Random(0), [NodeCapacity({"CPU": 4.0, "GPU": 1.0}, 1 << 20)], 1
        )
        self.ops: deque = deque()
        self.out: list[Any] = []
        self.executed = 0
        self.stop = False
        self.opened = True
        self.stand = StandIns()
        self.part = Introspection(
            ops=self.ops, wake=self.run_ops, check_open=self.check_open,
            stopped=lambda: self.stop, plane=self.plane, out=self.out, execute=self.execute,
            arena=self.stand, pool=self.stand, nested=self.stand, actor_workers=self.stand,
            actor_tokens={}, t0=100.0,
        )  # fmt: skip

    def check_open(self) -> None:
        if not self.opened:
            raise RayError("closed")

    def execute(self, now: float) -> None:
        self.executed += 1
        self.out.clear()

    def run_ops(self) -> None:
        if self.stop:
            return  # a stopped loop never answers
        while self.ops:
            op, item = self.ops.popleft()
            op(item, 1.0)


@pytest.fixture
def world() -> World:
    return World()


def test_runtime_info_and_namespace(world: World) -> None:
    world.part.job_namespace = "ns"
    info = world.part.runtime_info()
    assert info["namespace"] == "ns" and info["store"] == 1 << 20
    assert info["total"] == {"CPU": 4.0, "GPU": 1.0} and info["available"]["CPU"] == 4.0
    with pytest.raises(AssertionError, match="only available in a task or an actor"):
        world.part.assigned_resources()


def test_inspect_flushes_then_reads_one_view(world: World) -> None:
    view = world.part.inspect(lambda v: v)
    assert view.gcs is world.plane.gcs and world.executed == 1
    with pytest.raises(ZeroDivisionError):  # the read's error reaches the caller
        world.part.inspect(lambda v: 1 / 0)
    world.stop = True
    with pytest.raises(RayError, match="stopped before the state could be read"):
        world.part.inspect(lambda v: v)


def test_cancel_checks_its_argument_and_reports_core_errors(world: World) -> None:
    with pytest.raises(TypeError, match="expects an ObjectRef"):
        world.part.cancel("task-1", False)  # type: ignore[arg-type]
    world.part.cancel(ObjectRef(99 << 8, None), False)  # unknown: nothing to cancel
    owner = world.plane.owners[0]
    tid = owner.new_task_id()
    spec = TaskSpec(tid, 0, 0, function="f", args=((), {}), kind=ACTOR_METHOD, actor_id=7)
    owner.pending[tid] = spec
    with pytest.raises(ValueError, match="force=True is not supported"):
        world.part.cancel(ObjectRef(tid << 8, None), True)
    world.opened = False
    with pytest.raises(RayError, match="closed"):
        world.part.cancel(ObjectRef(tid << 8, None), False)


def test_assigned_resources_of_a_workers_task(world: World) -> None:
    w = WorkerHandle(1, 0, None)  # type: ignore[arg-type]  # never written to
    w.spec = TaskSpec(1 << 8, 0, 0, resources={"CPU": 2.0, "GPU": 0.0})
    world.part.req_assigned(w, 3, None, 0.0)
    assert world.stand.replies == [(3, True, {"CPU": 2.0})]


def test_timeline_is_relative_to_the_loop_clock(world: World, tmp_path) -> None:
    world.stand.spans.append(("f", 0, 1, 4242, 101.0, 101.5, "ok"))
    path = tmp_path / "trace.json"
    (event,) = world.part.timeline(str(path))
    assert event["ts"] == 1e6 and event["dur"] == 0.5e6 and event["tid"] == 4242
    assert json.loads(path.read_text())["traceEvents"] == [event]
