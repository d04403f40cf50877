"""RemoteFunction: what `@remote` returns; `.remote()` submits a task, `.options()` overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.generators import generator_mode, is_generator_function
from runtime.util.scheduling_strategies import check_strategy_option

__all__ = ["RemoteFunction", "TaskOptions"]

_OPTION_NAMES = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "resources",
        "num_returns",
        "max_retries",
        "retry_exceptions",
        "name",
        "memory",
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
    }
)


class TaskOptions:
    """Per-function task options with Ray's names and defaults."""

    __slots__ = (
        "num_cpus",
        "num_gpus",
        "resources",
        "num_returns",
        "max_retries",
        "retry_exceptions",
        "name",
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
    )

    def __init__(
        self,
        num_cpus: float = 1,
        num_gpus: float = 0,
        resources: dict[str, float] | None = None,
        num_returns: int | str | None = None,
        max_retries: int = 3,
        retry_exceptions: bool = False,
        name: str = "",
        scheduling_strategy: Any = None,
        placement_group: Any = "default",
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
        **ignored: Any,
    ) -> None:
        check_strategy_option(scheduling_strategy)
        self.scheduling_strategy = scheduling_strategy
        """Ray's scheduling strategy ("DEFAULT", "SPREAD", a strategy object; None: default)."""
        self.placement_group = placement_group
        """Ray's deprecated spelling of a placement-group strategy ("default": none)."""
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.resources = dict(resources or {})
        self.num_returns = num_returns
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.name = name

    def replace(self, **changes: Any) -> TaskOptions:
        """Return a copy with `changes` applied (unknown names raise `TypeError`)."""
        unknown = set(changes) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return TaskOptions(**fields)

    def resource_demand(self) -> dict[str, float]:
        """The resource vector the scheduler sees."""
        demand = {"CPU": float(self.num_cpus)}
        if self.num_gpus:
            demand["GPU"] = float(self.num_gpus)
        for key, value in self.resources.items():
            demand[key] = float(value)
        return demand


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
