"""Every keyword of init, remote, .options() and method either works or raises a clear error."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import runtime as ray
from runtime.init_options import INIT_OPTIONS, NO_EFFECT_HERE
from runtime.options import ACTOR_OPTIONS, METHOD_OPTIONS, NOT_WIRED, TASK_OPTIONS


@pytest.fixture
def started():
    ray.init(num_cpus=2, num_gpus=1, object_store_memory=64 << 20)
    yield ray
    ray.shutdown()


def _f():
    return 1


class _C:
    def m(self):
        return 1


# -- init -------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["foo_bar_typo", "num_cpu", "object_store_mem"])
def test_init_unknown_keyword_names_it_and_the_closest_and_is_both_type_and_runtime_error(
    keyword,
) -> None:
    with pytest.raises(ray.InitOptionError) as info:
        ray.init(**{keyword: 1})
    err = info.value
    assert isinstance(err, TypeError) and isinstance(err, RuntimeError)
    assert keyword in str(err) and "Valid ones are" in str(err)
    if keyword == "num_cpu":
        assert "did you mean 'num_cpus'" in str(err)
    if keyword == "object_store_mem":
        assert "did you mean 'object_store_memory'" in str(err)
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("auto", "could not find any running twinray cluster"),
        ("127.0.0.1:1", "could not connect"),
        ("ray://head:10001", "no client mode"),
        ("head", "expected 'HOST:PORT'"),
    ],
)
def test_init_with_an_address_where_no_cluster_runs_is_a_connection_error(
    address, says, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TWINRAY_SESSION_ROOT", str(tmp_path))  # no session here
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN", "0" * 64)
    monkeypatch.delenv("TWINRAY_ADDRESS", raising=False)
    with pytest.raises(ray.MultiNodeNotAvailableError, match=says):
        ray.init(address=address)
    with pytest.raises(ConnectionError):
        ray.init(address)
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_cpus": -1},
        {"num_gpus": 1.5},
        {"object_store_memory": 0},
        {"resources": {"CPU": 2}},
        {"resources": {"memory": 2}},
        {"ignore_reinit_error": "yes"},
        {"logging_level": "loud"},
        {"scheduling_policy": "nope"},
        {"_memory": -5},
        {"spill_dir": "/definitely/not/here"},
        {"allow_multiple": True},
        {"storage": "/tmp/x"},
    ],
)
def test_init_bad_values_raise_value_errors(kwargs) -> None:
    with pytest.raises(ValueError):
        ray.init(**kwargs)
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"include_dashboard": True},
        {"dashboard_port": 8265},
        {"local_mode": True},
        {"labels": {"zone": "a"}},
        {"enable_resource_isolation": True},
        {"_system_config": {"object_timeout_milliseconds": 1}},
        {"_node_ip_address": "10.0.0.1"},
        {"_redis_password": "secret"},
        {"job_config": object()},
    ],
)
def test_init_values_asking_for_what_twinray_lacks_raise_not_supported(kwargs) -> None:
    with pytest.raises(ray.OptionNotSupportedError) as info:
        ray.init(**kwargs)
    assert isinstance(info.value, NotImplementedError)
    assert next(iter(kwargs)) in str(info.value)
    assert not ray.is_initialized()


def test_init_accepts_ray_keywords_that_mean_nothing_on_one_node(tmp_path) -> None:
    ctx = ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        dashboard_port=None,
        local_mode=False,
        configure_logging=True,
        logging_level=logging.WARNING,
        log_to_driver=True,
        namespace="ns",
        _temp_dir=str(tmp_path),
        _redis_password="",
        _skip_env_hook=True,
        _system_config={},
    )
    try:
        assert ctx["num_cpus"] == 1
        assert logging.getLogger("runtime").level == logging.WARNING
        assert ray.get(ray.remote(_f).remote()) == 1
    finally:
        ray.shutdown()
    assert set(NO_EFFECT_HERE).isdisjoint(INIT_OPTIONS)


def test_init_spill_directory_spellings_choose_the_spill_file_directory(tmp_path) -> None:
    ray.init(num_cpus=1, object_spilling_directory=str(tmp_path))
    try:
        assert ray.api._node.objects.spill.directory == str(tmp_path)
    finally:
        ray.shutdown()


def test_init_memory_sets_the_nodes_memory_resource() -> None:
    ray.init(num_cpus=1, _memory=1 << 30)
    try:
        assert ray.cluster_resources()["memory"] == float(1 << 30)
    finally:
        ray.shutdown()


def test_log_to_driver_false_silences_worker_output() -> None:
    program = textwrap.dedent(
        """
        import runtime as ray

        @ray.remote
        def speak(x):
            print("worker says", x, flush=True)
            return x

        for quiet in (False, True):
            ray.init(num_cpus=1, log_to_driver=not quiet)
            assert ray.get(speak.remote("quiet" if quiet else "loud")) in ("quiet", "loud")
            ray.shutdown()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "worker says loud" in done.stdout
    assert "worker says quiet" not in done.stdout + done.stderr


# -- remote and options ----------------------------------------------------------------------


@pytest.mark.parametrize("target", [_f, _C])
def test_unknown_option_raises_an_error_that_is_both_value_and_type_error(target) -> None:
    with pytest.raises(ray.InvalidOptionError) as info:
        ray.remote(num_cpu=1)(target)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, TypeError)
    assert "num_cpu" in str(err) and "did you mean 'num_cpus'" in str(err)
    remote = ray.remote(target)
    with pytest.raises(ValueError, match="num_gpu"):
        remote.options(num_gpu=1)


def test_task_only_and_actor_only_options_are_refused_on_the_other_kind() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        ray.remote(max_restarts=1)(_f)
    with pytest.raises(ValueError, match="num_returns"):
        ray.remote(num_returns=2)(_C)
    with pytest.raises(ValueError, match="max_calls"):
        ray.remote(_f).options(max_calls=1)  # only on @remote, as in Ray


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_cpus": -1},
        {"num_gpus": 1.5},
        {"memory": -1},
        {"num_cpus": 0.00001},
        {"resources": {"GPU": 1}},
        {"resources": {"x": -2}},
        {"num_returns": -1},
        {"num_returns": 1.5},
        {"max_retries": 1.5},
        {"max_retries": -2},
        {"retry_exceptions": "yes"},
        {"name": 3},
        {"object_store_memory": 1},
        {"runtime_env": "not a dict"},
        {"scheduling_strategy": "EVERYWHERE"},
    ],
)
def test_bad_task_option_values_raise(kwargs) -> None:
    with pytest.raises(ray.InvalidOptionError):
        ray.remote(**kwargs)(_f)
    with pytest.raises(ray.InvalidOptionError):
        ray.remote(_f).options(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_restarts": -2},
        {"lifetime": "forever"},
        {"get_if_exists": True},  # without a name
        {"num_cpus": "1"},
        {"max_concurrency": 0},
    ],
)
def test_bad_actor_option_values_raise(kwargs) -> None:
    with pytest.raises(ray.InvalidOptionError):
        ray.remote(**kwargs)(_C)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("task", {"max_calls": 2}),
        ("task", {"_generator_backpressure_num_objects": 4}),
        ("task", {"label_selector": {"zone": "a"}}),
        ("actor", {"concurrency_groups": {"io": 2}}),
        ("actor", {"max_pending_calls": 3}),
    ],
)
def test_options_not_provided_yet_raise_not_supported_where_they_are_passed(kind, kwargs) -> None:
    target = _f if kind == "task" else _C
    with pytest.raises(ray.OptionNotSupportedError) as info:
        ray.remote(**kwargs)(target)
    assert isinstance(info.value, NotImplementedError)
    assert next(iter(kwargs)) in str(info.value)


def test_defaults_of_options_not_provided_yet_are_accepted() -> None:
    ray.remote(scheduling_strategy="DEFAULT", placement_group=None, max_calls=0)(_f)
    ray.remote(max_concurrency=1, max_task_retries=0, namespace=None)(_C)


def test_every_not_wired_option_is_a_known_keyword() -> None:
    for kind, table in (
        ("task", TASK_OPTIONS),
        ("actor", ACTOR_OPTIONS),
        ("method", METHOD_OPTIONS),
    ):
        assert set(NOT_WIRED[kind]) <= set(table), kind


def test_actor_object_store_memory_is_accepted_with_rays_deprecation_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ray.remote(object_store_memory=1 << 20)(_C)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_method_decorator_and_method_options_are_checked(started) -> None:
    with pytest.raises(ray.InvalidOptionError, match="num_return"):
        ray.method(num_return=2)
    with pytest.raises(ray.OptionNotSupportedError):
        ray.method(concurrency_group="io")
    with pytest.raises(ray.OptionNotSupportedError):
        ray.method(retry_exceptions=[ValueError])

    @ray.remote
    class Pairs:
        @ray.method(num_returns=2)
        def two(self):
            return 1, 2

        @ray.method
        def one(self):
            return 1

    p = Pairs.remote()
    assert ray.get(p.two.remote()) == [1, 2]
    assert ray.get(p.one.remote()) == 1
    assert ray.get(p.two.options(num_returns=1).remote()) == (1, 2)
    with pytest.raises(TypeError, match="foo"):
        p.one.options(foo=1)
    with pytest.raises(ValueError):
        p.one.options(num_returns=-1)


def test_memory_and_accelerator_type_are_resources(started) -> None:
    @ray.remote(memory=1 << 20)
    def given():
        return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(given.remote(), timeout=30) == {"CPU": 1.0, "memory": float(1 << 20)}
    with pytest.raises(ray.TaskUnschedulableError, match="memory"):
        ray.get(given.options(memory=1 << 60).remote(), timeout=30)
    with pytest.raises(ray.TaskUnschedulableError, match="accelerator_type:A100"):
        ray.get(given.options(accelerator_type="A100").remote(), timeout=30)


def test_actor_resources_follow_rays_defaults(started) -> None:
    @ray.remote
    class Probe:
        def given(self):
            return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(Probe.remote().given.remote(), timeout=30) == {}
    assert ray.get(Probe.options(num_gpus=1).remote().given.remote(), timeout=30) == {
        "CPU": 1.0,
        "GPU": 1.0,
    }


def test_get_actor_in_another_namespace_finds_nothing() -> None:
    ray.init(num_cpus=1, namespace="team")
    try:

        @ray.remote
        class Named:
            def ping(self):
                return "pong"

        @ray.remote
        def lookup(name, namespace):
            return ray.get(ray.get_actor(name, namespace=namespace).ping.remote())

        Named.options(name="svc").remote()
        assert ray.get(ray.get_actor("svc").ping.remote(), timeout=30) == "pong"
        assert ray.get(ray.get_actor("svc", namespace="team").ping.remote(), timeout=30) == "pong"
        with pytest.raises(ValueError, match="namespace 'elsewhere'"):
            ray.get_actor("svc", namespace="elsewhere")
        Named.options(name="svc", namespace="elsewhere").remote()  # same name, other namespace
        assert ray.get(ray.get_actor("svc", namespace="elsewhere").ping.remote()) == "pong"
        assert ray.get(lookup.remote("svc", "elsewhere"), timeout=30) == "pong"
        assert ray.get(lookup.remote("svc", None), timeout=30) == "pong"
    finally:
        ray.shutdown()


def test_memory_limits_how_many_tasks_run_at_once() -> None:
    ray.init(num_cpus=2, _memory=100)
    try:

        @ray.remote(memory=60)
        def span():
            start = time.monotonic()
            time.sleep(0.3)
            return start, time.monotonic()

        (a0, a1), (b0, b1) = ray.get([span.remote(), span.remote()], timeout=60)
        assert a1 <= b0 or b1 <= a0  # 2 x 60 > 100: never both at once
        assert ray.get(span.options(memory=40).remote(), timeout=60)
    finally:
        ray.shutdown()


def test_retry_exceptions_as_a_list_retries_only_those_classes(started) -> None:
    @ray.remote
    class Tally:
        def __init__(self):
            self.n = 0

        def bump(self):
            self.n += 1
            return self.n

    @ray.remote(max_retries=2, retry_exceptions=[KeyError])
    def flaky(tally, exc):
        ray.get(tally.bump.remote())
        raise exc("boom")

    retried, not_retried = Tally.remote(), Tally.remote()
    with pytest.raises(KeyError):
        ray.get(flaky.remote(retried, KeyError), timeout=60)
    with pytest.raises(ValueError):
        ray.get(flaky.remote(not_retried, ValueError), timeout=60)
    assert ray.get(retried.bump.remote(), timeout=30) == 4  # 1 run + 2 retries, then this
    assert ray.get(not_retried.bump.remote(), timeout=30) == 2  # 1 run, then this
