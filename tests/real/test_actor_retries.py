"""Actor call retries (max_task_retries, retry_exceptions), constructor errors, duplicate names."""

from __future__ import annotations

import os

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.exceptions import ActorAlreadyExistsError, ActorDiedError, RayTaskError

WAIT = 60.0


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


@ray.remote
class Flaky:
    def __init__(self):
        self.calls = 0

    def fail_twice(self):
        self.calls += 1
        if self.calls < 3:
            raise ValueError(f"attempt {self.calls}")
        return self.calls

    @ray.method(max_task_retries=5, retry_exceptions=True)
    def decorated(self):
        return self.fail_twice()


@ray.remote(max_restarts=-1)
class Mortal:
    def __init__(self, marker):
        self.marker = marker

    def pid(self):
        return os.getpid()

    def die_once(self):
        """Kill the worker on the first attempt; answer on the restarted actor."""
        if not os.path.exists(self.marker):
            with open(self.marker, "w"):
                pass
            os._exit(1)
        return "survived"

    def die(self):
        os._exit(1)


@ray.remote
class Broken:
    def __init__(self):
        raise ZeroDivisionError("no constructor for you")

    def ping(self):
        return "pong"


def test_application_errors_are_not_retried_by_default(cluster) -> None:
    f = Flaky.remote()
    with pytest.raises(ValueError, match="attempt 1"):
        ray.get(f.fail_twice.remote(), timeout=WAIT)
    # retry_exceptions without retries left does nothing either (Ray: max_task_retries=0)
    with pytest.raises(ValueError, match="attempt 2"):
        ray.get(f.fail_twice.options(retry_exceptions=True).remote(), timeout=WAIT)


def test_retry_exceptions_on_a_method_call_within_max_task_retries(cluster) -> None:
    f = Flaky.options(max_task_retries=5).remote()
    assert ray.get(f.fail_twice.options(retry_exceptions=True).remote(), timeout=WAIT) == 3
    g = Flaky.remote()
    method = g.fail_twice.options(retry_exceptions=True, max_task_retries=1)
    with pytest.raises(ValueError, match="attempt 2"):
        ray.get(method.remote(), timeout=WAIT)
    h = Flaky.remote()
    assert ray.get(h.decorated.remote(), timeout=WAIT) == 3


def test_max_task_retries_resubmits_a_call_after_the_actor_restarts(cluster, tmp_path) -> None:
    m = Mortal.options(max_task_retries=2).remote(str(tmp_path / "died"))
    first = ray.get(m.pid.remote(), timeout=WAIT)
    assert ray.get(m.die_once.remote(), timeout=WAIT) == "survived"
    assert ray.get(m.pid.remote(), timeout=WAIT) != first


def test_without_max_task_retries_a_call_fails_when_the_actor_dies(cluster, tmp_path) -> None:
    m = Mortal.remote(str(tmp_path / "died"))
    with pytest.raises(ActorDiedError):
        ray.get(m.die_once.remote(), timeout=WAIT)
    assert ray.get(m.die_once.remote(), timeout=WAIT) == "survived"  # it was restarted


def test_retries_stop_when_the_actor_is_dead_for_good(cluster) -> None:
    @ray.remote(max_restarts=1, max_task_retries=-1)
    class Doomed:
        def die(self):
            os._exit(1)

    d = Doomed.remote()
    with pytest.raises(ActorDiedError):
        ray.get(d.die.remote(), timeout=WAIT)


def test_a_failing_constructor_reaches_calls_as_actor_died_with_the_cause(cluster) -> None:
    b = Broken.remote()
    with pytest.raises(ActorDiedError) as info:
        ray.get(b.ping.remote(), timeout=WAIT)
    err = info.value
    assert err.actor_init_failed
    assert isinstance(err.cause, RayTaskError)
    assert isinstance(err.cause, ZeroDivisionError)
    assert "no constructor for you" in str(err)
    assert "creation task" in str(err)
    assert "Traceback" in str(err)  # the remote traceback
    assert "(" not in str(err).split("\n")[0][:12]  # not a raw tuple
    assert "'ZeroDivisionError', " not in str(err)


def test_a_duplicate_actor_name_raises_at_remote(cluster) -> None:
    first = Flaky.options(name="only-one").remote()
    with pytest.raises(ActorAlreadyExistsError, match="only-one") as info:
        Flaky.options(name="only-one").remote()
    assert isinstance(info.value, ValueError)
    assert "already taken" in str(info.value)
    same = Flaky.options(name="only-one", get_if_exists=True).remote()
    assert same.actor_id == first.actor_id
    ray.kill(first)


def test_duplicate_name_inside_a_worker(cluster) -> None:
    @ray.remote
    def make_twice():
        Flaky.options(name="worker-made", lifetime="detached").remote()
        try:
            Flaky.options(name="worker-made").remote()
        except ValueError as exc:
            return type(exc).__name__
        return "no error"

    assert ray.get(make_twice.remote(), timeout=WAIT) == "ActorAlreadyExistsError"
    ray.kill(ray.get_actor("worker-made"))


def test_retry_options_are_validated(cluster) -> None:
    with pytest.raises(ValueError, match="max_task_retries"):
        Flaky.options(max_task_retries=-2)
    f = Flaky.remote()
    with pytest.raises(TypeError, match="max_task_retries"):
        f.fail_twice.options(max_task_retries="3")


def test_handles_found_by_name_keep_the_actors_retry_options(cluster, tmp_path) -> None:
    m = Mortal.options(name="mortal", max_task_retries=2).remote(str(tmp_path / "died"))
    found = Mortal.options(name="mortal", get_if_exists=True).remote("unused")
    assert found.actor_id == m.actor_id
    assert ray.get(found.die_once.remote(), timeout=WAIT) == "survived"
    looked_up = ray.get_actor("mortal")
    assert looked_up._max_task_retries == 2
    ray.kill(m)
