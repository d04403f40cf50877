"""Generator tasks end to end: items reach the caller as they are yielded, errors, cancel, retries, memory."""

from __future__ import annotations

import gc
import os
import pickle
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node

N = 1 << 18  # 2 MiB of float64: each item goes into the arena


def _wait_for_file(path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


@ray.remote
def count(n):
    yield from range(n)


@ray.remote
def first_then_wait(marker):
    yield "first"
    _wait_for_file(marker)  # the caller creates it once it has the first item
    yield "second"


@ray.remote
def fail_at(n, k):
    for i in range(n):
        if i == k:
            raise KeyError(f"no item {i}")
        yield i


@ray.remote
def big_items(n):
    for i in range(n):
        yield np.full(N, i, dtype=np.float64)


@ray.remote
def endless():
    i = 0
    while True:
        yield i
        i += 1
        time.sleep(0.01)


@ray.remote(max_retries=2)
def dies_once(marker):
    yield 1
    yield 2
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    yield 3


@ray.remote(max_retries=0)
def always_dies():
    yield 1
    os._exit(1)


@ray.remote
def consume_nested(n):
    return [ray.get(ref) for ref in count.remote(n)]


@ray.remote(num_returns="dynamic")
def dynamic(n):
    for i in range(n):
        yield i * 2


@ray.remote
class Streamer:
    def items(self, n):
        for i in range(n):
            yield f"item-{i}"

    def total(self, n):
        return sum(ray.get(ref) for ref in count.remote(n))


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, object_store_memory=128 << 20)
    yield _current_node()
    ray.shutdown()


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


def _settle_below(node, limit: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _used(node) >= limit:
        gc.collect()
        node._wake_pending = False
        node._wake()
        time.sleep(0.02)
    return _used(node)


def test_a_generator_function_returns_a_generator_of_refs(cluster) -> None:
    gen = count.remote(4)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert iter(gen) is gen
    assert [ray.get(ref) for ref in gen] == [0, 1, 2, 3]
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished() and not gen.next_ready()
    assert ray.get(gen.completed()) is None
    assert ray.get(gen) is gen  # as in Ray


def test_items_arrive_while_the_task_still_runs(cluster, tmp_path) -> None:
    marker = str(tmp_path / "go")
    gen = first_then_wait.remote(marker)
    assert ray.get(next(gen), timeout=60) == "first"  # the task cannot end before `marker`
    ready, _ = ray.wait([gen.completed()], timeout=0)
    assert not ready
    assert not gen.is_finished()
    open(marker, "w").close()
    assert ray.get(next(gen), timeout=60) == "second"
    with pytest.raises(StopIteration):
        next(gen)


def test_wait_and_next_ready_follow_the_next_item(cluster, tmp_path) -> None:
    marker = str(tmp_path / "go")
    gen = first_then_wait.remote(marker)
    ready, rest = ray.wait([gen], timeout=60)
    assert ready == [gen] and rest == [] and gen.next_ready()
    next(gen)
    ready, rest = ray.wait([gen], timeout=0.05)
    assert ready == [] and rest == [gen] and not gen.next_ready()
    other = ray.put(1)
    ready, rest = ray.wait([gen, other], num_returns=1, timeout=60)
    assert ready == [other] and rest == [gen]
    open(marker, "w").close()
    ready, _ = ray.wait([gen, other], num_returns=2, timeout=60)
    assert ready == [gen, other]
    assert ray.get(next(gen)) == "second"


def test_an_exception_is_the_item_where_it_was_raised(cluster) -> None:
    gen = fail_at.remote(5, 2)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    bad = next(gen)
    with pytest.raises(KeyError, match="no item 2"):
        ray.get(bad)
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed()) is None  # the task itself ended normally, as in Ray


def test_cancel_stops_the_producer_and_ends_the_stream_with_the_error(cluster) -> None:
    gen = endless.remote()
    assert ray.get(next(gen), timeout=60) == 0
    ray.cancel(gen)
    seen = []
    with pytest.raises(ray.TaskCancelledError):
        for ref in gen:  # items yielded before the cancel, then the task's error
            seen.append(ray.get(ref))
    assert seen == list(range(1, len(seen) + 1))
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(gen.completed())
    assert ray.get([count.remote(1).completed() for _ in range(2)], timeout=60) == [None] * 2


def test_large_items_live_in_the_arena_and_are_freed_with_their_refs(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    gen = big_items.remote(4)
    first = next(gen)
    assert ray.get(first)[0] == 0.0
    ray.wait([gen.completed()], timeout=60)
    assert _used(cluster) >= base + 4 * N * 8  # all four items are stored
    del gen  # three items were never taken: they go with the generator
    one = _settle_below(cluster, base + 2 * N * 8)
    assert base + N * 8 <= one < base + 2 * N * 8  # only the item the program took is left
    del first
    assert _settle_to(cluster, base) == base


def test_items_of_a_dropped_generator_are_freed_even_while_it_runs(cluster, tmp_path) -> None:
    base = _settle_to(cluster, _used(cluster))
    gen = big_items.remote(6)
    done = gen.completed()
    del gen
    ray.wait([done], timeout=60)
    assert _settle_to(cluster, base) == base


def test_a_worker_death_reruns_the_generator_without_repeating_items(cluster, tmp_path) -> None:
    marker = str(tmp_path / "died")
    gen = dies_once.remote(marker)
    assert [ray.get(ref, timeout=60) for ref in gen] == [1, 2, 3]
    assert os.path.exists(marker)


def test_a_generator_out_of_retries_ends_with_a_worker_crash(cluster) -> None:
    gen = always_dies.remote()
    assert ray.get(next(gen), timeout=60) == 1
    last = next(gen)
    assert last == gen.completed()
    with pytest.raises(ray.WorkerCrashedError):
        ray.get(last, timeout=60)
    with pytest.raises(StopIteration):
        next(gen)


def test_generator_actor_methods_stream(cluster) -> None:
    streamer = Streamer.remote()
    gen = streamer.items.remote(3)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in gen] == ["item-0", "item-1", "item-2"]


def test_generators_consumed_inside_tasks_and_actors(cluster) -> None:
    assert ray.get(consume_nested.remote(5), timeout=60) == [0, 1, 2, 3, 4]
    assert ray.get([consume_nested.remote(3) for _ in range(4)], timeout=60) == [[0, 1, 2]] * 4
    streamer = Streamer.remote()
    assert ray.get(streamer.total.remote(4), timeout=60) == 6


def test_dynamic_generators_return_one_ref_to_the_refs(cluster) -> None:
    ref = dynamic.remote(3)
    assert isinstance(ref, ray.ObjectRef)
    items = ray.get(ref)
    assert isinstance(items, ray.DynamicObjectRefGenerator)
    assert len(items) == 3
    assert [ray.get(r) for r in items] == [0, 2, 4]


def test_a_generator_cannot_be_pickled_or_mistaken(cluster) -> None:
    gen = count.remote(1)
    with pytest.raises(TypeError, match="Serializing a ObjectRefGenerator"):
        pickle.dumps(gen)
    with pytest.raises(ValueError, match="generator function"):

        @ray.remote(num_returns="streaming")
        def plain():
            return 1

    @ray.remote(num_returns=2)
    def two():
        yield "a"
        yield "b"

    assert ray.get(two.remote()) == ["a", "b"]  # explicit num_returns collects the yields


@ray.remote
def items_holding_refs(n):
    for _ in range(n):
        yield [ray.put(np.ones(N))]  # the item holds the only ref to the array


def test_refs_inside_items_live_as_long_as_the_items(cluster) -> None:
    base = _settle_to(cluster, _used(cluster))
    gen = items_holding_refs.remote(3)
    (inner,) = ray.get(next(gen))
    assert ray.get(inner).sum() == N
    ray.wait([gen.completed()], timeout=60)
    del gen  # the two items not taken go, and the arrays inside them
    one = _settle_below(cluster, base + 2 * N * 8)
    assert base + N * 8 <= one < base + 2 * N * 8
    del inner
    assert _settle_to(cluster, base) == base


@ray.remote(num_returns="dynamic")
def dynamic_failing():
    yield 1
    raise KeyError("late")


def test_a_dynamic_generator_counts_its_error_item(cluster) -> None:
    items = list(ray.get(dynamic_failing.remote()))
    assert len(items) == 2
    assert ray.get(items[0]) == 1
    with pytest.raises(KeyError, match="late"):
        ray.get(items[1])


@ray.remote(max_concurrency=4)
class ThreadedStreamer:
    def items(self):
        yield 1


def test_a_generator_method_of_a_threaded_actor_fails_clearly(cluster) -> None:
    gen = ThreadedStreamer.remote().items.remote()
    last = next(gen)
    with pytest.raises(NotImplementedError, match="max_concurrency=1"):
        ray.get(last, timeout=60)
    with pytest.raises(StopIteration):
        next(gen)
