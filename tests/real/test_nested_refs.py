"""ObjectRefs inside values: passed to tasks in a list, returned by tasks, and `wait` checks."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
def get_all(refs):
    return [ray.get(r) for r in refs]


@ray.remote
def put_and_return_ref(value):
    return [ray.put(value)]


@ray.remote
def passthrough(refs):
    return refs


@ray.remote
def total(arr):
    return int(arr.sum())


@pytest.fixture(scope="module")
def node():
    ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()


def test_a_task_receives_a_list_of_refs_and_gets_them(node) -> None:
    small = ray.put("small")
    big = ray.put(np.arange(1 << 18, dtype=np.int64))  # stored in the arena
    computed = total.remote(np.ones(10, dtype=np.int64))
    values = ray.get(get_all.remote([small, big, computed]))
    assert values[0] == "small"
    assert np.array_equal(values[1], np.arange(1 << 18, dtype=np.int64))
    assert values[2] == 10


def test_refs_stay_alive_when_the_driver_drops_its_handles(node) -> None:
    big = ray.put(np.full(1 << 18, 3, dtype=np.int64))
    result = get_all.remote([big])
    del big
    gc.collect()
    (arr,) = ray.get(result)
    assert int(arr[0]) == 3


def test_a_task_returns_a_ref_to_a_value_it_put(node) -> None:
    (ref,) = ray.get(put_and_return_ref.remote({"answer": 42}))
    assert isinstance(ref, ray.ObjectRef)
    gc.collect()
    assert ray.get(ref, timeout=10) == {"answer": 42}
    (big,) = ray.get(put_and_return_ref.remote(np.arange(1 << 18, dtype=np.int64)))
    assert int(ray.get(big, timeout=10).sum()) == int(np.arange(1 << 18, dtype=np.int64).sum())
    assert ray.get(total.remote(big), timeout=10) == int(np.arange(1 << 18).sum())


def test_a_ref_round_trips_through_a_task(node) -> None:
    mine = ray.put([1, 2, 3])
    (back,) = ray.get(passthrough.remote([mine]))
    assert back == mine and ray.get(back) == [1, 2, 3]
    del back
    gc.collect()
    assert ray.get(mine) == [1, 2, 3]  # dropping the extra handle keeps the object


def test_wait_rejects_duplicates_and_returns_ready_first(node) -> None:
    a = ray.put(1)
    with pytest.raises(ValueError, match="duplicate"):
        ray.wait([a, a], num_returns=1)
    refs = [total.remote(np.ones(3, dtype=np.int64)) for _ in range(5)]
    ray.get(refs)
    ready, not_ready = ray.wait(refs, num_returns=3)
    assert ready == refs[:3] and not_ready == refs[3:]


def _arena_used(node) -> int:
    gc.collect()
    ray.get(get_all.remote([]))  # a step of the loop: queued puts and releases are applied
    return node.arena.allocator.used_bytes


def test_a_put_value_keeps_the_refs_inside_it_alive(node) -> None:
    before = _arena_used(node)
    inner = ray.put(np.arange(200_000))
    outer = ray.put([inner])
    del inner
    gc.collect()
    (again,) = ray.get(outer)
    assert int(ray.get(again).sum()) == sum(range(200_000))
    del again, outer
    assert _arena_used(node) <= before  # the outer value went, and the inner one with it


def test_refs_a_task_returns_are_freed_with_the_value_that_holds_them(node) -> None:
    # Bug: refs a worker returned inside a value were held until shutdown (40 MB after
    # 50 such tasks); now the returned object holds them, as in Ray.
    before = _arena_used(node)
    for _ in range(30):
        value_ref = put_and_return_ref.remote(np.ones(100_000))
        (inner,) = ray.get(value_ref)
        assert float(ray.get(inner).sum()) == 100_000.0
        del value_ref, inner
    assert _arena_used(node) <= before  # 30 x 800 KB would show


@ray.remote
def put_nested_in_worker(n):
    inner = ray.put(np.arange(n))
    outer = ray.put([inner])
    del inner
    return outer


@ray.remote
def sum_first_of(refs):
    return int(ray.get(refs[0]).sum())


@ray.remote
def pass_nested_from_worker(n):
    inner = ray.put(np.arange(n))
    ref = sum_first_of.remote([inner])
    del inner  # the nested submission keeps it alive until the task ends
    return ray.get(ref)


def test_a_value_put_by_a_worker_keeps_the_refs_inside_it(node) -> None:
    outer = ray.get(put_nested_in_worker.remote(100_000))
    (inner,) = ray.get(outer)
    assert int(ray.get(inner).sum()) == sum(range(100_000))


def test_a_worker_passes_refs_nested_in_an_argument_to_a_task(node) -> None:
    assert ray.get(pass_nested_from_worker.remote(100_000)) == sum(range(100_000))


@ray.remote
def sleeper(t):
    import time

    time.sleep(t)
    return t


@ray.remote
def count_ready(refs):
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    return len(ready)


def test_a_task_does_not_wait_for_refs_nested_in_its_arguments(node) -> None:
    # As in Ray: refs inside an argument are passed as refs, not awaited (the task used
    # to be held until every nested ref was ready).
    slow = sleeper.remote(30)
    try:
        assert ray.get(count_ready.remote([slow]), timeout=15) == 0
    finally:
        ray.cancel(slow, force=True)
