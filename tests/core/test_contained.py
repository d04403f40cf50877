"""Refs nested in a value: the outer object keeps them alive, and lets go when it is freed."""

from __future__ import annotations

from typing import Any

from tests.core.fake_host import FakeHost, owner_addr

BIG = 1 << 20


def _put(host: FakeHost, node: int = 0, size: int = 10) -> int:
    out: list[Any] = []
    oid = host.owners[node].put(size, b"x", False, host.now, out)
    host._effect(out)
    return oid


def _contain(host: FakeHost, outer: int, inner: int, node: int = 0, inner_node: int = 0) -> None:
    out: list[Any] = []
    host.owners[node].contain(outer, inner, owner_addr(inner_node), host.now, out)
    host._effect(out)
    host.run()


def test_an_inner_object_lives_while_the_outer_one_does() -> None:
    host = FakeHost(nodes=1)
    owner = host.owners[0]
    inner = _put(host)
    outer = _put(host)
    _contain(host, outer, inner)
    host.release(inner)  # the program's own handle goes
    host.run()
    assert inner in owner.objects
    host.release(outer)
    host.run()
    assert inner not in owner.objects and outer not in owner.objects


def test_a_task_result_holding_a_ref_frees_it_when_the_result_is_freed() -> None:
    host = FakeHost(nodes=1)
    owner = host.owners[0]
    inner = _put(host)
    (outer,) = host.submit(output_sizes=(BIG,))
    _contain(host, outer, inner)  # the worker returned [inner] (while the task ran)
    host.release(inner)
    host.run()
    assert owner.objects[outer].state == 1  # READY
    assert inner in owner.objects
    host.release(outer)
    host.run()
    assert inner not in owner.objects


def test_containing_into_a_freed_object_holds_nothing() -> None:
    host = FakeHost(nodes=1)
    owner = host.owners[0]
    inner = _put(host)
    outer = _put(host)
    host.release(outer)
    _contain(host, outer, inner)
    host.release(inner)
    host.run()
    assert inner not in owner.objects


def test_an_inner_object_of_another_owner_is_borrowed_then_released() -> None:
    host = FakeHost(nodes=2)
    inner = _put(host, node=1)
    outer = _put(host, node=0)
    _contain(host, outer, inner, node=0, inner_node=1)
    host.release(inner, node=1)
    host.run()
    assert inner in host.owners[1].objects  # owner 0 borrows it for the outer value
    host.release(outer, node=0)
    host.run()
    assert inner not in host.owners[1].objects and inner not in host.owners[0].objects


def test_a_long_chain_of_nested_values_is_freed_without_deep_recursion() -> None:
    host = FakeHost(nodes=1, checks=False)  # checked at the end: per delivery is quadratic
    owner = host.owners[0]
    first = prev = _put(host)
    for _ in range(5000):  # each value holds a ref to the one before it
        nxt = _put(host)
        _contain(host, nxt, prev)
        host.release(prev)
        prev = nxt
    host.run()
    host.check()
    assert first in owner.objects
    host.release(prev)
    host.run()
    host.check()
    assert not owner.objects


def test_a_nested_ref_in_an_argument_is_held_but_not_awaited() -> None:
    host = FakeHost(nodes=1, cpus=2)
    owner = host.owners[0]
    (slow,) = host.submit(duration=10.0, name="slow", output_sizes=(BIG,))
    (quick,) = host.submit(duration=1.0, name="quick", held_refs=(slow,))
    host.release(slow)  # the program's handle goes; the pending task still holds it
    host.run(until=2.0)
    assert host.ready[quick].error_kind is None  # ran while `slow` was still running
    assert slow not in host.ready
    assert slow in owner.objects
    host.run()
    assert slow not in owner.objects  # released when `quick` ended and `slow` reported


def test_a_nested_ref_to_a_failed_object_does_not_fail_the_task() -> None:
    host = FakeHost(nodes=1)
    (bad,) = host.submit(function="fail", name="bad")
    host.run()
    (ok,) = host.submit(name="ok", held_refs=(bad,))
    host.run()
    assert host.ready[ok].error_kind is None


def test_a_watched_object_reports_its_end_once_no_ref_is_left_anywhere() -> None:
    host = FakeHost(nodes=2)
    token = _put(host, node=0)
    other = _put(host, node=0)
    host.owners[0].watch_free(token)
    out: list[Any] = []
    host.owners[1].borrow(token, owner_addr(0), host.now, out)  # a handle elsewhere
    host._effect(out)
    host.run()
    host.release(token, node=0)
    host.release(other, node=0)
    host.run()
    assert host.ended == []  # node 1 still holds it
    host.release(token, node=1)
    host.run()
    assert host.ended == [token]  # and `other`, not watched, ended silently
