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
    w = node._actor_workers.get(actor_id)
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


def test_an_actor_whose_handle_was_passed_to_a_task_is_not_collected(node) -> None:
    c = Counter.remote()
    actor_id = c.actor_id
    assert ray.get(call_it.remote(c)) == 1
    del c
    gc.collect()
    time.sleep(0.2)
    assert _actor_alive(node, actor_id)
