"""Actors on the real single-node runtime: dedicated workers, ordered calls, names, kill, restarts."""

from __future__ import annotations

import os

import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def incr(self, k=1):
        self.n += k
        return self.n

    def value(self):
        return self.n

    @ray.method(num_returns=2)
    def pair(self):
        return self.n, -self.n

    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(1)

    def fail(self):
        raise KeyError("no such thing")


@ray.remote
class Broken:
    def __init__(self):
        raise RuntimeError("constructor exploded")

    def ping(self):
        return "pong"


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def test_calls_run_in_submission_order_and_keep_state(cluster) -> None:
    c = Counter.remote(10)
    assert ray.get([c.incr.remote() for _ in range(50)]) == list(range(11, 61))
    assert ray.get(c.incr.remote(k=ray.put(5))) == 65
    pool_pids = {w.pid for w in cluster.pool.workers if not w.actor_id}
    assert ray.get(c.pid.remote()) not in pool_pids  # a dedicated worker process


def test_method_num_returns_by_decorator_and_options(cluster) -> None:
    c = Counter.remote(3)
    a, b = c.pair.remote()
    assert ray.get([a, b]) == [3, -3]
    x, y = c.incr.options(num_returns=1).remote(), c.pair.options(num_returns=2).remote()
    assert ray.get(x) == 4 and ray.get(y) == [4, -4]


def test_method_exception_is_reraised_and_the_actor_lives_on(cluster) -> None:
    c = Counter.remote()
    with pytest.raises(KeyError, match="no such thing"):
        ray.get(c.fail.remote())
    assert ray.get(c.incr.remote()) == 1
    with pytest.raises(AttributeError):
        c.no_such_method  # noqa: B018


def test_named_actors_get_actor_and_get_if_exists(cluster) -> None:
    c = Counter.options(name="registry").remote(100)
    assert ray.get(c.incr.remote()) == 101
    same = ray.get_actor("registry")
    assert ray.get(same.incr.remote()) == 102
    again = Counter.options(name="registry", get_if_exists=True).remote(0)
    assert again.actor_id == c.actor_id and ray.get(again.value.remote()) == 102
    with pytest.raises(ValueError, match="nobody"):
        ray.get_actor("nobody")
    ray.kill(c)
    with pytest.raises(ray.ActorDiedError):
        ray.get(same.incr.remote(), timeout=10)


def test_kill_fails_later_calls_with_actor_died(cluster) -> None:
    c = Counter.options(max_restarts=3).remote()
    assert ray.get(c.incr.remote()) == 1
    ray.kill(c, no_restart=True)
    with pytest.raises(ray.ActorDiedError):
        ray.get(c.incr.remote(), timeout=10)


def test_a_crashed_actor_is_restarted_then_dies_for_good(cluster) -> None:
    c = Counter.options(max_restarts=1).remote(7)
    first = ray.get(c.pid.remote())
    with pytest.raises(ray.ActorDiedError, match="died"):
        ray.get(c.crash.remote(), timeout=10)
    assert ray.get(c.value.remote(), timeout=10) == 7  # constructor re-run
    assert ray.get(c.pid.remote()) != first
    with pytest.raises(ray.ActorDiedError):
        ray.get(c.crash.remote(), timeout=10)
    with pytest.raises(ray.ActorDiedError):
        ray.get(c.value.remote(), timeout=10)  # restarts used up


def test_a_constructor_error_makes_calls_fail(cluster) -> None:
    b = Broken.remote()
    with pytest.raises(ray.ActorDiedError, match="constructor"):
        ray.get(b.ping.remote(), timeout=10)


def test_actor_classes_cannot_be_called_directly(cluster) -> None:
    with pytest.raises(TypeError, match="remote"):
        Counter()
    c = Counter.remote()
    with pytest.raises(TypeError, match="remote"):
        c.incr()
    ray.get(c.incr.remote())  # started: its creation holds no CPU into the next test


def test_default_actors_hold_no_cpu_and_explicit_ones_do(cluster) -> None:
    import time

    def cpus(expected: float) -> float:
        """Available CPUs once they reach `expected` (finished work and actors created by
        earlier tests hand theirs back), or what is available after 20 s."""
        deadline = time.monotonic() + 20
        value = ray.available_resources().get("CPU", 0.0)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.02)
            value = ray.available_resources().get("CPU", 0.0)
        return value

    base = ray.cluster_resources()["CPU"]
    assert cpus(base) == base
    default = Counter.remote()
    ray.get(default.incr.remote())
    assert cpus(base) == base
    holding = Counter.options(num_cpus=1).remote()
    ray.get(holding.incr.remote())
    assert cpus(base - 1) == base - 1
    time.sleep(0.2)  # holding one CPU is steady, not a placement still in progress
    assert ray.available_resources().get("CPU", 0.0) == base - 1
    ray.kill(holding)
    ray.get(default.incr.remote())
    assert cpus(base) == base
    with pytest.raises(ray.ActorDiedError, match="CPU"):
        ray.get(Counter.options(num_cpus=64).remote().incr.remote(), timeout=10)
