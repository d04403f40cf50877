"""Actors die with their last handle (after the calls already made), unless named or detached."""

from __future__ import annotations

import gc
import os
import time

import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        time.sleep(0.01)
        self.n += 1
        return self.n

    def pid(self) -> int:
        return os.getpid()


@ray.remote
def call_it(handle):
    return ray.get(handle.incr.remote())


@pytest.fixture(scope="module")
def node():
    ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=32 << 20)
    yield _current_node()
    ray.shutdown()


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return True  # exited; its parent (the fork server) reaps it later
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def _actor_alive(node, actor_id: int) -> bool:
    w = node.actor_workers.workers.get(actor_id)
    return w is not None and w.alive


def test_an_actor_dies_with_its_last_handle_after_its_pending_calls(node) -> None:
    c = Counter.remote()
    actor_id = c.actor_id
    pid = ray.get(c.pid.remote())
    refs = [c.incr.remote() for _ in range(5)]
    other = c  # a second name for the same handle object
    del c
    gc.collect()
    assert _actor_alive(node, actor_id)
    del other
    gc.collect()
    assert ray.get(refs, timeout=10) == [1, 2, 3, 4, 5]  # calls made before still ran
    assert _wait_dead(pid)


def test_named_and_detached_actors_outlive_their_handles(node) -> None:
    named = Counter.options(name="keep-me").remote()
    detached = Counter.options(lifetime="detached").remote()
    pids = ray.get([named.pid.remote(), detached.pid.remote()])
    ids = [named.actor_id, detached.actor_id]
    del named, detached
    gc.collect()
    time.sleep(0.2)
    assert all(_actor_alive(node, i) for i in ids)
    assert all(not _wait_dead(pid, 0.05) for pid in pids)
    again = ray.get_actor("keep-me")
    assert ray.get(again.incr.remote()) == 1


def test_an_actor_whose_handle_was_passed_to_a_task_dies_after_the_task_and_the_driver(
    node,
) -> None:
    # Used to be never collected: a pickled handle could not be counted. Every copy now
    # carries a ref to the actor's token object, counted like any borrowed ref.
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    assert ray.get(call_it.remote(c)) == 1
    del c
    gc.collect()
    assert _wait_dead(pid)


@ray.remote
class Holder:
    def __init__(self) -> None:
        self.held = None

    def keep(self, handles) -> None:
        self.held = handles[0]

    def use(self) -> int:
        return ray.get(self.held.incr.remote())

    def drop(self) -> None:
        self.held = None


@ray.remote
def hand_back(handles):
    return handles


def test_an_actor_lives_while_another_actor_holds_its_handle(node) -> None:
    holder = Holder.remote()
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    ray.get(holder.keep.remote([c]))
    del c
    gc.collect()
    assert not _wait_dead(pid, 0.5)
    assert ray.get(holder.use.remote()) == 1  # the held copy still works
    ray.get(holder.drop.remote())
    assert _wait_dead(pid)


def test_a_handle_returned_by_a_task_keeps_the_actor_alive(node) -> None:
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    (again,) = ray.get(hand_back.remote([c]))
    del c
    gc.collect()
    assert not _wait_dead(pid, 0.5)
    assert ray.get(again.incr.remote()) == 1
    del again
    gc.collect()
    assert _wait_dead(pid)


@ray.remote
def make_and_use_actor():
    c = Counter.remote()
    ray.get(c.incr.remote())
    return ray.get(c.pid.remote())


@ray.remote
def make_actor_and_return_it():
    c = Counter.remote()
    ray.get(c.incr.remote())
    return [c]


def test_an_actor_created_by_a_task_dies_with_the_task_s_handle(node) -> None:
    pid = ray.get(make_and_use_actor.remote())
    assert _wait_dead(pid)


def test_an_actor_a_task_created_and_returned_lives_while_the_driver_holds_it(node) -> None:
    (c,) = ray.get(make_actor_and_return_it.remote())
    pid = ray.get(c.pid.remote())
    assert not _wait_dead(pid, 0.5)
    assert ray.get(c.incr.remote()) == 2
    del c
    gc.collect()
    assert _wait_dead(pid)


@ray.remote
class ConstructorHolder:
    def __init__(self, counters) -> None:
        self.counters = counters  # handles passed to the constructor, in a list

    def incr_all(self) -> list:
        return ray.get([c.incr.remote() for c in self.counters])

    def pids(self) -> list:
        return ray.get([c.pid.remote() for c in self.counters])


def test_handles_passed_to_a_constructor_keep_their_actors_alive(node) -> None:
    # the driver keeps no copy of the handles: only the holder's constructor got them
    holder = ConstructorHolder.remote([Counter.remote() for _ in range(2)])
    gc.collect()
    assert ray.get(holder.incr_all.remote(), timeout=60) == [1, 1]
    pids = ray.get(holder.pids.remote(), timeout=60)
    assert not _wait_dead(pids[0], 0.5)
    assert ray.get(holder.incr_all.remote(), timeout=60) == [2, 2]
    del holder  # the holder dies, and with it the last handles of the counters
    gc.collect()
    assert all(_wait_dead(pid) for pid in pids)
