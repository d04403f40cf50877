"""Async and threaded actors on the real runtime: concurrent calls, nested API calls, awaits."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.exceptions import ActorDiedError, TaskCancelledError

WAIT = 60.0  # generous: the machine may be loaded; nothing here waits this long when it works


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


@ray.remote
def square(x):
    return x * x


@ray.remote
def fails():
    raise KeyError("nope")


@ray.remote
class AsyncActor:
    def __init__(self):
        self.arrived = 0
        self.everyone = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def meet(self, n):
        """Return only once `n` calls are inside this method at the same time."""
        self.arrived += 1
        if self.arrived >= n:
            self.everyone.set()
        await asyncio.wait_for(self.everyone.wait(), WAIT)
        return self.arrived

    async def track(self, delay):
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(delay)
        self.running -= 1
        return self.peak

    def peak_seen(self):
        return self.peak

    def thread_name(self):
        return threading.current_thread().name

    async def async_thread_name(self):
        return threading.current_thread().name

    async def await_ref(self, boxed):
        return await boxed[0]

    async def gather_nested(self, n):
        return sum(await asyncio.gather(*[square.remote(i) for i in range(n)]))

    async def await_failure(self):
        try:
            await fails.remote()
        except KeyError:
            return "caught"
        return "no error"

    async def sleep_then(self, delay, value):
        await asyncio.sleep(delay)
        return value

    async def blocking_get(self, boxed):
        records: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record.getMessage())

        handler = Collect()
        logging.getLogger("runtime").addHandler(handler)
        try:
            value = ray.get(boxed[0])
        finally:
            logging.getLogger("runtime").removeHandler(handler)
        return value, records

    async def die(self):
        os._exit(1)


@ray.remote(max_concurrency=4)
class ThreadedActor:
    def __init__(self):
        self.barrier = threading.Barrier(4, timeout=WAIT)
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def meet(self):
        """Return only once 4 calls are inside this method at the same time."""
        return self.barrier.wait() >= 0

    def track(self, delay):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(delay)
        with self.lock:
            self.running -= 1
        return threading.current_thread().name

    def peak_seen(self):
        return self.peak

    def nested(self, i):
        ref = square.remote(i)
        ready, _ = ray.wait([ref], num_returns=1, timeout=WAIT)
        stored = ray.put(np.full(200_000, i, dtype=np.int64))  # a large object: in the arena
        return ray.get(ready[0]) + int(ray.get(stored)[0])

    def big(self, i):
        return np.full(300_000, i, dtype=np.int64)  # a result in the arena

    def boxed(self, i):
        return [ray.put(np.full(50_000, i, dtype=np.int64))]  # a ref inside the result


def test_async_actor_runs_its_calls_at_once(cluster) -> None:
    a = AsyncActor.remote()
    assert ray.get([a.meet.remote(10) for _ in range(10)], timeout=WAIT) == [10] * 10


def test_async_actor_keeps_to_max_concurrency(cluster) -> None:
    a = AsyncActor.options(max_concurrency=2).remote()
    peaks = ray.get([a.track.remote(0.02) for _ in range(12)], timeout=WAIT)
    assert max(peaks) <= 2
    assert ray.get(a.peak_seen.remote()) <= 2


def test_async_actor_methods_all_run_on_its_event_loop_thread(cluster) -> None:
    a = AsyncActor.remote()
    assert ray.get(a.thread_name.remote()) == "AsyncIO Thread: default"
    assert ray.get(a.async_thread_name.remote()) == "AsyncIO Thread: default"


def test_await_refs_inside_an_async_actor(cluster) -> None:
    a = AsyncActor.remote()
    assert ray.get(a.await_ref.remote([ray.put(5)]), timeout=WAIT) == 5
    assert ray.get(a.await_ref.remote([square.remote(6)]), timeout=WAIT) == 36
    assert ray.get(a.gather_nested.remote(20), timeout=WAIT) == sum(i * i for i in range(20))
    assert ray.get(a.await_failure.remote(), timeout=WAIT) == "caught"


def test_a_quick_call_overtakes_a_slow_one_and_results_match(cluster) -> None:
    a = AsyncActor.remote()
    slow = a.sleep_then.remote(1.0, "slow")
    quick = a.sleep_then.remote(0.0, "quick")
    ready, _ = ray.wait([slow, quick], num_returns=1, timeout=WAIT)
    assert ready == [quick]
    assert ray.get([slow, quick], timeout=WAIT) == ["slow", "quick"]


def test_blocking_get_inside_an_async_actor_warns_as_ray_does(cluster) -> None:
    a = AsyncActor.remote()
    value, records = ray.get(a.blocking_get.remote([ray.put(7)]), timeout=WAIT)
    assert value == 7
    assert any("Using blocking ray.get inside async actor" in r for r in records)


def test_cancel_a_running_async_call(cluster) -> None:
    a = AsyncActor.remote()
    ref = a.sleep_then.remote(WAIT, "never")
    other = a.sleep_then.remote(0.0, "other")
    assert ray.get(other, timeout=WAIT) == "other"  # the slow one is running by now
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=WAIT)
    assert ray.get(a.sleep_then.remote(0.0, "after"), timeout=WAIT) == "after"


def test_calls_in_flight_fail_when_an_async_actor_dies(cluster) -> None:
    a = AsyncActor.remote()
    waiting = [a.sleep_then.remote(WAIT, i) for i in range(3)]
    ray.get(a.sleep_then.remote(0.0, 0), timeout=WAIT)
    a.die.remote()
    for ref in waiting:
        with pytest.raises(ActorDiedError):
            ray.get(ref, timeout=WAIT)


def test_threaded_actor_runs_max_concurrency_calls_at_once(cluster) -> None:
    t = ThreadedActor.remote()
    assert ray.get([t.meet.remote() for _ in range(4)], timeout=WAIT) == [True] * 4
    names = ray.get([t.track.remote(0.02) for _ in range(12)], timeout=WAIT)
    assert ray.get(t.peak_seen.remote()) <= 4
    assert len(set(names)) <= 4


def test_nested_api_calls_from_concurrent_threads(cluster) -> None:
    t = ThreadedActor.remote()
    refs = [t.nested.remote(i) for i in range(12)]
    assert ray.get(refs, timeout=WAIT) == [i * i + i for i in range(12)]


def test_large_results_from_concurrent_calls(cluster) -> None:
    t = ThreadedActor.remote()
    values = ray.get([t.big.remote(i) for i in range(8)], timeout=WAIT)
    assert [int(v[0]) for v in values] == list(range(8))
    assert all(v.shape == (300_000,) and int(v[-1]) == i for i, v in enumerate(values))


def test_sync_actor_still_runs_one_call_at_a_time(cluster) -> None:
    @ray.remote
    class Serial:
        def __init__(self):
            self.running = 0
            self.peak = 0
            self.order: list[int] = []

        def track(self, i):
            self.running += 1
            self.peak = max(self.peak, self.running)
            time.sleep(0.002)
            self.order.append(i)
            self.running -= 1
            return self.peak

    s = Serial.remote()
    assert max(ray.get([s.track.remote(i) for i in range(20)], timeout=WAIT)) == 1


def test_max_concurrency_is_validated(cluster) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        ThreadedActor.options(max_concurrency=0)
    with pytest.raises(TypeError, match="max_concurrency"):
        ThreadedActor.options(max_concurrency=2.5)


def test_driver_futures_and_awaits(cluster) -> None:
    assert ray.put(3).future().result(timeout=WAIT) == 3
    assert square.remote(4).future().result(timeout=WAIT) == 16
    with pytest.raises(KeyError):
        fails.remote().future().result(timeout=WAIT)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick = asyncio.ensure_future(ticker())
        a = AsyncActor.remote()
        slow = await a.sleep_then.remote(0.3, "slow")  # the loop keeps running meanwhile
        values = await asyncio.gather(*[square.remote(i) for i in range(5)])
        tick.cancel()
        return slow, values, ticks

    slow, values, ticks = asyncio.run(main())
    assert slow == "slow"
    assert values == [0, 1, 4, 9, 16]
    assert ticks > 1


def test_cancel_an_async_call_waiting_for_its_turn(cluster) -> None:
    a = AsyncActor.options(max_concurrency=1).remote()
    running = a.sleep_then.remote(WAIT, "long")
    waiting = a.sleep_then.remote(0.0, "waiting")
    ray.cancel(waiting)
    with pytest.raises(TaskCancelledError):
        ray.get(waiting, timeout=WAIT)
    ray.cancel(running)
    with pytest.raises(TaskCancelledError):
        ray.get(running, timeout=WAIT)
    assert ray.get(a.sleep_then.remote(0.0, "next"), timeout=WAIT) == "next"


def test_refs_returned_inside_values_from_concurrent_calls(cluster) -> None:
    t = ThreadedActor.remote()
    boxes = ray.get([t.boxed.remote(i) for i in range(12)], timeout=WAIT)
    values = ray.get([box[0] for box in boxes], timeout=WAIT)
    assert [int(v[0]) for v in values] == list(range(12))
