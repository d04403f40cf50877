"""``@serve.deployment``, ``Deployment`` (``.options``, ``.bind``) and ``Application``: the app graph."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.exceptions import InvalidOptionError
from runtime.serve.exceptions import ServeOptionNotSupportedError

#: Ray Serve's defaults.
DEFAULT_MAX_ONGOING_REQUESTS = 5
DEFAULT_HEALTH_CHECK_PERIOD_S = 10.0
DEFAULT_HEALTH_CHECK_TIMEOUT_S = 30.0
DEFAULT_MAX_CONSTRUCTOR_RETRY_COUNT = 20

#: Keys Ray Serve accepts in ``ray_actor_options``.
RAY_ACTOR_OPTION_KEYS = frozenset(
    {
        "accelerator_type",
        "memory",
        "num_cpus",
        "num_gpus",
        "object_store_memory",
        "resources",
        "runtime_env",
        "label_selector",
    }
)

#: Ray Serve deployment options twinray refuses (each raises ServeOptionNotSupportedError).
REFUSED_OPTIONS = {
    "version": "deployment versions (in-place upgrades)",
    "autoscaling_config": "autoscaling",
    "placement_group_bundles": "placement group bundles per replica",
    "placement_group_strategy": "placement group bundles per replica",
    "placement_group_bundle_label_selector": "placement group bundles per replica",
    "max_replicas_per_node": "multi-node replica spreading",
    "logging_config": "Serve's logging configuration",
    "request_router_config": "custom request routers",
    "backpressure_config": "backpressure configuration beyond max_queued_requests",
    "graceful_shutdown_wait_loop_s": "graceful replica shutdown",
    "graceful_shutdown_timeout_s": "graceful replica shutdown",
    "gang_scheduling_config": "gang scheduling",
    "deployment_actors": "deployment actors",
    "rolling_update_percentage": "rolling updates",
    "max_surge_percent": "rolling updates",
}


@dataclass(frozen=True)
class DeploymentConfig:
    """A deployment's settings, checked (Ray's names and defaults)."""

    name: str
    num_replicas: int = 1
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    max_queued_requests: int = -1
    ray_actor_options: dict[str, Any] = field(default_factory=dict)
    user_config: Any = None
    health_check_period_s: float = DEFAULT_HEALTH_CHECK_PERIOD_S
    health_check_timeout_s: float = DEFAULT_HEALTH_CHECK_TIMEOUT_S
    max_constructor_retry_count: int = DEFAULT_MAX_CONSTRUCTOR_RETRY_COUNT


def _int_option(name: str, value: Any, low: int, allow_minus_one: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"{name} must be an int, got {value!r}")
    if value < low and not (allow_minus_one and value == -1):
        extra = " or -1" if allow_minus_one else ""
        raise InvalidOptionError(f"{name} must be >= {low}{extra}, got {value}")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidOptionError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _check_actor_options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidOptionError(f"ray_actor_options must be a dict, got {type(value).__name__}")
    unknown = sorted(set(value) - RAY_ACTOR_OPTION_KEYS)
    if unknown:
        raise InvalidOptionError(
            f"ray_actor_options got unknown keys {unknown}; allowed: "
            f"{sorted(RAY_ACTOR_OPTION_KEYS)}"
        )
    return dict(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "num_replicas": lambda v: _check_num_replicas(v),
    "max_ongoing_requests": lambda v: _int_option("max_ongoing_requests", v, 1),
    "max_queued_requests": lambda v: _int_option("max_queued_requests", v, 0, True),
    "ray_actor_options": _check_actor_options,
    "user_config": lambda v: v,
    "health_check_period_s": lambda v: _positive_number("health_check_period_s", v),
    "health_check_timeout_s": lambda v: _positive_number("health_check_timeout_s", v),
    "max_constructor_retry_count": lambda v: _int_option("max_constructor_retry_count", v, 1),
}


def _check_num_replicas(value: Any) -> int:
    if value == "auto":
        raise ServeOptionNotSupportedError(
            "num_replicas='auto' asks for autoscaling, which twinray's Serve does not provide"
        )
    return _int_option("num_replicas", value, 0)


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate deployment options; refused ones raise ServeOptionNotSupportedError."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in REFUSED_OPTIONS:
            raise ServeOptionNotSupportedError(
                f"deployment option {key}={value!r}: twinray's Serve does not provide "
                f"{REFUSED_OPTIONS[key]}"
            )
        if key == "name":
            if not isinstance(value, str) or not value:
                raise InvalidOptionError(f"name must be a non-empty str, got {value!r}")
            out[key] = value
            continue
        check = _CHECKS.get(key)
        if check is None:
            raise InvalidOptionError(f"unknown deployment option {key!r}")
        out[key] = check(value)
    return out


class Deployment:
    """A class or function made a deployment by ``@serve.deployment``; ``bind`` it to deploy."""

    def __init__(self, func_or_class: Any, config: DeploymentConfig) -> None:
        self.func_or_class = func_or_class
        self._config = config

    @property
    def name(self) -> str:
        """The deployment's name (the class or function name unless ``name=`` was given)."""
        return self._config.name

    @property
    def num_replicas(self) -> int:
        """How many replicas it runs."""
        return self._config.num_replicas

    @property
    def max_ongoing_requests(self) -> int:
        """Requests one replica runs at once."""
        return self._config.max_ongoing_requests

    @property
    def max_queued_requests(self) -> int:
        """Requests a handle queues when every replica is full (-1: no bound)."""
        return self._config.max_queued_requests

    @property
    def ray_actor_options(self) -> dict[str, Any]:
        """The options each replica actor is created with."""
        return dict(self._config.ray_actor_options)

    @property
    def user_config(self) -> Any:
        """Passed to the replica's ``reconfigure`` after its constructor."""
        return self._config.user_config

    @property
    def config(self) -> DeploymentConfig:
        """All the settings."""
        return self._config

    def options(self, **kwargs: Any) -> Deployment:
        """A copy with some settings changed (same checks as the decorator)."""
        return Deployment(self.func_or_class, replace(self._config, **check_options(kwargs)))

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """An application: this deployment with its constructor's (or function's) arguments.

        Arguments that are themselves applications become DeploymentHandles in the replica.
        """
        return Application(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RayServeCallError(
            f"Deployment {self.name!r} cannot be called directly: use {self.name}.bind(...) "
            "and serve.run(...), then call the returned handle"
        )

    def __repr__(self) -> str:
        return f"Deployment(name={self.name})"


class RayServeCallError(RuntimeError):
    """A deployment was called like a function (use ``.bind`` and ``serve.run``); a
    ``RuntimeError``, as in Ray."""


@dataclass(frozen=True, eq=False)
class Application:
    """A bound deployment: what ``serve.run`` deploys (its bound arguments may hold others)."""

    deployment: Deployment
    args: tuple
    kwargs: dict

    def walk(self) -> list[Application]:
        """This app and every app bound into it (at any depth), inner ones first, no repeats."""
        seen: dict[int, Application] = {}

        def visit(app: Application) -> None:
            if id(app) in seen:
                return
            for value in (*app.args, *app.kwargs.values()):
                for inner in _apps_in(value):
                    visit(inner)
            seen[id(app)] = app

        visit(self)
        return list(seen.values())


def _apps_in(value: Any) -> list[Application]:
    """Applications in a bound argument: the value itself or inside a list/tuple/dict."""
    if isinstance(value, Application):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _apps_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _apps_in(v)]
    return []


def deployment(_func_or_class: Any = None, **options: Any) -> Any:
    """``@serve.deployment`` or ``@serve.deployment(num_replicas=..., ...)`` on a class or function."""
    checked = check_options(options)

    def decorate(target: Any) -> Deployment:
        if not (inspect.isclass(target) or inspect.isfunction(target)):
            raise InvalidOptionError(
                f"@serve.deployment takes a class or a function, got {type(target).__name__}"
            )
        name = checked.pop("name", target.__name__)
        return Deployment(target, DeploymentConfig(name=name, **checked))

    if _func_or_class is not None:
        return decorate(_func_or_class)
    return decorate
