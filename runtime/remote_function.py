"""RemoteFunction: what `@remote` returns; `.remote()` submits a task, `.options()` overrides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from runtime.generators import generator_mode, is_generator_function
from runtime.options import check_task_options
from runtime.runtime_env import validate_runtime_env

__all__ = ["RemoteFunction", "TaskOptions"]


@dataclass(slots=True)
class TaskOptions:
    """Per-function task options with Ray's names and defaults (checked by `runtime.options`).

    Fields that only carry a value for another part of twinray say who consumes them; a
    non-default value of an option not provided yet is refused when it is passed
    (`runtime.options.NOT_WIRED`), never ignored.
    """

    num_cpus: float = 1
    num_gpus: float = 0
    memory: float = 0
    """Bytes of the node's `memory` resource the task holds while it runs."""
    resources: dict[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None
    """Adds a demand of 0.001 `accelerator_type:<name>`, as in Ray (a node must offer it)."""
    num_returns: int | str | None = None
    """None: Ray's default (1; a generator function streams); an int; "streaming"/"dynamic"."""
    max_retries: int = 3
    retry_exceptions: bool | list[type[BaseException]] = False
    name: str = ""
    runtime_env: dict[str, Any] | None = None
    """Normalized by `runtime.runtime_env`; merged with the job's/parent's when submitted."""
    scheduling_strategy: Any = None
    """Ray's scheduling strategy ("DEFAULT", "SPREAD", a strategy object; None: default)."""
    placement_group: Any = "default"
    """Ray's deprecated spelling of a placement-group strategy ("default": none)."""
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None
    label_selector: dict[str, str] | None = None
    fallback_strategy: list[Any] | None = None
    enable_task_events: bool = True
    max_calls: int = 0
    object_store_memory: int | None = None
    _labels: dict[str, str] | None = None
    _generator_backpressure_num_objects: int | None = None
    """Ray's generator backpressure: refused unless None (`runtime.options.NOT_WIRED`)."""
    _num_objects_per_yield: int = 1
    """Ray's items per yield batch: refused unless 1 (`runtime.options.NOT_WIRED`)."""
    _speculation: Any = None
    """twinray's own: speculative execution of this task if it straggles (True, a dict of
    `runtime.core.speculation.SpeculationPolicy` fields, or a policy); None/False: off."""
    _demand: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_cpus is None:
            self.num_cpus = 1
        if self.num_gpus is None:
            self.num_gpus = 0
        if self.memory is None:
            self.memory = 0
        if self.max_retries is None:
            self.max_retries = 3
        if self.name is None:
            self.name = ""
        self.resources = dict(self.resources or {})
        demand = {"CPU": float(self.num_cpus)}
        if self.num_gpus:
            demand["GPU"] = float(self.num_gpus)
        if self.memory:
            demand["memory"] = float(self.memory)
        for key, value in self.resources.items():
            demand[key] = float(value)
        if self.accelerator_type:
            demand[f"accelerator_type:{self.accelerator_type}"] = 0.001
        self._demand = demand

    @classmethod
    def from_decorator(cls, options: Mapping[str, Any]) -> TaskOptions:
        """The options given to `@remote(...)` (where `max_calls` is allowed, as in Ray)."""
        return cls()._apply(dict(options), in_options=False)

    def replace(self, **changes: Any) -> TaskOptions:
        """Return a copy with `.options()` `changes` applied; bad names or values raise
        `InvalidOptionError` (unknown names suggest the closest one)."""
        return self._apply(changes, in_options=True)

    def _apply(self, changes: dict[str, Any], in_options: bool) -> TaskOptions:
        check_task_options(changes, in_options)
        if "runtime_env" in changes:
            changes["runtime_env"] = validate_runtime_env(changes["runtime_env"])
        clone = object.__new__(TaskOptions)
        for name in _FIELD_NAMES:
            setattr(clone, name, changes[name] if name in changes else getattr(self, name))
        clone.__post_init__()
        return clone

    def resource_demand(self) -> dict[str, float]:
        """The resource vector the scheduler sees (a fresh dict)."""
        return dict(self._demand)


_FIELD_NAMES = tuple(f.name for f in dataclass_fields(TaskOptions) if f.init)


class RemoteFunction:
    """A function turned into a task template by `@remote`.

    The function is pickled by value (cloudpickle) once, on first use; each node session
    gives it a function id, and workers receive the bytes once and then only the id.
    """

    def __init__(self, function: Callable[..., Any], options: TaskOptions) -> None:
        self._function = function
        self._options = options
        self._pickled: bytes | None = None
        self._registration: tuple[int, int] | None = None  # (node session, function id)
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__doc__ = getattr(function, "__doc__", None)
        self.__module__ = getattr(function, "__module__", None)
        self._is_generator = is_generator_function(function)
        self._returns(options)  # num_returns="streaming" on a plain function fails here

    def _returns(self, options: TaskOptions) -> tuple[int, int]:
        """``(num_returns, generator mode)`` for the core (a generator streams by default)."""
        return generator_mode(options.num_returns, self._is_generator, self.__qualname__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"remote function {self.__qualname__} cannot be called directly; "
            f"use {self.__name__}.remote(...)"
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit a task; return an ObjectRef (a list when num_returns > 1; an
        `ObjectRefGenerator` for a generator function)."""
        from runtime.api import _current_node

        return _current_node().submit(self, args, kwargs, self._options)

    def options(self, **changes: Any) -> RemoteFunction:
        """Return a copy of this remote function with task options overridden."""
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = self._options.replace(**changes)
        clone._returns(clone._options)
        clone._shared = self  # registrations and the pickle are shared with the original
        return clone

    @property
    def function(self) -> Callable[..., Any]:
        """The wrapped Python function."""
        return self._function

    def _root(self) -> RemoteFunction:
        return self.__dict__.get("_shared", self)

    def _function_id(self, node: Any) -> int:
        """This function's id on `node`, registering (and pickling) it on first use."""
        root = self._root()
        reg = root._registration
        if reg is not None and reg[0] == node.session:
            return reg[1]
        if root._pickled is None:
            from runtime.real.serialization import dumps_function

            root._pickled = dumps_function(root._function)
        fn_id = node.register_function(root._pickled)
        root._registration = (node.session, fn_id)
        return fn_id
