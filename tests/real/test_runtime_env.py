"""runtime_env: env_vars, working_dir and py_modules apply to a body and never leak to the next one."""

from __future__ import annotations

import os

import pytest

import runtime as ray


@pytest.fixture
def started():
    ray.init(num_cpus=1)  # one worker: every task runs on the same process
    yield ray
    ray.shutdown()


@ray.remote
def probe(key="TW_VAR"):
    import sys

    return os.environ.get(key, "UNSET"), os.getcwd(), list(sys.path[:3])


def test_env_vars_are_set_for_the_task_and_restored_after_it(started) -> None:
    env = {"env_vars": {"TW_VAR": "one"}}
    value, _, _ = ray.get(probe.options(runtime_env=env).remote(), timeout=30)
    assert value == "one"
    assert ray.get(probe.remote(), timeout=30)[0] == "UNSET"  # same worker, nothing left


def test_env_vars_last_an_actors_lifetime(started) -> None:
    @ray.remote(runtime_env={"env_vars": {"TW_VAR": "actor"}})
    class Holder:
        def read(self):
            return os.environ.get("TW_VAR", "UNSET")

    holder = Holder.remote()
    assert ray.get([holder.read.remote() for _ in range(3)], timeout=30) == ["actor"] * 3


def test_working_dir_is_the_cwd_and_importable_and_neither_leaks(started, tmp_path) -> None:
    (tmp_path / "tw_helper_mod.py").write_text("VALUE = 42\n")

    @ray.remote
    def use_helper():
        import tw_helper_mod

        return tw_helper_mod.VALUE, os.getcwd()

    @ray.remote
    def try_import():
        try:
            import tw_helper_mod  # noqa: F401
        except ImportError:
            return "missing"
        return "found"

    env = {"working_dir": str(tmp_path)}
    assert ray.get(use_helper.options(runtime_env=env).remote(), timeout=30) == (42, str(tmp_path))
    assert ray.get(try_import.remote(), timeout=30) == "missing"
    assert ray.get(probe.remote(), timeout=30)[1] != str(tmp_path)


def test_py_modules_put_packages_on_the_path(started, tmp_path) -> None:
    pkg = tmp_path / "tw_pkg_example"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("NAME = 'pkg'\n")

    @ray.remote
    def use_pkg():
        import tw_pkg_example

        return tw_pkg_example.NAME

    assert ray.get(use_pkg.options(runtime_env={"py_modules": [str(pkg)]}).remote()) == "pkg"


def test_init_runtime_env_is_inherited_and_merged_with_the_tasks() -> None:
    ray.init(num_cpus=1, runtime_env={"env_vars": {"TW_VAR": "job", "TW_OTHER": "job"}})
    try:

        @ray.remote
        def both():
            return os.environ.get("TW_VAR"), os.environ.get("TW_OTHER")

        @ray.remote
        def nested():
            return ray.get(both.remote())

        assert ray.get(both.remote(), timeout=30) == ("job", "job")
        task_env = {"env_vars": {"TW_VAR": "task"}}
        assert ray.get(both.options(runtime_env=task_env).remote(), timeout=30) == ("task", "job")
        # a task submitted from a task inherits its parent's runtime_env
        assert ray.get(nested.options(runtime_env=task_env).remote(), timeout=30) == (
            "task",
            "job",
        )
    finally:
        ray.shutdown()


@pytest.mark.parametrize("field", ["pip", "conda", "uv", "container", "image_uri"])
def test_fields_that_build_environments_raise_where_they_are_passed(field) -> None:
    with pytest.raises(ray.RuntimeEnvNotSupportedError, match=field):
        probe.options(runtime_env={field: ["x"]})
    with pytest.raises(ray.RuntimeEnvNotSupportedError):
        ray.init(runtime_env={field: ["x"]})
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "env",
    [
        {"no_such_field": 1},
        {"env_vars": {"A": 1}},
        {"env_vars": ["A"]},
        {"working_dir": "/definitely/not/a/dir"},
        {"py_modules": "/tmp"},
        {"config": {"unknown": 1}},
    ],
)
def test_bad_runtime_envs_raise(env) -> None:
    with pytest.raises(ray.InvalidOptionError):
        probe.options(runtime_env=env)


def test_remote_working_dirs_are_refused() -> None:
    with pytest.raises(ray.RuntimeEnvNotSupportedError, match="local directories"):
        probe.options(runtime_env={"working_dir": "s3://bucket/code.zip"})


def test_runtime_env_class_is_a_checked_dict(started) -> None:
    from runtime.runtime_env import RuntimeEnv

    env = RuntimeEnv(env_vars={"TW_VAR": "cls"})
    assert env == {"env_vars": {"TW_VAR": "cls"}}
    assert ray.get(probe.options(runtime_env=env).remote(), timeout=30)[0] == "cls"
    with pytest.raises(ray.RuntimeEnvNotSupportedError):
        RuntimeEnv(pip=["requests"])


def test_generator_tasks_refuse_a_runtime_env_rather_than_drop_it(started) -> None:
    @ray.remote
    def count(n):
        yield from range(n)

    with pytest.raises(ray.OptionNotSupportedError, match="generator"):
        count.options(runtime_env={"env_vars": {"TW_VAR": "x"}}).remote(2)
    assert [ray.get(r) for r in count.remote(2)] == [0, 1]
