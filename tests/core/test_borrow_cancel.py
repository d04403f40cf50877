"""Borrowed objects (nested tasks pass references between owners) and cancellation, in the core."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.config import CoreConfig
from runtime.core.task import ERR_CANCELLED, ERR_OBJECT_LOST
from tests.core.fake_host import FakeHost, owner_addr

BIG = 1 << 20


def _borrow(host: FakeHost, node: int, oid: int, owner_node: int) -> None:
    out: list[Any] = []
    host.owners[node].borrow(oid, owner_addr(owner_node), host.now, out)
    host._effect(out)


def test_a_borrowed_pending_object_can_be_an_argument_and_is_kept_alive() -> None:
    host = FakeHost(nodes=2)
    (a,) = host.submit(node=0, duration=1.0, name="a", output_sizes=(BIG,))
    _borrow(host, 1, a, 0)
    (b,) = host.submit(node=1, duration=1.0, name="b", arg_refs=(a,))
    host.release(a, node=0)  # the owner's program drops it: the borrower still needs it
    host.run()
    assert host.ready[b].error_kind is None
    spec_b = next(d.spec for d in host.dispatched if d.spec.name == "b")
    assert [d.oid for d in spec_b.deps] == [a]
    assert a in host.owners[0].objects  # still borrowed by owner 1's program
    host.release(a, node=1)
    host.run()
    assert a not in host.owners[0].objects and a not in host.owners[1].objects
    assert any(oid == a for _, oid in host.freed)


def test_a_borrower_learns_of_a_failure() -> None:
    host = FakeHost(nodes=2)
    (a,) = host.submit(node=0, function="fail", name="bad")
    _borrow(host, 1, a, 0)
    host.run()
    assert host.owners[1].objects[a].state == 2  # FAILED, with the owner's error
    assert host.owners[1].objects[a].error == host.ready[a].error


def test_borrowing_a_freed_object_reports_it_lost() -> None:
    host = FakeHost(nodes=2)
    (a,) = host.submit(node=0)
    host.run()
    host.release(a, node=0)
    _borrow(host, 1, a, 0)
    host.run()
    assert host.owners[1].objects[a].error_kind == ERR_OBJECT_LOST


def test_cancel_a_queued_task() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=10))
    host.submit(duration=5.0, name="running")
    (queued,) = host.submit(duration=5.0, name="queued")
    host.run(until=1.0)
    out: list[Any] = []
    assert host.owners[0].cancel(queued, False, host.now, out)
    host._effect(out)
    assert host.ready[queued].error_kind == ERR_CANCELLED
    host.run()
    assert [d.spec.name for d in host.dispatched] == ["running"]
    assert host.raylets[0].queued == 0


def test_cancel_a_running_task_interrupts_it_and_frees_its_cpu() -> None:
    host = FakeHost(nodes=1, cpus=1)
    (running,) = host.submit(duration=100.0, name="long")
    host.run(until=1.0)
    out: list[Any] = []
    host.owners[0].cancel(running, True, host.now, out)
    host._effect(out)
    host.run(until=2.0)
    assert host.ready[running].error_kind == ERR_CANCELLED
    assert host.raylets[0].available == {"CPU": 1.0}
    assert not host.owners[0].cancel(running, False, host.now, [])  # already over


def test_cancel_a_task_waiting_for_arguments_fails_it_without_sending() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(duration=5.0)
    (b,) = host.submit(arg_refs=(a,), name="b")
    out: list[Any] = []
    host.owners[0].cancel(b, False, host.now, out)
    host._effect(out)
    host.run()
    assert host.ready[b].error_kind == ERR_CANCELLED
    assert "b" not in [d.spec.name for d in host.dispatched]


def test_cancel_a_spilled_task_reaches_the_node_it_went_to() -> None:
    host = FakeHost(nodes=2, cpus=1, config=CoreConfig(spillback_threshold=0))
    host.submit(node=0, duration=5.0, name="here")
    (there,) = host.submit(node=0, duration=50.0, name="there")
    host.run(until=1.0)
    assert host.raylets[1].running
    out: list[Any] = []
    host.owners[0].cancel(there, True, host.now, out)
    host._effect(out)
    host.run(until=2.0)
    assert not host.raylets[1].running


def test_force_cancel_of_an_actor_call_is_refused() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    (call,) = host.call(actor, duration=5.0)
    with pytest.raises(ValueError, match="actor"):
        host.owners[0].cancel(call, True, host.now, [])
