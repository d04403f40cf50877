"""Options, resources and runtime_env that twinray and Ray must treat the same."""

from __future__ import annotations

import os

import pytest


def _start(ray, **kwargs):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, **kwargs)


def test_unknown_init_keyword_is_a_runtime_error(ray) -> None:
    with pytest.raises(RuntimeError, match="foo_bar_typo"):
        ray.init(foo_bar_typo=1)
    assert not ray.is_initialized()


def test_unknown_and_bad_options_are_value_errors(ray) -> None:
    def f():
        return 1

    class C:
        pass

    with pytest.raises(ValueError, match="num_cpu"):
        ray.remote(num_cpu=1)(f)
    with pytest.raises(ValueError, match="num_cpu"):
        ray.remote(num_cpu=1)(C)
    with pytest.raises(ValueError, match="num_gpu"):
        ray.remote(f).options(num_gpu=1)
    with pytest.raises(ValueError):
        ray.remote(num_cpus=-1)(f)
    with pytest.raises(ValueError):
        ray.remote(f).options(resources={"CPU": 1})
    with pytest.raises(TypeError):
        ray.remote(f).options(num_returns=1.5)
    with pytest.raises(TypeError):
        ray.remote(f).options(max_retries=1.5)


def test_gpu_ids_of_a_one_gpu_task(ray) -> None:
    _start(ray, num_gpus=2)

    @ray.remote(num_gpus=1)
    def ids():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    @ray.remote(num_gpus=2)
    def both():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    gpu_ids, visible = ray.get(ids.remote())
    assert len(gpu_ids) == 1 and gpu_ids[0] in (0, 1)
    assert visible == str(gpu_ids[0])
    assert ray.get(both.remote()) == ([0, 1], "0,1")
    assert ray.get_gpu_ids() == []


def test_assigned_resources(ray) -> None:
    _start(ray, num_gpus=1)

    @ray.remote(num_gpus=0.5)
    def given():
        return ray.get_runtime_context().get_assigned_resources()

    @ray.remote
    class Plain:
        def given(self):
            return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(given.remote()) == {"CPU": 1.0, "GPU": 0.5}
    assert ray.get(Plain.remote().given.remote()) == {}


def test_env_vars_in_a_task_and_not_after_it(ray) -> None:
    _start(ray)

    @ray.remote
    def read():
        return os.environ.get("TWINRAY_COMPAT_VAR", "UNSET")

    env = {"env_vars": {"TWINRAY_COMPAT_VAR": "set"}}
    assert ray.get(read.options(runtime_env=env).remote()) == "set"
    assert ray.get([read.remote() for _ in range(4)]) == ["UNSET"] * 4

    @ray.remote(runtime_env=env)
    class Holder:
        def read(self):
            return os.environ.get("TWINRAY_COMPAT_VAR", "UNSET")

    assert ray.get(Holder.remote().read.remote()) == "set"


def test_named_actors_live_in_namespaces(ray) -> None:
    _start(ray, namespace="team")

    @ray.remote
    class Named:
        def __init__(self, tag):
            self.tag = tag

        def ping(self):
            return self.tag

    a = Named.options(name="svc").remote("job")
    b = Named.options(name="svc", namespace="other").remote("other")
    assert ray.get([a.ping.remote(), b.ping.remote()]) == ["job", "other"]
    assert ray.get(ray.get_actor("svc").ping.remote()) == "job"
    assert ray.get(ray.get_actor("svc", namespace="team").ping.remote()) == "job"
    assert ray.get(ray.get_actor("svc", namespace="other").ping.remote()) == "other"
    with pytest.raises(ValueError):
        ray.get_actor("svc", namespace="nowhere")
    with pytest.raises(ValueError):
        ray.get_actor("missing")


def test_retry_exceptions_list_retries_only_the_listed_classes(ray) -> None:
    _start(ray)

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
        ray.get(flaky.remote(retried, KeyError))
    with pytest.raises(ValueError):
        ray.get(flaky.remote(not_retried, ValueError))
    assert ray.get(retried.bump.remote()) == 4
    assert ray.get(not_retried.bump.remote()) == 2
