"""`ray.util.ActorPool` and `ray.util.queue.Queue`: the same programs under twinray and Ray."""

from __future__ import annotations

import importlib
import queue as stdlib_queue
import time

import pytest


def _util(ray, name):
    return importlib.import_module(f"{ray.__name__}.util.{name}")


def _doubler(ray):
    @ray.remote
    class Doubler:
        def double(self, v):
            return 2 * v

        def slow_double(self, v, seconds):
            time.sleep(seconds)
            return 2 * v

        def fail_on(self, v, bad):
            if v == bad:
                raise KeyError(f"bad value {v}")
            return 2 * v

    return Doubler


def test_actor_pool_map_and_map_unordered(ray_started) -> None:
    ray = ray_started
    Doubler = _doubler(ray)
    pool = ray.util.ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4])) == [2, 4, 6, 8]
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), range(5))) == [
        0,
        2,
        4,
        6,
        8,
    ]


def test_actor_pool_submit_and_the_idle_set(ray_started) -> None:
    ray = ray_started
    Doubler = _doubler(ray)
    a1, a2 = Doubler.remote(), Doubler.remote()
    pool = ray.util.ActorPool([a1])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.has_next() and not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert not pool.has_next() and pool.has_free()
    assert pool.pop_idle() == a1
    pool.submit(lambda a, v: a.double.remote(v), 5)  # waits for an actor
    assert not pool.has_next()
    pool.push(a2)
    assert pool.get_next() == 10
    with pytest.raises(ValueError):
        pool.push(a2)
    with pytest.raises(StopIteration):
        pool.get_next()


def test_actor_pool_timeouts(ray_started) -> None:
    ray = ray_started
    Doubler = _doubler(ray)
    pool = ray.util.ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.slow_double.remote(v, 2.0), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.05)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.05, ignore_if_timedout=True)
    assert pool.get_next(timeout=60) == 4
    pool.submit(lambda a, v: a.slow_double.remote(v, 1.0), 3)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.05)
    assert pool.get_next_unordered() == 6


def test_actor_pool_error_surfaces_at_its_result(ray_started) -> None:
    ray = ray_started
    Doubler = _doubler(ray)
    pool = ray.util.ActorPool([Doubler.remote()])
    for v in range(4):
        pool.submit(lambda a, v: a.fail_on.remote(v, 1), v)
    assert pool.get_next() == 0
    with pytest.raises(KeyError):
        pool.get_next()
    assert [pool.get_next(), pool.get_next()] == [4, 6]
    assert pool.has_free()


def test_queue_fifo_bounds_and_batches(ray_started) -> None:
    ray = ray_started
    qmod = _util(ray, "queue")
    assert issubclass(qmod.Empty, stdlib_queue.Empty)
    assert issubclass(qmod.Full, stdlib_queue.Full)
    q = qmod.Queue(maxsize=2)
    assert q.empty() and not q.full() and len(q) == 0
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == q.size() == 2
    with pytest.raises(qmod.Full):
        q.put_nowait(3)
    with pytest.raises(qmod.Full):
        q.put(3, timeout=0.05)
    assert q.get() == 1
    assert q.get_nowait() == 2
    with pytest.raises(qmod.Empty):
        q.get_nowait()
    with pytest.raises(qmod.Empty):
        q.get(timeout=0.05)
    q.put_nowait_batch([5, 6])
    with pytest.raises(qmod.Full):
        q.put_nowait_batch([7])
    with pytest.raises(qmod.Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [5, 6]
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    q.shutdown()
    assert q.actor is None


def test_queue_between_tasks_and_the_driver(ray_started) -> None:
    ray = ray_started
    qmod = _util(ray, "queue")
    q = qmod.Queue(maxsize=1)

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i)
        return n

    @ray.remote
    def consume(q):
        return q.get(timeout=60)

    done = produce.remote(q, 4)
    ready, _ = ray.wait([done], timeout=0.5)
    assert not ready  # blocked on the full queue
    assert [q.get(timeout=60) for _ in range(3)] == [0, 1, 2]
    assert ray.get(consume.remote(q), timeout=60) == 3
    assert ray.get(done, timeout=60) == 4
    waiting = consume.remote(q)
    q.put("late")
    assert ray.get(waiting, timeout=60) == "late"
    q.shutdown()
