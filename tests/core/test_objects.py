"""Core object handling driven by the fake host: dependencies, pulls, freeing, errors and retries."""

from __future__ import annotations

import pytest

from runtime.core.config import CoreConfig
from runtime.core.messages import FreeObjects, Send, SubmitTask
from runtime.core.object_store import ObjectStore
from runtime.core.task import ERR_APPLICATION, ERR_WORKER_DIED
from tests.core.fake_host import FakeHost

BIG = 10 * 1024 * 1024


def test_a_dependent_task_waits_for_its_input_and_gets_it_inline() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(duration=1.0, name="a")
    (b,) = host.submit(duration=1.0, name="b", arg_refs=(a,))
    host.run(until=0.5)
    assert b >> 8 in host.owners[0]._blocked  # held at the owner, not sent
    host.run()
    assert host.ready[b].error_kind is None
    spec_b = next(d.spec for d in host.dispatched if d.spec.name == "b")
    assert spec_b.inlined == {a: "value-of-a"}
    assert spec_b.deps == ()
    assert host.ready[b].result is not None


def test_a_chain_runs_in_order_and_its_makespan_is_the_sum_of_durations() -> None:
    host = FakeHost(nodes=2)
    prev = None
    for i in range(5):
        args = (prev,) if prev is not None else ()
        (prev,) = host.submit(duration=1.0, name=f"c{i}", arg_refs=args)
    host.run()
    assert [d.spec.name for d in host.dispatched] == [f"c{i}" for i in range(5)]
    assert host.now >= 5.0


def test_a_large_remote_input_is_pulled_before_the_task_runs() -> None:
    config = CoreConfig(policy="random")  # force placement away from the producer sometimes
    host = FakeHost(nodes=2, config=config)
    (a,) = host.submit(node=0, duration=1.0, name="a", output_sizes=(BIG,))
    host.run()
    assert host.ready[a].result.stored
    producer = host.ready[a].node
    assert a in host.raylets[producer].store
    assert host.gcs.locations(a) == [producer]
    # b must run on the other node: only it has the custom resource
    other = 1 - producer
    host.raylets[other].total["special"] = 1.0
    host.raylets[other].available["special"] = 1.0
    host.gs.views[other].total["special"] = 1.0
    host.gs._feasible.clear()
    (b,) = host.submit(node=0, duration=1.0, name="b", arg_refs=(a,), resources={"special": 1.0})
    host.run()
    assert host.ready[b].error_kind is None and host.ready[b].node == other
    assert [(t.src, t.dst, t.nbytes) for t in host.transfers] == [(producer, other, BIG)]
    assert sorted(host.gcs.locations(a)) == [0, 1]
    assert a in host.raylets[other].store
    assert host.raylets[other].store.objects[a].pins == 0  # unpinned after the task
    # dropping the last reference frees every copy
    host.release(b)
    host.release(a)
    host.run()
    assert sorted(host.freed) == [(0, a), (1, a)]
    assert a not in host.gcs.objects
    assert not host.owners[0].objects


def test_inline_objects_are_freed_at_the_owner_without_messages() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(duration=0.1)
    host.run()
    before = len(host.commands)
    host.release(a)
    assert a not in host.owners[0].objects
    assert len(host.commands) == before


def test_an_object_freed_before_its_registration_reaches_the_gcs_is_still_dropped() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(duration=0.1, output_sizes=(BIG,))
    host.release(a)  # dropped while pending: freed as soon as it is ready
    host.run()
    assert (0, a) in host.freed
    assert a not in host.raylets[0].store
    assert not host.gcs.objects and not host.gcs.freed_early


def test_an_application_error_fails_the_task_and_its_dependents() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(function="fail", name="boom")
    (b,) = host.submit(arg_refs=(a,), name="after")
    host.run()
    assert host.ready[a].error_kind == ERR_APPLICATION
    assert host.ready[b].error_kind == ERR_APPLICATION
    assert host.ready[b].error == host.ready[a].error
    assert [d.spec.name for d in host.dispatched] == ["boom"]  # the dependent never ran
    assert not host.owners[0].pending


def test_worker_deaths_are_retried_up_to_max_retries() -> None:
    deaths = {"n": 0}

    def die_twice(spec):
        if deaths["n"] < 2:
            deaths["n"] += 1
            return ERR_WORKER_DIED
        return None

    host = FakeHost(nodes=1, fail_hook=die_twice)
    (a,) = host.submit(max_retries=2)
    host.run()
    assert host.ready[a].error_kind is None
    assert host.owners[0].retries == 2
    assert len(host.dispatched) == 3


def test_retries_run_out() -> None:
    host = FakeHost(nodes=1, fail_hook=lambda spec: ERR_WORKER_DIED)
    (a,) = host.submit(max_retries=1)
    host.run()
    assert host.ready[a].error_kind == ERR_WORKER_DIED
    assert len(host.dispatched) == 2


def test_application_errors_are_retried_only_when_asked() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(function="fail", max_retries=3, retry_exceptions=True)
    host.run()
    assert len(host.dispatched) == 4
    assert host.ready[a].error_kind == ERR_APPLICATION


def test_a_result_too_big_for_the_store_fails_with_store_full() -> None:
    host = FakeHost(nodes=1, store_capacity=BIG)
    (a,) = host.submit(output_sizes=(BIG + 1,))
    host.run()
    assert host.ready[a].error_kind == "store_full"
    assert "full" in host.ready[a].error


def test_multiple_returns_get_distinct_ids() -> None:
    host = FakeHost(nodes=1)
    oids = host.submit(num_returns=3, output_sizes=(1, 2, BIG))
    host.run()
    assert len(set(oids)) == 3
    assert [host.ready[o].result.size for o in oids] == [1, 2, BIG]
    assert [host.ready[o].result.stored for o in oids] == [False, False, True]


def test_put_values_are_usable_as_arguments() -> None:
    host = FakeHost(nodes=1)
    out: list = []
    small = host.owners[0].put(10, b"tiny", False, 0.0, out)
    big = host.owners[0].put(BIG, None, True, 0.0, out)
    host._effect(out)
    (c,) = host.submit(arg_refs=(small, big))
    host.run()
    spec = host.dispatched[0].spec
    assert spec.inlined == {small: b"tiny"}
    assert [d.oid for d in spec.deps] == [big]
    assert big in host.raylets[0].store
    assert host.ready[c].error_kind is None
    sends = [c.msg for c in host.commands if isinstance(c, Send)]
    assert any(isinstance(m, SubmitTask) for m in sends)
    host.release(big)
    host.run()
    assert any(
        isinstance(m, FreeObjects) for m in (c.msg for c in host.commands if isinstance(c, Send))
    )
    assert (0, big) in host.freed


def test_store_evicts_unpinned_secondary_copies_lru_first() -> None:
    store = ObjectStore(100)
    store.add(1, 40, primary=False)
    store.add(2, 40, primary=False)
    store.pin(1)
    evicted = store.add(3, 40, primary=True)
    assert evicted == [2]
    assert store.used == 80
    with pytest.raises(MemoryError, match="does not fit"):
        store.add(4, 40, primary=True)
    store.unpin(1)
    assert store.add(4, 40, primary=True) == [1]


def test_gcs_task_table_is_bounded() -> None:
    host = FakeHost(nodes=1, timers=True, config=CoreConfig(task_table_max=10))
    for _ in range(30):
        host.submit(duration=0.001)
    host.run(until=1.0)
    assert len(host.gcs.tasks) == 10
    assert host.gcs.tasks_dropped == 20
    assert all(r.state == "FINISHED" for r in host.gcs.tasks.values())
