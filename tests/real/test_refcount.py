"""Reference counting end to end: arena ranges are released once no reference remains anywhere."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
def put_and_sum(n):
    ref = ray.put(np.ones(n))
    return float(ray.get(ref).sum())


@ray.remote
def make_big(n):
    return np.ones(n)


@ray.remote
def nested_big_get(n):
    ref = make_big.remote(n)
    arr = ray.get(ref)
    return float(arr.sum())


@ray.remote
class Holder:
    def __init__(self):
        self.refs = []

    def keep(self, n):
        self.refs.append(ray.put(np.ones(n)))
        return len(self.refs)

    def drop(self):
        self.refs.clear()
        return 0


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=128 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def _used(node) -> int:
    return node.arena.allocator.used_bytes


def _settle_to(node, target: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        node._wake_pending = False
        node._wake()
        if _used(node) == target:
            break
        time.sleep(0.02)
    return _used(node)


N = 1 << 18  # 2 MiB of float64: stored in the arena


def test_objects_put_by_a_task_are_freed_when_it_drops_them(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    assert ray.get([put_and_sum.remote(N) for _ in range(4)]) == [float(N)] * 4
    # the release rides on the worker's next message: give each worker one more task
    ray.get([put_and_sum.remote(1) for _ in range(4)])
    assert _settle_to(cluster, base) == base


def test_nested_results_and_pinned_values_are_freed(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    assert ray.get([nested_big_get.remote(N) for _ in range(3)], timeout=30) == [float(N)] * 3
    ray.get([put_and_sum.remote(1) for _ in range(4)])
    assert _settle_to(cluster, base) == base


def test_driver_results_are_freed_with_their_last_ref(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    refs = [make_big.remote(N) for _ in range(3)]
    ray.wait(refs, num_returns=3, timeout=30)
    assert _used(cluster) > base
    del refs
    assert _settle_to(cluster, base) == base


def test_refs_held_by_an_actor_are_freed_when_it_drops_them_or_dies(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    holder = Holder.remote()
    assert ray.get([holder.keep.remote(N) for _ in range(3)]) == [1, 2, 3]
    assert _settle_to(cluster, base, timeout=0.2) > base  # held by the actor
    ray.get(holder.drop.remote())
    ray.get(holder.keep.remote(1))  # carries the releases
    assert _settle_to(cluster, base) == base
    ray.get(holder.keep.remote(N))
    assert _settle_to(cluster, base, timeout=0.2) > base
    ray.kill(holder)
    assert _settle_to(cluster, base) == base


def test_a_dropped_ref_is_freed_even_if_the_program_makes_no_further_call(cluster) -> None:
    # Reference drops are queued without waking the loop (a wakeup per drop would slow
    # every sync call); the loop thread's periodic timer (the raylet's resource report)
    # bounds how long they wait.
    base = _settle_to(cluster, _used(cluster))
    ref = ray.put(np.ones(N))
    ray.get(ref)  # a step: the put is applied
    assert _used(cluster) > base
    del ref
    gc.collect()
    deadline = time.monotonic() + 5.0
    while _used(cluster) != base and time.monotonic() < deadline:
        time.sleep(0.02)  # no API call, no manual wakeup
    assert _used(cluster) == base
