"""Pipelined actor calls: in order, and an early answer never waits for a later, long call."""

from __future__ import annotations

import os
import time

import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
class Log:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def add(self, i: int) -> int:
        self.seen.append(i)
        return i

    def wait_for(self, path: str) -> str:
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)
        return "released"

    def history(self) -> list[int]:
        return self.seen


@ray.remote
def gate(path: str) -> str:
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


@ray.remote
def quick(i: int) -> int:
    return i


@pytest.fixture(scope="module")
def node():
    ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=32 << 20)
    yield _current_node()
    ray.shutdown()


def test_many_calls_in_flight_run_in_order(node) -> None:
    log = Log.remote()
    refs = [log.add.remote(i) for i in range(500)]
    assert ray.get(refs, timeout=30) == list(range(500))
    assert ray.get(log.history.remote()) == list(range(500))


def test_an_answer_is_not_held_back_by_the_next_long_call(node, tmp_path) -> None:
    log = Log.remote()
    ray.get(log.add.remote(-1))
    flag = str(tmp_path / "go")
    first = log.add.remote(1)
    blocked = log.wait_for.remote(flag)
    assert ray.get(first, timeout=20) == 1  # answered while the next call still runs
    ready, _ = ray.wait([blocked], num_returns=1, timeout=0.1)
    assert ready == []
    open(flag, "w").close()
    assert ray.get(blocked, timeout=30) == "released"


def test_a_task_answer_is_not_held_back_by_a_prefetched_long_task(node, tmp_path) -> None:
    flag = str(tmp_path / "go")
    gates = [gate.remote(flag) for _ in range(2)]
    quicks = [quick.remote(i) for i in range(6)]
    ready, _ = ray.wait(gates, num_returns=1, timeout=0.1)
    assert ready == []
    open(flag, "w").close()
    assert ray.get(quicks, timeout=30) == list(range(6))
    assert ray.get(gates, timeout=30) == ["released"] * 2


def test_cancel_hits_only_its_task_when_others_are_queued_behind_it(node, tmp_path) -> None:
    flag = str(tmp_path / "go")
    first, second = gate.remote(flag), gate.remote(flag)
    followers = [quick.remote(i) for i in range(4)]  # prefetched behind the gates
    deadline = time.monotonic() + 10
    while sum(w.spec is not None for w in node.pool.workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    ray.cancel(first)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(first, timeout=10)
    open(flag, "w").close()
    assert ray.get(followers, timeout=30) == [0, 1, 2, 3]
    assert ray.get(second, timeout=30) == "released"
    log = Log.remote()
    calls = [log.add.remote(i) for i in range(3)]
    waiting = log.wait_for.remote(str(tmp_path / "never"))
    after = log.add.remote(99)
    assert ray.get(calls, timeout=10) == [0, 1, 2]
    ray.cancel(waiting)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(waiting, timeout=10)
    assert ray.get(after, timeout=30) == 99  # the call behind it was not interrupted
