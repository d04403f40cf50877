"""`NestedOwners` driven directly: a worker's requests answered with its own core Owner, no node."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.addresses import WORKER_OWNER_BASE
from runtime.real.arena import Arena
from runtime.real.nested import NestedOwners
from runtime.real.objects import ObjectTable
from runtime.real.pool import WorkerHandle
from runtime.real.serialization import dumps
from runtime.real.spill import SpillFile

THRESHOLD = 1000


class StandInPool:
    """What the nested owners use of the pool: the dirty list and `block`."""

    def __init__(self) -> None:
        self.dirty: list[WorkerHandle] = []
        self.blocked: list[WorkerHandle] = []

    def block(self, w: WorkerHandle) -> None:
        self.blocked.append(w)


@pytest.fixture
def world(tmp_path):
    config = CoreConfig(inline_threshold=THRESHOLD)
    plane = build_control_plane(config, random.Random(0), [NodeCapacity({"CPU": 2.0}, 1 << 20)], 1)
    arena = Arena(1 << 20, prefault_bytes=0)
    objects = ObjectTable(arena, SpillFile(str(tmp_path)))
    out: list[Any] = []
    components = plane.components()
    nested = NestedOwners(
        plane=plane,
        components=components,
        gcs=plane.gcs,
        raylet=plane.raylets[0],
        driver_owner=plane.owners[0],
        out=out,
        execute=lambda now: out.clear(),
        pool=StandInPool(),
        objects=objects,
        arena=arena,
        inline_threshold=THRESHOLD,
        allocate=lambda nbytes, now: objects.allocate_now(nbytes),
        register_function=lambda pickled: 42,
        runtime_info=lambda: {"namespace": None},
        worker_group=lambda w: None,
        class_meta={},
        actor_tokens={},
    )
    try:
        yield nested, WorkerHandle(3, 0, None)  # type: ignore[arg-type]  # never written to
    finally:
        objects.spill.close()
        arena.close()


def _ask(nested: NestedOwners, w: WorkerHandle, req_id: int, op: str, payload: Any) -> Any:
    """Send one request; the reply's (ok, value), or None when none was sent."""
    w.outbox.clear()
    nested.on_request(w, p.request(req_id, op, payload), 0.0)
    if not w.outbox:
        return None
    ((kind, got_id, ok, value),) = w.outbox
    assert kind == p.REPLY and got_id == req_id
    return ok, value


def test_each_worker_gets_its_own_owner_on_first_use(world) -> None:
    nested, w = world
    assert _ask(nested, w, 1, rq.REGISTER, b"fn") == (True, 42)
    assert w.owner is None  # registering needs no owner
    _ask(nested, w, 2, rq.PUT, (dumps("x"), []))
    addr = WORKER_OWNER_BASE + w.worker_id
    assert w.owner is not None and w.owner.addr == addr
    assert nested.components[addr] is w.owner and nested.owner_workers[addr] is w


def test_a_small_put_is_inline_and_a_get_returns_it(world) -> None:
    nested, w = world
    data = dumps({"a": 1})
    ok, oid = _ask(nested, w, 1, rq.PUT, (data, []))
    assert ok and oid not in nested.objects.arena_objects
    assert _ask(nested, w, 2, rq.GET, [oid]) == (True, [(True, (p.VALUE_INLINE, data))])


def test_a_large_put_goes_to_the_arena_and_a_get_pins_it_until_unpin(world) -> None:
    nested, w = world
    data = dumps(b"y" * (2 * THRESHOLD))
    ok, oid = _ask(nested, w, 1, rq.PUT, (data, []))
    offset, size = nested.objects.arena_objects[oid]
    assert bytes(nested.arena.view(offset, size)) == data
    assert _ask(nested, w, 2, rq.GET, [oid]) == (True, [(True, (p.VALUE_ARENA, offset, size))])
    assert nested.objects.pins == {offset: 1}
    assert _ask(nested, w, 0, rq.UNPIN, [offset]) is None
    assert list(nested.objects.unpins) == [offset]


def test_a_get_of_a_pending_result_waits_until_unwait(world) -> None:
    nested, w = world
    submit = (7, ((), {}), (), (), {"CPU": 1.0}, 1, 0, False, "f", None, None, 0, None)
    ok, oids = _ask(nested, w, 1, rq.SUBMIT, submit)
    assert ok and len(oids) == 1
    assert _ask(nested, w, 2, rq.GET, oids) is None  # pending: no reply yet
    assert (w.worker_id, 2) in nested.worker_waits
    assert _ask(nested, w, 0, rq.UNWAIT, 2) is None
    assert not nested.worker_waits


def test_a_failing_request_is_answered_with_its_error(world) -> None:
    nested, w = world
    ok, error = _ask(nested, w, 1, rq.WAIT, "not a (oids, num_returns) pair")
    assert ok is False and isinstance(error, ValueError)


def test_a_dead_workers_references_are_dropped(world) -> None:
    nested, w = world
    _, oid = _ask(nested, w, 1, rq.PUT, (dumps("z"), []))
    assert w.owner.objects[oid].refs > 0
    nested.drop_worker_refs(w, 0.0)
    obj = w.owner.objects.get(oid)
    assert obj is None or obj.refs == 0
