"""Nested API calls from workers: tasks, get, put, wait and actors inside tasks and actors."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
def leaf(x):
    return x * 2


@ray.remote
def fan_out(n):
    return sum(ray.get([leaf.remote(i) for i in range(n)]))


@ray.remote
def tree(depth, width):
    if depth == 0:
        return 1
    return sum(ray.get([tree.remote(depth - 1, width) for _ in range(width)]))


@ray.remote
def put_wait_get():
    big = ray.put(np.arange(200_000))
    small = ray.put("small")
    ready, not_ready = ray.wait([big, small, leaf.remote(3)], num_returns=3, timeout=30)
    return len(ready), len(not_ready), int(ray.get(big).sum()), ray.get(small)


@ray.remote
def nested_failure():
    return ray.get(boom.remote())


@ray.remote
def boom():
    raise KeyError("deep")


@ray.remote
def sleeper(t):
    time.sleep(t)
    return t


@ray.remote
def get_with_timeout():
    ref = sleeper.remote(2.0)
    try:
        ray.get(ref, timeout=0.05)
    except ray.GetTimeoutError:
        return "timed out"
    return "no timeout"


@ray.remote
class Accumulator:
    def __init__(self):
        self.items = []

    def add(self, x):
        self.items.append(x)
        return len(self.items)

    def items_(self):
        return sorted(self.items)

    def spawn_tasks(self, n):
        return ray.get([leaf.remote(i) for i in range(n)])


@ray.remote
def call_actor(handle, x):
    return ray.get(handle.add.remote(x))


@ray.remote
def make_actor_inside():
    acc = Accumulator.remote()
    ray.get([acc.add.remote(i) for i in range(3)])
    return ray.get(acc.items_.remote())


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=128 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def test_a_task_submits_and_gets_subtasks(cluster) -> None:
    assert ray.get(fan_out.remote(10), timeout=30) == sum(2 * i for i in range(10))


def test_nested_waits_do_not_deadlock_a_small_pool(cluster) -> None:
    # 1 + 3 + 9 tasks blocked in get at once on 2 CPUs: blocked workers lend their CPU
    assert ray.get(tree.remote(2, 3), timeout=60) == 9


def test_put_wait_and_get_inside_a_task(cluster) -> None:
    n_ready, n_not_ready, total, small = ray.get(put_wait_get.remote(), timeout=30)
    assert (n_ready, n_not_ready, small) == (3, 0, "small")
    assert total == sum(range(200_000))


def test_a_nested_error_reaches_the_driver_with_its_class(cluster) -> None:
    with pytest.raises(KeyError, match="deep"):
        ray.get(nested_failure.remote(), timeout=30)


def test_get_timeout_inside_a_worker(cluster) -> None:
    assert ray.get(get_with_timeout.remote(), timeout=30) == "timed out"


def test_actor_handles_passed_to_tasks(cluster) -> None:
    acc = Accumulator.remote()
    counts = ray.get([call_actor.remote(acc, i) for i in range(6)], timeout=30)
    assert sorted(counts) == [1, 2, 3, 4, 5, 6]
    assert ray.get(acc.items_.remote()) == list(range(6))


def test_actors_created_in_tasks_and_tasks_from_actors(cluster) -> None:
    assert ray.get(make_actor_inside.remote(), timeout=30) == [0, 1, 2]
    acc = Accumulator.remote()
    assert ray.get(acc.spawn_tasks.remote(4), timeout=30) == [0, 2, 4, 6]
