"""Shutdown wakes a program thread blocked in next() of a generator (no hang)."""

from __future__ import annotations

import threading
import time

import runtime as ray


@ray.remote
def stalls():
    yield 1
    while True:
        time.sleep(0.05)


def test_shutdown_ends_a_stream_a_thread_is_waiting_on() -> None:
    ray.init(num_cpus=1)
    try:
        gen = stalls.remote()
        assert ray.get(next(gen), timeout=60) == 1
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(next(gen)), daemon=True)
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # blocked: the second item never comes
    finally:
        ray.shutdown()
    waiter.join(30)
    assert not waiter.is_alive()
    assert got == [gen.completed()]  # the task's (failed) return 1 is the last item
