"""runtime.util.ActorPool on the real runtime: ordering, queued submits, timeouts, errors, dead actors."""

from __future__ import annotations

import os
import time

import pytest

import runtime as ray
from runtime.util import ActorPool


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

    def die(self, v):
        os._exit(1)

    @ray.method(num_returns=2)
    def both(self, v):
        return v, -v

    def pid(self, _v=None):
        return os.getpid()


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


@pytest.fixture
def pool(cluster):
    return ActorPool([Doubler.remote(), Doubler.remote()])


def test_map_returns_results_in_value_order(pool) -> None:
    # the first value is slow: an ordered map still yields it first
    results = pool.map(
        lambda a, v: a.slow_double.remote(v, 0.5 if v == 0 else 0.0), list(range(10))
    )
    assert list(results) == [2 * v for v in range(10)]
    assert not pool.has_next()
    assert pool.has_free()


def test_map_unordered_yields_fast_results_before_a_slow_one(pool) -> None:
    results = list(
        pool.map_unordered(lambda a, v: a.slow_double.remote(v, 3.0 if v == 0 else 0.0), range(6))
    )
    assert sorted(results) == [0, 2, 4, 6, 8, 10]
    assert results[-1] == 0  # five quick calls on the other actor finish long before it


def test_calls_spread_over_actors_and_wait_for_a_free_one(cluster) -> None:
    actors = [Doubler.remote() for _ in range(3)]
    pids = set(ray.get([a.pid.remote() for a in actors]))
    pool = ActorPool(actors)
    for v in range(7):
        pool.submit(lambda a, v: a.pid.remote(v), v)
    assert not pool.has_free()  # all busy, four values waiting
    got = [pool.get_next() for _ in range(7)]
    assert set(got) == pids
    assert not pool.has_next()
    assert pool.has_free()


def test_submit_get_next_has_next_has_free_pop_idle_push(cluster) -> None:
    a1, a2 = Doubler.remote(), Doubler.remote()
    pool = ActorPool([a1])
    assert not pool.has_next()
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.has_next()
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert not pool.has_next()
    assert pool.has_free()
    assert pool.pop_idle() == a1
    assert not pool.has_free()
    pool.submit(lambda a, v: a.double.remote(v), 5)  # no actor: waits in the pool
    assert not pool.has_next()
    pool.push(a2)  # starts the waiting value at once
    assert pool.has_next()
    assert pool.get_next() == 10
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a2)
    pool.submit(lambda a, v: a.double.remote(v), 6)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a2)  # busy actors belong too
    assert pool.get_next() == 12


def test_nothing_pending_raises_stop_iteration(pool) -> None:
    with pytest.raises(StopIteration):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_get_next_timeout_keeps_the_result_pending(pool) -> None:
    pool.submit(lambda a, v: a.slow_double.remote(v, 2.0), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    with pytest.raises(TimeoutError, match="Timed out waiting for result"):
        pool.get_next(timeout=0.05)
    assert pool.get_next() == 2  # still the first result, in order
    assert pool.get_next(timeout=60) == 4


def test_get_next_ignore_if_timedout_drops_the_call(cluster) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.slow_double.remote(v, 2.0), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)  # waits for the one actor
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.05, ignore_if_timedout=True)
    # the actor went back to the pool and took the waiting value
    assert pool.has_next()
    assert pool.get_next() == 4
    assert not pool.has_next()


def test_get_next_unordered_timeout(cluster) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.slow_double.remote(v, 2.0), 1)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.05)
    assert pool.get_next_unordered(timeout=60) == 2
    pool.submit(lambda a, v: a.slow_double.remote(v, 2.0), 3)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.05, ignore_if_timedout=True)
    assert not pool.has_next()
    assert pool.has_free()


def test_get_next_after_get_next_unordered_is_refused(pool) -> None:
    pool.submit(lambda a, v: a.slow_double.remote(v, 1.0), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    assert pool.get_next_unordered() == 4
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    assert pool.get_next_unordered() == 2


def test_an_error_surfaces_at_its_result_and_the_actor_returns(cluster) -> None:
    pool = ActorPool([Doubler.remote()])
    results = pool.map(lambda a, v: a.fail_on.remote(v, 2), range(5))
    assert next(results) == 0
    assert next(results) == 2
    with pytest.raises(KeyError, match="bad value 2"):
        next(results)
    # a generator that raised is finished; the pool still holds the rest
    assert pool.has_next()
    assert [pool.get_next() for _ in range(2)] == [6, 8]
    assert pool.has_free()


def test_a_dead_actor_leaves_the_pool(cluster) -> None:
    survivor = Doubler.remote()
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.die.remote(v), 0)
    with pytest.raises(ray.ActorDiedError):
        pool.get_next()
    assert not pool.has_free()
    assert pool.pop_idle() is None
    pool.push(survivor)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]


def test_calls_with_several_returns(pool) -> None:
    pool.submit(lambda a, v: a.both.remote(v), 3)
    pool.submit(lambda a, v: a.both.remote(v), 4)
    pool.submit(lambda a, v: a.both.remote(v), 5)  # waits for an actor
    assert pool.get_next(timeout=60) == [3, -3]
    assert sorted(pool.get_next_unordered(timeout=60) for _ in range(2)) == [[4, -4], [5, -5]]


def test_map_discards_unretrieved_results(pool) -> None:
    pool.submit(lambda a, v: a.double.remote(v), 100)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3])) == [2, 4, 6]
    pool.submit(lambda a, v: a.double.remote(v), 100)
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), [1, 2, 3])) == [2, 4, 6]


def test_a_pool_inside_a_task(cluster) -> None:
    actors = [Doubler.remote(), Doubler.remote()]

    @ray.remote
    def run(actors, values):
        from runtime.util import ActorPool

        return list(ActorPool(actors).map(lambda a, v: a.double.remote(v), values))

    assert ray.get(run.remote(actors, list(range(8))), timeout=120) == [2 * v for v in range(8)]
