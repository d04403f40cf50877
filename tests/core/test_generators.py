"""Streaming generator tasks in the core: items reach the owner as they are yielded."""

from __future__ import annotations

from typing import Any

from runtime.core.ids import generator_item_id, is_generator_item, object_id, task_of
from runtime.core.task import (
    ERR_APPLICATION,
    ERR_CANCELLED,
    ERR_WORKER_DIED,
    GEN_DYNAMIC,
    GEN_STREAMING,
    TaskSpec,
)
from tests.core.fake_host import FakeHost

BIG = 1 << 20


def _drop(host: FakeHost, tid: int, consumed: int, node: int = 0) -> None:
    out: list[Any] = []
    host.owners[node].drop_stream(tid, consumed, host.now, out)
    host._effect(out)


def test_item_ids_are_distinct_from_return_ids_and_each_other() -> None:
    tid = (3 << 40) | 17
    items = {generator_item_id(tid, i) for i in range(1000)}
    assert len(items) == 1000
    assert all(is_generator_item(oid) for oid in items)
    assert not is_generator_item(object_id(tid, 1))
    assert object_id(tid, 1) not in items
    assert all(task_of(oid) != tid for oid in items)  # never confused with the task's returns


def test_items_arrive_while_the_task_runs_and_the_stream_ends_after_them() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(duration=1.0, name="g", generator=GEN_STREAMING, output_sizes=(8,) * 4)
    tid = done >> 8
    host.run(until=0.5)
    early = [cmd.index for cmd in host.items]
    assert early == [0, 1]  # half-way through the body, half the items are there
    assert done not in host.ready and tid not in host.streams_ended
    host.run()
    assert [cmd.index for cmd in host.items] == [0, 1, 2, 3]
    assert [cmd.result.payload for cmd in host.items] == [f"item-{i}-of-g" for i in range(4)]
    end = host.streams_ended[tid]
    assert end.count == 4 and end.error_kind is None
    assert host.ready[done].error_kind is None
    owner = host.owners[0]
    assert all(generator_item_id(tid, i) in owner.objects for i in range(4))


def test_items_the_program_took_live_with_its_refs_and_the_rest_go_with_the_generator() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(BIG,) * 3)
    tid = done >> 8
    host.run()
    owner = host.owners[0]
    items = [generator_item_id(tid, i) for i in range(3)]
    assert all(owner.objects[oid].stored for oid in items)
    _drop(host, tid, consumed=1)  # the program took item 0, then dropped the generator
    host.run()
    assert items[0] in owner.objects
    assert items[1] not in owner.objects and items[2] not in owner.objects
    freed = {oid for _, oid in host.freed}
    assert {items[1], items[2]} <= freed and items[0] not in freed
    host.release(items[0])
    host.release(done)
    host.run()
    assert items[0] in {oid for _, oid in host.freed}
    assert not owner.streams
    assert not host.raylets[0].store.objects


def test_items_yielded_after_the_generator_was_dropped_are_freed_on_arrival() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(BIG,) * 4)
    tid = done >> 8
    host.run(until=0.3)
    _drop(host, tid, consumed=0)
    host.release(done)
    host.run()
    owner = host.owners[0]
    assert not any(generator_item_id(tid, i) in owner.objects for i in range(4))
    assert not owner.streams
    assert not host.raylets[0].store.objects  # every stored item was freed


def test_an_application_error_is_an_item_and_the_task_itself_succeeds() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(
        duration=1.0, function="gen_fail", generator=GEN_STREAMING, output_sizes=(8,) * 3
    )
    tid = done >> 8
    host.run()
    assert [c.error_kind for c in host.items] == [None, None, ERR_APPLICATION]
    assert host.streams_ended[tid].count == 3
    assert host.streams_ended[tid].error_kind is None
    assert host.ready[done].error_kind is None


def test_a_worker_death_reruns_the_task_without_repeating_delivered_items() -> None:
    deaths = []

    def die_once(spec: TaskSpec) -> str | None:
        if not deaths:
            deaths.append(spec.task_id)
            return ERR_WORKER_DIED
        return None

    host = FakeHost(nodes=1, fail_hook=die_once)
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(8,) * 3)
    host.run()
    assert [c.index for c in host.items] == [0, 1, 2]  # each item once
    runs = [d.spec for d in host.dispatched]
    assert len(runs) == 2 and runs[-1].skip_items == 3
    assert host.ready[done].error_kind is None


def test_a_generator_out_of_retries_ends_its_stream_with_the_error() -> None:
    host = FakeHost(nodes=1, fail_hook=lambda spec: ERR_WORKER_DIED)
    (done,) = host.submit(
        duration=1.0, generator=GEN_STREAMING, output_sizes=(8,) * 2, max_retries=1
    )
    tid = done >> 8
    host.run()
    assert [c.index for c in host.items] == [0, 1]
    end = host.streams_ended[tid]
    assert end.count == 2 and end.error_kind == ERR_WORKER_DIED
    assert host.ready[done].error_kind == ERR_WORKER_DIED


def test_cancelling_a_generator_ends_its_stream_and_stops_the_producer() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(BIG,) * 4)
    tid = done >> 8
    host.run(until=0.3)
    out: list[Any] = []
    assert host.owners[0].cancel(done, False, host.now, out)
    host._effect(out)
    host.run()
    end = host.streams_ended[tid]
    assert end.error_kind == ERR_CANCELLED and end.count == 1
    assert tid in host.interrupted
    assert [c.index for c in host.items] == [0]
    assert not host.raylets[0].running  # its CPU is back


def test_a_generator_waiting_on_a_failed_argument_ends_with_that_error() -> None:
    host = FakeHost(nodes=1)
    (bad,) = host.submit(duration=0.1, function="fail")
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(8,), arg_refs=(bad,))
    host.run()
    end = host.streams_ended[done >> 8]
    assert end.count == 0 and end.error_kind == ERR_APPLICATION


def test_generator_actor_methods_stream_their_items() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(duration=0.01, name="A")
    host.run()
    (done,) = host.call(actor, duration=1.0, generator=GEN_STREAMING, output_sizes=(8,) * 3)
    host.run(until=host.now + 0.6)
    assert [c.index for c in host.items] == [0, 1]
    host.run()
    assert host.streams_ended[done >> 8].count == 3


def test_dynamic_generators_hold_their_items_in_return_one() -> None:
    host = FakeHost(nodes=1)
    (done,) = host.submit(duration=1.0, generator=GEN_DYNAMIC, output_sizes=(BIG,) * 3)
    tid = done >> 8
    host.run()
    owner = host.owners[0]
    assert not host.items  # nothing is handed to the program item by item
    items = [generator_item_id(tid, i) for i in range(3)]
    assert owner.objects[done].contained == items
    assert not owner.streams
    host.release(done)
    host.run()
    assert not any(oid in owner.objects for oid in items)
    assert not host.raylets[0].store.objects


def test_refs_inside_an_item_are_held_by_it_even_when_lent_before_it_arrives() -> None:
    host = FakeHost(nodes=1)
    owner = host.owners[0]
    (inner,) = host.submit(duration=0.01, name="inner", output_sizes=(BIG,))
    host.run()
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(8,) * 2)
    tid = done >> 8
    item0 = generator_item_id(tid, 0)
    out: list[Any] = []
    owner.contain(item0, inner, owner.addr, host.now, out)  # lent before item 0 exists
    host._effect(out)
    host.release(inner)  # the producer's own handle goes: the coming item holds it
    host.run()
    assert owner.objects[item0].contained == [inner]
    assert inner in owner.objects
    _drop(host, tid, consumed=0)
    host.release(done)
    host.run()
    assert inner not in owner.objects and item0 not in owner.objects


def test_refs_lent_for_items_that_never_come_are_dropped_with_the_stream() -> None:
    host = FakeHost(nodes=1)
    owner = host.owners[0]
    (inner,) = host.submit(duration=0.01, output_sizes=(BIG,))
    host.run()
    (done,) = host.submit(duration=1.0, generator=GEN_STREAMING, output_sizes=(8,))
    tid = done >> 8
    out: list[Any] = []
    owner.contain(generator_item_id(tid, 5), inner, owner.addr, host.now, out)
    host._effect(out)
    host.release(inner)
    host.run()  # the task ends with one item: item 5 never comes
    assert inner not in owner.objects


def test_a_node_death_loses_its_stored_items_and_reruns_the_generator_elsewhere() -> None:
    host = FakeHost(nodes=3, extra_resources={1: {"X": 1}, 2: {"X": 1}})
    (done,) = host.submit(
        duration=1.0,
        generator=GEN_STREAMING,
        output_sizes=(BIG,) * 4,
        resources={"CPU": 1, "X": 1},
    )
    tid = done >> 8
    host.run(until=0.5)
    first = {d.spec.node for d in host.dispatched}
    assert first <= {1, 2} and [c.index for c in host.items] == [0, 1]
    host.kill_node(first.pop())
    host.run()
    owner = host.owners[0]
    lost = [owner.objects[generator_item_id(tid, i)] for i in range(2)]
    assert all(obj.error_kind == "object_lost" for obj in lost)  # items have no lineage
    assert [c.index for c in host.items] == [0, 1, 2, 3]  # the re-run sent only the rest
    assert host.streams_ended[tid].error_kind is None
