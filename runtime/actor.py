"""Actors: `@remote` on a class gives an ActorClass; `.remote()` gives an ActorHandle to call."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from runtime.core.task import CheckpointPlan
from runtime.exceptions import InvalidOptionError
from runtime.generators import is_generator_function
from runtime.options import check_actor_options, check_method_options
from runtime.remote_function import RemoteFunction, TaskOptions
from runtime.runtime_env import validate_runtime_env

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "ActorOptions", "Checkpointable", "method"]


DEFAULT_MAX_CONCURRENCY_ASYNC = 1000
"""Ray's default ``max_concurrency`` of an async actor (a sync actor's is 1)."""


def method(*args: Any, **options: Any) -> Any:
    """Decorator for actor methods: `@runtime.method(num_returns=2)` or bare `@runtime.method`.

    Ray's `ray.method`: its keywords are checked like `.options()` on a method (unknown
    ones raise `InvalidOptionError`, ones twinray does not provide yet
    `OptionNotSupportedError`); each is recorded on the function as `__ray_<name>__`.
    `max_task_retries` overrides the actor's for this method; `retry_exceptions` retries
    the call when it raises (within those retries), as in Ray. ``num_returns="streaming"``
    (the default of a generator method) or ``"dynamic"`` make a generator method return its
    items as they are yielded (see `runtime.generators`).
    """
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]
    if args:
        raise InvalidOptionError(
            "method() must be used as @method or with keyword options, e.g. @method(num_returns=2)"
        )
    check_method_options(options)
    max_task_retries = options.get("max_task_retries")
    retry_exceptions = options.get("retry_exceptions")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for key, value in options.items():
            setattr(fn, f"__ray_{key.lstrip('_')}__", value)
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


@dataclass(slots=True)
class ActorOptions:
    """Options of an actor class, with Ray's names (checked by `runtime.options`).

    Fields that only carry a value for another part of twinray say who consumes them; a
    non-default value of an option not provided yet is refused when it is passed.
    """

    num_cpus: float | None = None
    num_gpus: float = 0
    memory: float = 0
    """Bytes of the node's `memory` resource the actor holds while alive."""
    resources: dict[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None
    name: str = ""
    get_if_exists: bool = False
    max_restarts: int = 0
    lifetime: str | None = None
    """``"detached"``: the actor outlives its handles (as does a named one)."""
    runtime_env: dict[str, Any] | None = None
    """Applied in the actor's worker for its lifetime (`runtime.runtime_env`)."""
    max_concurrency: int | None = None
    """Calls run at once (None: Ray's default, 1000 for an async actor, else 1)."""
    max_task_retries: int = 0
    """Retries of a call that failed because the actor died (-1: forever), as in Ray."""
    concurrency_groups: Any = None
    """Named groups of threads (not provided yet: refused unless empty)."""
    allow_out_of_order_execution: bool | None = None
    max_pending_calls: int = -1
    namespace: str | None = None
    """Where a named actor is registered (None: the job's, `init(namespace=)`)."""
    scheduling_strategy: Any = None
    """Ray's scheduling strategy ("DEFAULT", "SPREAD", a strategy object; None: default)."""
    placement_group: Any = "default"
    """Ray's deprecated spelling of a placement-group strategy ("default": none)."""
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None
    label_selector: dict[str, str] | None = None
    fallback_strategy: list[Any] | None = None
    enable_task_events: bool = True
    enable_tensor_transport: bool | None = None
    object_store_memory: int | None = None
    """Deprecated in Ray, where it reserves nothing: accepted with a warning, no effect."""
    _labels: dict[str, str] | None = None
    _actor_generator_backpressure_num_objects: int | None = None
    checkpoint_interval: int | None = None
    """twinray's own (Ray has no such option): save the actor's state after every this
    many calls and, on a restart, restore it and replay only the later calls; 0 saves
    nothing and replays every call (`Checkpointable`, `runtime.core.checkpoints`)."""

    def __post_init__(self) -> None:
        if self.num_gpus is None:
            self.num_gpus = 0
        if self.memory is None:
            self.memory = 0
        if self.max_restarts is None:
            self.max_restarts = 0
        self.name = self.name or ""
        self.resources = dict(self.resources or {})
        if self.get_if_exists and not self.name:
            raise InvalidOptionError("The actor name must be specified to use `get_if_exists`.")

    @classmethod
    def from_decorator(cls, options: Mapping[str, Any]) -> ActorOptions:
        """The options given to `@remote(...)` on a class (`concurrency_groups` allowed)."""
        return cls()._apply(dict(options), in_options=False)

    def replace(self, **changes: Any) -> ActorOptions:
        """Return a copy with `.options()` `changes` applied; bad names or values raise
        `InvalidOptionError`."""
        return self._apply(changes, in_options=True)

    def _apply(self, changes: dict[str, Any], in_options: bool) -> ActorOptions:
        check_actor_options(changes, in_options)
        if "runtime_env" in changes:
            changes["runtime_env"] = validate_runtime_env(changes["runtime_env"])
        values = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        values.update(changes)
        return ActorOptions(**values)

    def demand_and_hold(self) -> tuple[dict[str, float], dict[str, float] | None]:
        """What placing the actor needs, and what it holds while alive (None: the same).

        As in Ray, an actor that asks for no resource (or only `memory`) needs 1 CPU to be
        placed and holds no CPU while alive; one that names any resource (`num_cpus`,
        `num_gpus`, `resources`) holds them all, with `num_cpus` defaulting to 1.
        """
        extra = {k: float(v) for k, v in self.resources.items()}
        if self.num_gpus:
            extra["GPU"] = float(self.num_gpus)
        if self.accelerator_type:
            extra[f"accelerator_type:{self.accelerator_type}"] = 0.001
        simple = self.num_cpus is None and not extra
        if self.memory:
            extra["memory"] = float(self.memory)
        if simple:
            return {"CPU": 1.0, **extra}, extra
        cpus = 1.0 if self.num_cpus is None else float(self.num_cpus)
        return {"CPU": cpus, **extra}, None


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
        from runtime.api import _current_node, actor_key

        node = _current_node()
        options = self._options
        if options.namespace is not None and options.name:  # registered under its namespace
            key = actor_key(node, options.name, options.namespace)
            if key != options.name:
                options = ActorOptions(
                    **{f.name: getattr(options, f.name) for f in dataclass_fields(options)}
                )
                options.name = key
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


class Checkpointable:
    """Base for actors that save and restore their state (twinray's ``checkpoint_interval``).

    Named after Ray 1.x's ``ray.actor.Checkpointable``, simplified: twinray's core decides
    when to save (after every ``checkpoint_interval`` calls, with none running), so there
    is no ``should_checkpoint``; the state is returned rather than written by the actor,
    and kept by the control plane (``checkpoint_expired`` has nothing to clean up).
    Subclassing is optional: any class with these two methods will do.
    """

    def save_checkpoint(self) -> Any:
        """Return the actor's state (any serializable value); called between calls."""
        raise NotImplementedError(f"{type(self).__qualname__} must define save_checkpoint()")

    def load_checkpoint(self, state: Any) -> None:
        """Restore a state ``save_checkpoint`` returned; called after ``__init__`` on restart."""
        raise NotImplementedError(f"{type(self).__qualname__} must define load_checkpoint()")


def checkpoint_plan(ac: ActorClass, options: ActorOptions) -> CheckpointPlan | None:
    """The core's plan for ``checkpoint_interval`` (None when not set); an interval of 1 or
    more needs the class's ``save_checkpoint`` and ``load_checkpoint`` (TypeError if not)."""
    every = options.checkpoint_interval
    if every is None:
        return None
    if every:
        for name in ("save_checkpoint", "load_checkpoint"):
            hook = getattr(ac._cls, name, None)
            if not callable(hook) or hook is getattr(Checkpointable, name):
                raise TypeError(
                    f"checkpoint_interval={every} needs {ac.__qualname__}.{name}(): "
                    "define save_checkpoint() and load_checkpoint(state) (runtime.Checkpointable)"
                )
    return CheckpointPlan(every)


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

    def options(self, **options: Any) -> ActorMethod:
        """Return this method with options overridden (checked as Ray's method options):
        `num_returns`, `max_task_retries`, `retry_exceptions`."""
        if "_num_objects_per_yield" in options:
            raise InvalidOptionError(
                "_num_objects_per_yield cannot be overridden per actor method call. "
                "Use @method(_num_objects_per_yield=...) instead."
            )
        check_method_options(options)
        num_returns = options.get("num_returns")
        max_task_retries = options.get("max_task_retries")
        retry_exceptions = options.get("retry_exceptions")
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
