"""`runtime_env`: checking it where it is passed, merging job/parent/task levels, applying it in a worker.

Supported fields: `env_vars` (set for the task, or for an actor's lifetime), `working_dir`
(a local directory: put first on `sys.path` and made the current directory while the task
runs; used in place, not copied as Ray does), `py_modules` (local package or module
directories, or imported modules, whose parent directories go on `sys.path`). What a task
changed is undone when it ends, so a worker shared by tasks carries nothing to the next one
(modules imported from those directories are dropped from `sys.modules` too). `config`
accepts Ray's `RuntimeEnvConfig` keys, which only tune the set-up Ray does (timeouts, eager
install) and have nothing to act on here.

Fields that need an environment built (`pip`, `conda`, `uv`, `container`, `image_uri`, ...)
raise `RuntimeEnvNotSupportedError` at the call that passes them; unknown fields raise
`InvalidOptionError` (Ray would pass them to a plugin: twinray has none).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from runtime.exceptions import InvalidOptionError, RuntimeEnvNotSupportedError

__all__ = [
    "RuntimeEnv",
    "SUPPORTED_FIELDS",
    "UNSUPPORTED_FIELDS",
    "TaskEnv",
    "current_gpu_ids",
    "current_runtime_env",
    "enter",
    "leave",
    "merge_runtime_env",
    "refuse_generator_context",
    "validate_runtime_env",
]

SUPPORTED_FIELDS = ("env_vars", "working_dir", "py_modules", "config")
UNSUPPORTED_FIELDS = (
    "pip",
    "conda",
    "uv",
    "container",
    "image_uri",
    "java_jars",
    "mpi",
    "nsight",
    "py_executable",
    "rocprof_sys",
    "worker_process_setup_hook",
    "excludes",
)
_CONFIG_KEYS = ("setup_timeout_seconds", "eager_install", "log_files")


class RuntimeEnv(dict):  # type: ignore[type-arg]
    """Ray's `ray.runtime_env.RuntimeEnv`: a dict of runtime_env fields, checked when built.

    `RuntimeEnv(env_vars={"A": "1"}, working_dir="src")` is the same as passing the dict.
    """

    def __init__(self, **fields: Any) -> None:
        super().__init__({k: v for k, v in fields.items() if v is not None})
        validate_runtime_env(self)


def validate_runtime_env(env: Any) -> dict[str, Any] | None:
    """Check a `runtime_env` and return it normalized (absolute paths), or None for none."""
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise InvalidOptionError(
            f"runtime_env must be a dict (or ray.runtime_env.RuntimeEnv), got {type(env).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in env.items():
        if key in UNSUPPORTED_FIELDS:
            raise RuntimeEnvNotSupportedError(
                f"runtime_env[{key!r}] is not supported by twinray: it builds no environments "
                f"(supported fields: {', '.join(SUPPORTED_FIELDS)})"
            )
        if key not in SUPPORTED_FIELDS:
            raise InvalidOptionError(
                f"unknown runtime_env field {key!r}; twinray supports "
                f"{', '.join(SUPPORTED_FIELDS)} (and refuses {', '.join(UNSUPPORTED_FIELDS)})"
            )
        if value is None:
            continue
        out[key] = _CHECKS[key](value)
    return out or None


def _env_vars(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"runtime_env['env_vars'] must be of type Dict[str, str], got {type(value).__name__}"
        )
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidOptionError(
                "runtime_env['env_vars'] must be of type Dict[str, str], but the value "
                f"{k!r}: {v!r} is not a str -> str pair"
            )
    return dict(value)


def _local_dir(what: str, value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InvalidOptionError(f"{what} must be a path (str), got {type(value).__name__}")
    if "://" in value or value.endswith((".zip", ".whl")):
        raise RuntimeEnvNotSupportedError(
            f"{what}={value!r}: only local directories are supported (no URIs or archives)"
        )
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isdir(path):
        raise InvalidOptionError(f"{what}={value!r}: no such local directory")
    return path


def _working_dir(value: Any) -> str:
    return _local_dir("runtime_env['working_dir']", value)


def _py_modules(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise InvalidOptionError(
            f"runtime_env['py_modules'] must be a list, got {type(value).__name__}"
        )
    paths = []
    for item in value:
        if isinstance(item, ModuleType):
            source = getattr(item, "__file__", None)
            if source is None:
                raise InvalidOptionError(f"py_modules: module {item.__name__} has no file")
            if os.path.basename(source) == "__init__.py":
                source = os.path.dirname(source)
            paths.append(os.path.abspath(source))
            continue
        paths.append(_local_dir("runtime_env['py_modules'] entry", item))
    return paths


def _config(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"runtime_env['config'] must be a dict, got {type(value).__name__}"
        )
    unknown = set(value) - set(_CONFIG_KEYS)
    if unknown:
        raise InvalidOptionError(
            f"unknown runtime_env['config'] key(s) {sorted(unknown)}; known: {list(_CONFIG_KEYS)}"
        )
    return dict(value)


_CHECKS = {
    "env_vars": _env_vars,
    "working_dir": _working_dir,
    "py_modules": _py_modules,
    "config": _config,
}


def merge_runtime_env(
    parent: dict[str, Any] | None, child: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Ray's inheritance: the child's fields override the parent's; `env_vars` merge by key."""
    if not parent:
        return child
    if not child:
        return parent
    merged = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        merged["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return merged


def refuse_generator_context(name: str, options: Any, parent: dict[str, Any] | None) -> None:
    """Generator tasks do not set up a runtime_env or GPU ids yet: refuse rather than drop."""
    from runtime.exceptions import OptionNotSupportedError

    if options.runtime_env or parent or options.num_gpus:
        raise OptionNotSupportedError(
            f"{name}: runtime_env and GPUs for generator tasks are not available yet in twinray"
        )


# -- the worker side ----------------------------------------------------------------------


@dataclass(slots=True)
class TaskEnv:
    """What runs a body in a worker: its runtime_env and assigned resource instances."""

    runtime_env: dict[str, Any] | None = None
    gpu_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Undo:
    """How to put the worker back as it was before `enter`."""

    previous: TaskEnv
    env: dict[str, str | None] = field(default_factory=dict)
    cwd: str | None = None
    path: list[str] = field(default_factory=list)
    dirs: tuple[str, ...] = ()


_current = TaskEnv()


def current_runtime_env() -> dict[str, Any] | None:
    """The runtime_env of the body running in this process (None in the driver)."""
    return _current.runtime_env


def current_gpu_ids() -> list[int]:
    """The GPU instance ids assigned to the body running in this process ([] in the driver)."""
    return list(_current.gpu_ids)


def enter(runtime_env: dict[str, Any] | None, gpu_ids: tuple[int, ...] | None) -> _Undo:
    """Apply a body's environment in this worker; `leave(undo)` restores the worker.

    Raises `OSError` (changing nothing) when the working directory is gone.
    """
    global _current
    undo = _Undo(_current)
    dirs: list[str] = []
    if runtime_env:
        working_dir = runtime_env.get("working_dir")
        for module in runtime_env.get("py_modules", ()):
            dirs.append(os.path.dirname(module))
        if working_dir:
            cwd = os.getcwd()
            os.chdir(working_dir)  # first: the one step that can fail
            undo.cwd = cwd
            dirs.insert(0, working_dir)
    env_vars = dict(runtime_env.get("env_vars", ())) if runtime_env else {}
    if gpu_ids:
        env_vars["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
    for key, value in env_vars.items():
        undo.env[key] = os.environ.get(key)
        os.environ[key] = value
    for d in reversed(dirs):
        sys.path.insert(0, d)
        undo.path.append(d)
    undo.dirs = tuple(dirs)
    _current = TaskEnv(runtime_env, list(gpu_ids or ()))
    return undo


def leave(undo: _Undo) -> None:
    """Undo `enter`: env vars, current directory, sys.path and modules imported from there."""
    global _current
    for key, value in undo.env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if undo.cwd is not None:
        try:
            os.chdir(undo.cwd)
        except OSError:
            pass
    for d in undo.path:
        try:
            sys.path.remove(d)
        except ValueError:
            pass
    if undo.dirs:
        prefixes = tuple(os.path.join(d, "") for d in undo.dirs)
        for name, module in list(sys.modules.items()):
            source = getattr(module, "__file__", None)
            if source and source.startswith(prefixes):
                del sys.modules[name]
    _current = undo.previous
