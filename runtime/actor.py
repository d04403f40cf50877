"""Actors: `@remote` on a class gives an ActorClass; `.remote()` gives an ActorHandle to call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from runtime.generators import is_generator_function
from runtime.remote_function import RemoteFunction, TaskOptions
from runtime.util.scheduling_strategies import check_strategy_option

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "ActorOptions", "method"]

_ACTOR_OPTION_NAMES = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "resources",
        "name",
        "namespace",
        "get_if_exists",
        "max_restarts",
        "max_task_retries",
        "max_concurrency",
        "lifetime",
        "memory",
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
    }
)


DEFAULT_MAX_CONCURRENCY_ASYNC = 1000
"""Ray's default ``max_concurrency`` of an async actor (a sync actor's is 1)."""


def method(
    *,
    num_returns: int | str = 1,
    max_task_retries: int | None = None,
    retry_exceptions: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for actor methods: `@runtime.method(num_returns=2)` (Ray's `ray.method`).

    `max_task_retries` overrides the actor's for this method; `retry_exceptions` retries
    the call when it raises (within those retries), as in Ray. ``num_returns="streaming"``
    (the default of a generator method) or ``"dynamic"`` make a generator method return its
    items as they are yielded (see `runtime.generators`).
    """
    _check_count("max_task_retries", max_task_retries, -1, none_ok=True)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__ray_num_returns__ = num_returns  # type: ignore[attr-defined]
        if max_task_retries is not None or retry_exceptions:
            fn.__ray_retries__ = (max_task_retries, bool(retry_exceptions))  # type: ignore[attr-defined]
        return fn

    return decorate


def _check_count(name: str, value: Any, least: int, none_ok: bool = False) -> None:
    """Raise TypeError/ValueError unless `value` is an int >= `least` (or None if allowed)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < least:
        what = "-1 (forever) or a non-negative integer" if least == -1 else f"an integer >= {least}"
        raise ValueError(f"{name} must be {what}, got {value}")


class ActorOptions:
    """Options of an actor class, with Ray's names; unknown names raise `TypeError`."""

    __slots__ = (
        "num_cpus",
        "num_gpus",
        "resources",
        "name",
        "get_if_exists",
        "max_restarts",
        "lifetime",
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
        "max_concurrency",
        "max_task_retries",
    )

    def __init__(
        self,
        num_cpus: float | None = None,
        num_gpus: float = 0,
        resources: dict[str, float] | None = None,
        name: str = "",
        get_if_exists: bool = False,
        max_restarts: int = 0,
        lifetime: str | None = None,
        scheduling_strategy: Any = None,
        placement_group: Any = "default",
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
        max_concurrency: int | None = None,
        max_task_retries: int = 0,
        **ignored: Any,
    ) -> None:
        _check_count("max_concurrency", max_concurrency, 1, none_ok=True)
        _check_count("max_task_retries", max_task_retries, -1)
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
        self.name = name or ""
        self.get_if_exists = get_if_exists
        self.max_restarts = max_restarts
        self.lifetime = lifetime
        """``"detached"``: the actor outlives its handles (as does a named one)."""
        self.max_concurrency = max_concurrency
        """Calls run at once (None: Ray's default, 1000 for an async actor, else 1)."""
        self.max_task_retries = max_task_retries
        """Retries of a call that failed because the actor died (-1: forever), as in Ray."""

    def replace(self, **changes: Any) -> ActorOptions:
        """Return a copy with `changes` applied."""
        unknown = set(changes) - _ACTOR_OPTION_NAMES
        if unknown:
            raise TypeError(f"unknown actor option(s): {', '.join(sorted(unknown))}")
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return ActorOptions(**fields)

    def demand_and_hold(self) -> tuple[dict[str, float], dict[str, float] | None]:
        """What placing the actor needs, and what it holds while alive (None: the same).

        As in Ray, a default actor needs 1 CPU to be placed and holds none while alive;
        with an explicit `num_cpus` it holds what it asked for.
        """
        extra = {k: float(v) for k, v in self.resources.items()}
        if self.num_gpus:
            extra["GPU"] = float(self.num_gpus)
        if self.num_cpus is None:
            return {"CPU": 1.0, **extra}, extra
        return {"CPU": float(self.num_cpus), **extra}, None


class ActorClass:
    """What `@remote` returns for a class: `.remote(...)` creates an actor, `.options()` overrides."""

    def __init__(self, cls: type, options: ActorOptions) -> None:
        self._cls = cls
        self._options = options
        self._function = RemoteFunction(cls, TaskOptions())  # pickling and registration
        self._methods = _method_table(cls)
        self._method_retries = _retry_table(cls)
        self._is_async = is_async_class(cls)
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"actor class {self.__qualname__} cannot be instantiated directly; "
            f"use {self.__name__}.remote(...)"
        )

    def options(self, **changes: Any) -> ActorClass:
        """Return a copy of this actor class with options overridden."""
        clone = ActorClass.__new__(ActorClass)
        clone.__dict__.update(self.__dict__)
        clone._options = self._options.replace(**changes)
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Create the actor (its constructor runs in a dedicated worker); return its handle."""
        from runtime.api import _current_node

        node = _current_node()
        options = self._options
        if options.name and not options.get_if_exists:
            _check_name_free(node, options.name)
        return node.create_actor(self, args, kwargs, options)


def _check_name_free(node: Any, name: str) -> None:
    """Raise `ActorAlreadyExistsError` if a live actor is named `name` (Ray checks the same
    way at `.remote()`; the GCS still refuses a name taken in between)."""
    from runtime.exceptions import ActorAlreadyExistsError

    try:
        node.get_actor(name)
    except ValueError:
        return
    raise ActorAlreadyExistsError(
        f"The name {name} (namespace=None) is already taken. Please use a different name or "
        f"get the existing actor using ray.get_actor('{name}', namespace='None')"
    )


def is_async_class(cls: Any) -> bool:
    """True if `cls` has an ``async def`` (or async generator) method: an async actor, as in Ray."""
    for _, member in inspect.getmembers(cls):
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            return True
    return False


def _retry_table(cls: type) -> dict[str, tuple[int | None, bool]]:
    """``(max_task_retries, retry_exceptions)`` of the methods `@method` gave retry options."""
    table: dict[str, tuple[int | None, bool]] = {}
    for name, member in inspect.getmembers(cls):
        retries = getattr(member, "__ray_retries__", None)
        if retries is not None:
            table[name] = retries
    return table


def actor_concurrency(ac: ActorClass, options: ActorOptions) -> int:
    """The actor's ``max_concurrency``: as given, else Ray's default for its kind."""
    if options.max_concurrency is not None:
        return options.max_concurrency
    return DEFAULT_MAX_CONCURRENCY_ASYNC if ac._is_async else 1


def _method_table(cls: type) -> dict[str, int | str]:
    """Public method names of `cls` with their declared `num_returns`."""
    table: dict[str, int | str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") or not callable(member):
            continue
        default = "streaming" if is_generator_function(member) else 1  # as in Ray
        table[name] = getattr(member, "__ray_num_returns__", default)
    return table


class ActorMethod:
    """`handle.method`: `.remote(...)` submits an ordered call; `.options(num_returns=,
    max_task_retries=, retry_exceptions=)` overrides."""

    __slots__ = ("_handle", "_name", "_num_returns", "_retries")

    def __init__(
        self,
        handle: ActorHandle,
        name: str,
        num_returns: int,
        retries: tuple[int | None, bool] | None = None,
    ) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._retries = retries
        """``(max_task_retries or None: the actor's, retry_exceptions)``; None: defaults."""

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method on the actor; return an ObjectRef (a list when num_returns > 1)."""
        if self._retries is None:
            return self._handle._call(self._name, args, kwargs, self._num_returns)
        return self._handle._call(self._name, args, kwargs, self._num_returns, self._retries)

    def options(
        self,
        num_returns: int | None = None,
        max_task_retries: int | None = None,
        retry_exceptions: bool | None = None,
        **ignored: Any,
    ) -> ActorMethod:
        """Return this method with `num_returns`, `max_task_retries` or `retry_exceptions`
        overridden."""
        n = self._num_returns if num_returns is None else num_returns
        _check_count("max_task_retries", max_task_retries, -1, none_ok=True)
        retries = self._retries or self._handle._method_retries.get(self._name) or (None, False)
        if max_task_retries is not None:
            retries = (max_task_retries, retries[1])
        if retry_exceptions is not None:
            retries = (retries[0], bool(retry_exceptions))
        return ActorMethod(self._handle, self._name, n, retries)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor method {self._name} must be called with .remote(...)")


class ActorHandle:
    """A handle to a live actor; it can be passed to tasks and to other actors.

    It pickles as its actor id, the class's method table and a ref to the actor's token
    (see `_token`); the side that unpickles it attaches to the actor through its own owner.
    """

    def __init__(
        self,
        actor_id: int,
        class_name: str,
        methods: dict[str, int],
        token: Any = None,
        retry_options: tuple[int, dict[str, tuple[int | None, bool]]] | None = None,
    ) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._attached: Any = None
        self._token = token
        """An ObjectRef to the actor's token object (None: the actor is never collected).
        Each copy of the handle, in any process, holds one: the actor dies with the last."""
        max_task_retries, method_retries = retry_options or (0, {})
        self._max_task_retries = max_task_retries
        """The actor's ``max_task_retries`` (Ray's default 0; -1: forever)."""
        self._method_retries = method_retries
        """Per method: ``(max_task_retries or None, retry_exceptions)`` from `@method`."""

    @property
    def _retry_options(self) -> tuple[int, dict[str, tuple[int | None, bool]]]:
        return (self._max_task_retries, self._method_retries)

    def _call_retries(self, name: str, retries: tuple[int | None, bool] | None) -> tuple[int, bool]:
        """``(max_retries, retry_exceptions)`` of a call of method `name`."""
        if retries is None:
            retries = self._method_retries.get(name)
            if retries is None:
                return self._max_task_retries, False
        n, exc = retries
        return (self._max_task_retries if n is None else n), exc

    @property
    def actor_id(self) -> int:
        """The integer actor id."""
        return self._actor_id

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods")
        if methods is None or name not in methods:
            raise AttributeError(
                f"actor {self.__dict__.get('_class_name', '?')} has no method {name!r}"
            )
        return ActorMethod(self, name, methods[name])

    def _call(
        self,
        name: str,
        args: tuple,
        kwargs: dict,
        num_returns: int,
        retries: tuple[int | None, bool] | None = None,
    ) -> Any:
        from runtime.api import _current_node

        node = _current_node()
        if retries is None and not self._max_task_retries and not self._method_retries:
            return node.call_actor(self, name, args, kwargs, num_returns)
        max_retries, retry_exceptions = self._call_retries(name, retries)
        return node.call_actor(self, name, args, kwargs, num_returns, max_retries, retry_exceptions)

    def __reduce__(self) -> Any:
        # the token ref pickles like any nested ref: where the copy lands, it is borrowed
        args = (self._actor_id, self._class_name, self._methods, self._token)
        if self._max_task_retries or self._method_retries:
            args += (self._retry_options,)
        return (ActorHandle, args)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id:x})"

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id
