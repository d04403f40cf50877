"""Async and threaded actors, actor retries and actor errors: twinray must behave as Ray does."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

WAIT = 60.0


def test_async_actor_calls_run_concurrently_and_await_refs(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    class Meeting:
        def __init__(self):
            self.arrived = 0
            self.everyone = asyncio.Event()

        async def meet(self, n):
            self.arrived += 1
            if self.arrived >= n:
                self.everyone.set()
            await asyncio.wait_for(self.everyone.wait(), WAIT)
            return self.arrived

        async def gather(self, n):
            return sum(await asyncio.gather(*[square.remote(i) for i in range(n)]))

        async def await_boxed(self, boxed):
            return await boxed[0]

        def sync_thread(self):
            return threading.current_thread().name

    m = Meeting.remote()
    assert ray.get([m.meet.remote(8) for _ in range(8)], timeout=WAIT) == [8] * 8
    assert ray.get(m.gather.remote(10), timeout=WAIT) == sum(i * i for i in range(10))
    assert ray.get(m.await_boxed.remote([ray.put("boxed")]), timeout=WAIT) == "boxed"
    assert ray.get(m.sync_thread.remote(), timeout=WAIT) == "AsyncIO Thread: default"


def test_threaded_actor_runs_max_concurrency_calls_at_once(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def one():
        return 1

    @ray.remote(max_concurrency=3)
    class Pool:
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=WAIT)

        def meet(self):
            self.barrier.wait()
            return ray.get(one.remote())  # nested calls from concurrent threads

    p = Pool.remote()
    assert ray.get([p.meet.remote() for _ in range(6)], timeout=WAIT) == [1] * 6


def test_driver_futures_and_awaits(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def square(x):
        return x * x

    assert square.remote(3).future().result(timeout=WAIT) == 9

    async def main():
        return await square.remote(4), await asyncio.gather(*[square.remote(i) for i in range(3)])

    assert asyncio.run(main()) == (16, [0, 1, 4])


def test_max_task_retries_and_retry_exceptions(ray_started, tmp_path) -> None:
    ray = ray_started

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Mortal:
        def die_once(self, marker):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return "survived"

    @ray.remote
    class Flaky:
        def __init__(self):
            self.calls = 0

        def fail_twice(self):
            self.calls += 1
            if self.calls < 3:
                raise ValueError(f"attempt {self.calls}")
            return self.calls

    m = Mortal.remote()
    assert ray.get(m.die_once.remote(str(tmp_path / "died")), timeout=WAIT) == "survived"
    f = Flaky.remote()
    with pytest.raises(ValueError, match="attempt 1"):
        ray.get(f.fail_twice.options(retry_exceptions=True).remote(), timeout=WAIT)
    g = Flaky.remote()
    call = g.fail_twice.options(retry_exceptions=True, max_task_retries=2)
    assert ray.get(call.remote(), timeout=WAIT) == 3


def test_constructor_error_and_duplicate_name(ray_started) -> None:
    ray = ray_started

    @ray.remote
    class Broken:
        def __init__(self):
            raise ZeroDivisionError("no constructor for you")

        def ping(self):
            return "pong"

    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    b = Broken.remote()
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        ray.get(b.ping.remote(), timeout=WAIT)
    assert info.value.actor_init_failed
    assert "creation task" in str(info.value)
    assert "no constructor for you" in str(info.value)
    first = Named.options(name="compat-dup").remote()
    assert ray.get(first.ping.remote(), timeout=WAIT) == "pong"
    with pytest.raises(ValueError, match="already taken"):
        Named.options(name="compat-dup").remote()
    ray.kill(first)
