"""`PlacementGroups` (the loop-thread side) driven directly over a control plane, no node."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.placement import PlacementGroupRecord, PlacementGroupStrategy
from runtime.core.task import TaskSpec
from runtime.real import requests as rq
from runtime.real.groups import PlacementGroups
from runtime.real.pool import WorkerHandle


class StandInNested:
    """What the part uses of the nested owners: the request table and replies."""

    def __init__(self) -> None:
        self.request_ops: dict[str, Any] = {}
        self.replies: list[tuple] = []

    def reply(self, w: Any, req_id: int, ok: bool, value: Any) -> None:
        self.replies.append((req_id, ok, value))


@pytest.fixture
def groups():
    plane = build_control_plane(
        CoreConfig(), random.Random(0), [NodeCapacity({"CPU": 4.0}, 1 << 20)], 1
    )
    part = PlacementGroups(plane.gcs, plane.raylets[0], [], lambda now: None)
    table = plane.gcs.placement_groups
    table[5] = PlacementGroupRecord(5, "five", [{"CPU": 1.0}], "PACK", None, 0)
    table[6] = PlacementGroupRecord(6, "", [{"CPU": 2.0}, {"CPU": 1.0}], "SPREAD", None, 0)
    plane.gcs.placement_group_names["five"] = 5
    return part


def test_rows_by_id_by_name_or_all(groups) -> None:
    assert [r["pg_id"] for r in groups.rows(None, None)] == [5, 6]
    assert [r["pg_id"] for r in groups.rows(6, None)] == [6]
    assert [r["pg_id"] for r in groups.rows(None, "five")] == [5]
    assert groups.rows(99, None) == [] and groups.rows(None, "nope") == []
    row = groups.rows(6, None)[0]
    row["bundles"][0]["CPU"] = 0.0  # a snapshot: the GCS row is not changed
    assert groups.gcs.placement_groups[6].bundles[0]["CPU"] == 2.0


def test_the_group_of_a_workers_task(groups) -> None:
    w = WorkerHandle(1, 0, None)  # type: ignore[arg-type]  # never written to
    assert groups.worker_group(w) is None  # idle
    w.spec = TaskSpec(1 << 8, 0, 0, strategy=PlacementGroupStrategy(6, 0, True))
    assert groups.worker_group(w) == (6, [{"CPU": 2.0}, {"CPU": 1.0}], True)
    w.spec = TaskSpec(2 << 8, 0, 0)
    assert groups.worker_group(w) is None  # no group


def test_serve_answers_the_placement_group_ops(groups) -> None:
    nested = StandInNested()
    groups.serve(nested)
    assert set(nested.request_ops) == {
        rq.PG_CREATE,
        rq.PG_REMOVE,
        rq.PG_READY,
        rq.PG_ROWS,
        rq.PG_CURRENT,
    }
    w = WorkerHandle(1, 0, None)  # type: ignore[arg-type]
    nested.request_ops[rq.PG_ROWS](w, 3, (5, None), 0.0)
    nested.request_ops[rq.PG_CURRENT](w, 4, None, 0.0)
    assert [(r[0], r[1]) for r in nested.replies] == [(3, True), (4, True)]
    assert nested.replies[0][2][0]["name"] == "five" and nested.replies[1][2] is None


def test_the_program_thread_api_queues_core_calls() -> None:
    import threading
    from collections import deque

    from runtime.real.arena import Arena
    from runtime.real.groups import PlacementGroupApi
    from runtime.real.objects import ObjectTable
    from runtime.real.spill import SpillFile

    plane = build_control_plane(
        CoreConfig(), random.Random(0), [NodeCapacity({"CPU": 4.0}, 1 << 20)], 1
    )
    out: list[Any] = []
    ops: deque = deque()
    executed: list[float] = []

    def run_ops() -> None:
        while ops:
            op, item = ops.popleft()
            op(item, 2.0)

    def execute(now: float) -> None:
        executed.append(now)
        out.clear()

    arena = Arena(1 << 20, prefault_bytes=0)
    try:
        objects = ObjectTable(arena, SpillFile(None))
        groups = PlacementGroups(plane.gcs, plane.raylets[0], out, execute)
        api = PlacementGroupApi(
            node=None, ops=ops, kick=run_ops, wake=run_ops, check_open=lambda: None,
            ids_lock=threading.Lock(), owner=plane.owners[0], objects=objects, out=out,
            execute=execute, groups=groups,
        )  # fmt: skip
        pg_id = api.create_placement_group([{"CPU": 1.0}], "PACK", "g", None)
        assert out, "the create went to the owner, its commands queued"
        assert api.placement_group_rows(pg_id, None) == [] and executed == [2.0]
        ref = api.placement_group_ready(pg_id, b"handle")
        assert ref._oid in objects.entries
        api.remove_placement_group(pg_id)
        assert out  # the removal went to the owner too
    finally:
        arena.close()
