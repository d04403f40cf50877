"""Actors: `@remote` on a class gives an ActorClass; `.remote()` gives an ActorHandle to call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from runtime.generators import is_generator_function
from runtime.remote_function import RemoteFunction, TaskOptions

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
    }
)


def method(*, num_returns: int | str = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for actor methods: `@runtime.method(num_returns=2)` (Ray's `ray.method`).

    ``num_returns="streaming"`` (the default of a generator method) or ``"dynamic"`` make a
    generator method return its items as they are yielded (see `runtime.generators`).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__ray_num_returns__ = num_returns  # type: ignore[attr-defined]
        return fn

    return decorate


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
        **ignored: Any,
    ) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.resources = dict(resources or {})
        self.name = name or ""
        self.get_if_exists = get_if_exists
        self.max_restarts = max_restarts
        self.lifetime = lifetime
        """``"detached"``: the actor outlives its handles (as does a named one)."""

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

        return _current_node().create_actor(self, args, kwargs, self._options)


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
    """`handle.method`: `.remote(...)` submits an ordered call, `.options(num_returns=)`."""

    __slots__ = ("_handle", "_name", "_num_returns")

    def __init__(self, handle: ActorHandle, name: str, num_returns: int) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method on the actor; return an ObjectRef (a list when num_returns > 1)."""
        return self._handle._call(self._name, args, kwargs, self._num_returns)

    def options(self, num_returns: int | None = None, **ignored: Any) -> ActorMethod:
        """Return this method with `num_returns` overridden."""
        n = self._num_returns if num_returns is None else num_returns
        return ActorMethod(self._handle, self._name, n)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor method {self._name} must be called with .remote(...)")


class ActorHandle:
    """A handle to a live actor; it can be passed to tasks and to other actors.

    It pickles as its actor id, the class's method table and a ref to the actor's token
    (see `_token`); the side that unpickles it attaches to the actor through its own owner.
    """

    def __init__(
        self, actor_id: int, class_name: str, methods: dict[str, int], token: Any = None
    ) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._attached: Any = None
        self._token = token
        """An ObjectRef to the actor's token object (None: the actor is never collected).
        Each copy of the handle, in any process, holds one: the actor dies with the last."""

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

    def _call(self, name: str, args: tuple, kwargs: dict, num_returns: int) -> Any:
        from runtime.api import _current_node

        return _current_node().call_actor(self, name, args, kwargs, num_returns)

    def __reduce__(self) -> Any:
        # the token ref pickles like any nested ref: where the copy lands, it is borrowed
        return (ActorHandle, (self._actor_id, self._class_name, self._methods, self._token))

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id:x})"

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id
