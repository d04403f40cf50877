"""Ray's option keywords for tasks, actors and actor methods: the accepted names and their checks.

Every keyword Ray 2.60 accepts on `@remote`, `.options()` and `method` is listed here with a
check of its value. A keyword twinray does not provide yet is listed too, in `NOT_WIRED`:
its no-op value (Ray's default) is accepted, anything else raises
`OptionNotSupportedError` at the call that passes it. Whoever wires one of them removes its
entry. Unknown keywords raise `InvalidOptionError` (a `ValueError`, like Ray's, and a
`TypeError`) naming the closest accepted name and listing them all.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime.exceptions import InvalidOptionError, OptionNotSupportedError

__all__ = [
    "ACTOR_OPTIONS",
    "METHOD_OPTIONS",
    "NOT_WIRED",
    "TASK_OPTIONS",
    "check_actor_options",
    "check_method_options",
    "check_quantity",
    "check_task_options",
    "speculation_policy",
    "unknown_keyword_message",
]

Check = Callable[[str, Any], None]

_PRECISION = 1e-4
"""Ray's resource unit: fractional quantities below it are refused."""

UNIT_INSTANCE_RESOURCES = ("GPU",)
"""Resources made of whole instances: a request above 1 must be a whole number (as in Ray)."""


def unknown_keyword_message(keyword: str, accepted: Iterable[str], what: str) -> str:
    """`Invalid option keyword X for WHAT (did you mean 'Y'?). Valid ones are [...]`."""
    names = sorted(accepted)
    close = difflib.get_close_matches(keyword, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"Invalid option keyword {keyword} for {what}{hint}. Valid ones are {names}."


def _type_error(keyword: str, value: Any, expected: str) -> InvalidOptionError:
    return InvalidOptionError(
        f"The type of keyword '{keyword}' must be {expected}, "
        f"but received type {type(value).__name__} ({value!r})"
    )


def check_quantity(keyword: str, value: Any, resource: str | None = None) -> None:
    """A resource amount: None or a number >= 0, fractions down to 0.0001, whole above 1
    for instance resources (GPU)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(keyword, value, "a number (int or float) or None")
    if not math.isfinite(value) or value < 0:
        raise InvalidOptionError(f"The quantity of resource {keyword} cannot be {value!r}")
    if isinstance(value, float) and value != 0 and int(value / _PRECISION) == 0:
        raise InvalidOptionError(
            f"The precision of the fractional quantity of resource {keyword} "
            f"cannot go beyond {_PRECISION:g} (got {value!r})"
        )
    name = resource or ("GPU" if keyword == "num_gpus" else keyword)
    if name in UNIT_INSTANCE_RESOURCES and value > 1 and value != int(value):
        raise InvalidOptionError(
            f"{name} resource quantities >1 must be whole numbers. "
            f"The specified quantity {value!r} is invalid."
        )


def _resources(keyword: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _type_error(keyword, value, "a dict of resource name -> amount, or None")
    if "CPU" in value or "GPU" in value:
        raise InvalidOptionError(
            "Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' "
            "in 'resources' keyword"
        )
    for name, amount in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(f"resource names must be non-empty strings, got {name!r}")
        check_quantity(name, amount, name)


def _counting(infinite: bool) -> Check:
    low = -1 if infinite else 0

    def check(keyword: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(keyword, value, "an int or None")
        if value < low:
            extra = " or -1 (infinity)" if infinite else ""
            raise InvalidOptionError(
                f"The keyword '{keyword}' only accepts None, 0{extra} or a positive "
                f"integer, got {value!r}"
            )

    return check


def _at_least_one(keyword: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(keyword, value, "an int or None")
    if value < 1:
        raise InvalidOptionError(f"The keyword '{keyword}' must be at least 1, got {value!r}")


def _of_type(*types: type, label: str) -> Check:
    def check(keyword: str, value: Any) -> None:
        if not isinstance(value, types):
            raise _type_error(keyword, value, label)

    return check


_str_or_none = _of_type(str, type(None), label="a str or None")
_bool = _of_type(bool, label="a bool")
_bool_or_none = _of_type(bool, type(None), label="a bool or None")
_dict_or_none = _of_type(dict, type(None), label="a dict or None")
_list_or_none = _of_type(list, type(None), label="a list or None")
_anything: Check = lambda keyword, value: None  # noqa: E731  (checked where it is consumed)


def _strategy(keyword: str, value: Any) -> None:
    from runtime.util.scheduling_strategies import check_strategy_option

    try:
        check_strategy_option(value)
    except ValueError as exc:
        raise InvalidOptionError(str(exc)) from None


def _num_returns(keyword: str, value: Any) -> None:
    if value is None or value in ("streaming", "dynamic"):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(keyword, value, "a non-negative int, 'streaming', 'dynamic' or None")
    if value < 0:
        raise InvalidOptionError(f"num_returns must be >= 0, but got {value}.")


def _retry_exceptions(keyword: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (list, tuple)) and all(
        isinstance(e, type) and issubclass(e, Exception) for e in value
    ):
        return
    raise InvalidOptionError(
        f"retry_exceptions must be either a boolean or a list of exceptions, got {value!r}"
    )


def _lifetime(keyword: str, value: Any) -> None:
    if value not in (None, "detached", "non_detached"):
        raise InvalidOptionError(
            "actor `lifetime` argument must be one of 'detached', 'non_detached' and "
            f"'None', got {value!r}"
        )


def _runtime_env(keyword: str, value: Any) -> None:
    from runtime.runtime_env import validate_runtime_env

    validate_runtime_env(value)


def _task_object_store_memory(keyword: str, value: Any) -> None:
    if value is not None:
        raise InvalidOptionError("Setting 'object_store_memory' is not implemented for tasks")


def _actor_object_store_memory(keyword: str, value: Any) -> None:
    _counting(False)(keyword, value)
    warnings.warn(
        "Setting 'object_store_memory' for actors is deprecated since it doesn't actually "
        "reserve the required object store memory (as in Ray, it has no effect).",
        DeprecationWarning,
        stacklevel=4,
    )


def _name(keyword: str, value: Any) -> None:
    _str_or_none(keyword, value)


def _speculation(keyword: str, value: Any) -> None:
    """twinray's own: True/False/None, a dict of `SpeculationPolicy` fields, or a policy."""
    from runtime.core.speculation import SpeculationError, SpeculationPolicy

    try:
        SpeculationPolicy.from_value(value)
    except SpeculationError as exc:
        raise InvalidOptionError(f"{keyword}: {exc}") from None


def speculation_policy(value: Any, strategy: Any, generator: int, name: str) -> Any:
    """The core `SpeculationPolicy` of a task's ``_speculation`` option `value` (None: off);
    refused with `InvalidOptionError` for a task whose backup could not run on another node."""
    from runtime.core.placement import Spread
    from runtime.core.speculation import SpeculationPolicy

    try:
        policy = SpeculationPolicy.from_value(value)
    except ValueError as exc:
        raise InvalidOptionError(f"_speculation: {exc}") from None
    if policy is None:
        return None
    if generator:
        raise InvalidOptionError(
            f"_speculation: task {name} is a generator; its items would come twice"
        )
    if strategy is not None and not isinstance(strategy, Spread):
        raise InvalidOptionError(
            f"_speculation: task {name} has a placement group or node affinity; its backup"
            " copy must be free to run on another node (use the default or SPREAD)"
        )
    return policy


_COMMON: dict[str, Check] = {
    "accelerator_type": _str_or_none,
    "enable_task_events": _bool,
    "fallback_strategy": _list_or_none,
    "label_selector": _dict_or_none,
    "memory": check_quantity,
    "name": _name,
    "num_cpus": check_quantity,
    "num_gpus": check_quantity,
    "placement_group": _anything,
    "placement_group_bundle_index": _of_type(int, label="an int"),
    "placement_group_capture_child_tasks": _bool_or_none,
    "resources": _resources,
    "runtime_env": _runtime_env,
    "scheduling_strategy": _strategy,
    "_labels": _dict_or_none,
}

TASK_OPTIONS: dict[str, Check] = {
    **_COMMON,
    "max_calls": _counting(False),
    "max_retries": _counting(True),
    "num_returns": _num_returns,
    "object_store_memory": _task_object_store_memory,
    "retry_exceptions": _retry_exceptions,
    "_generator_backpressure_num_objects": _of_type(int, type(None), label="an int or None"),
    "_num_objects_per_yield": _counting(False),
    "_speculation": _speculation,  # twinray's own (runtime.core.speculation)
}
"""Keywords of `@remote` / `.options()` on a function (Ray 2.60's `task_options`, and
twinray's ``_speculation``, which Ray refuses)."""

ACTOR_OPTIONS: dict[str, Check] = {
    **_COMMON,
    "allow_out_of_order_execution": _bool_or_none,
    "concurrency_groups": _of_type(list, dict, type(None), label="a list, dict or None"),
    "enable_tensor_transport": _bool_or_none,
    "get_if_exists": _bool,
    "lifetime": _lifetime,
    "max_concurrency": _at_least_one,
    "max_pending_calls": _counting(True),
    "max_restarts": _counting(True),
    "max_task_retries": _counting(True),
    "namespace": _str_or_none,
    "object_store_memory": _actor_object_store_memory,
    "_actor_generator_backpressure_num_objects": _of_type(int, type(None), label="an int or None"),
    "checkpoint_interval": _counting(False),  # twinray's own (runtime.core.checkpoints)
}
"""Keywords of `@remote` / `.options()` on a class (Ray 2.60's `actor_options`, and
twinray's ``checkpoint_interval``, which Ray refuses)."""

METHOD_OPTIONS: dict[str, Check] = {
    "concurrency_group": _str_or_none,
    "enable_task_events": _bool_or_none,
    "max_task_retries": _counting(True),
    "name": _str_or_none,
    "num_returns": _num_returns,
    "retry_exceptions": _retry_exceptions,
    "tensor_transport": _str_or_none,
    "_generator_backpressure_num_objects": _of_type(int, type(None), label="an int or None"),
    "_labels": _dict_or_none,
    "_num_objects_per_yield": _counting(False),
}
"""Keywords of `method()` and of `actor.method.options()` (Ray 2.60's `ActorMethod._remote`)."""


def _is(*values: Any) -> Callable[[Any], bool]:
    return lambda value: any(value is v or value == v for v in values)


def _bool_or_none_value(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _empty(value: Any) -> bool:
    return not value


_CONCURRENCY = "actor concurrency options are not available yet"
_GENERATORS = "generator backpressure options are not available yet"
_LABELS = "node labels are not available: twinray's node has none"

NOT_WIRED: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "task": {
        "_generator_backpressure_num_objects": (_is(None), _GENERATORS),
        "_num_objects_per_yield": (_is(None, 1), _GENERATORS),
        "label_selector": (_empty, _LABELS),
        "fallback_strategy": (_empty, _LABELS),
        "_labels": (_empty, _LABELS),
        "max_calls": (_is(None, 0), "max_calls (worker recycling) is not available yet"),
        "enable_task_events": (_is(True), "disabling task events is not available yet"),
    },
    "actor": {
        "concurrency_groups": (_empty, _CONCURRENCY),
        "allow_out_of_order_execution": (_is(None, False), _CONCURRENCY),
        "max_pending_calls": (_is(None, -1), "max_pending_calls is not available yet"),
        "label_selector": (_empty, _LABELS),
        "fallback_strategy": (_empty, _LABELS),
        "_labels": (_empty, _LABELS),
        "enable_tensor_transport": (_is(None, False), "tensor transports are not available"),
        "_actor_generator_backpressure_num_objects": (_is(None, -1), _GENERATORS),
        "enable_task_events": (_is(True), "disabling task events is not available yet"),
    },
    "method": {
        "_generator_backpressure_num_objects": (_is(None), _GENERATORS),
        "_num_objects_per_yield": (_is(None, 1), _GENERATORS),
        "retry_exceptions": (
            _bool_or_none_value,
            "retry_exceptions as a list of exception classes is not available for actor "
            "methods yet",
        ),
        "concurrency_group": (_is(None), _CONCURRENCY),
        "name": (_is(None, ""), "naming single actor calls is not available yet"),
        "tensor_transport": (_is(None), "tensor transports are not available"),
        "_labels": (_empty, _LABELS),
        "enable_task_events": (_is(None, True), "disabling task events is not available yet"),
    },
}
"""Per kind, the keywords accepted but not provided yet: (is the value a no-op?, why not).

Each raises `OptionNotSupportedError` unless its value is the no-op default: generator
backpressure and batching, concurrency groups, out-of-order execution, pending-call bounds,
node labels, worker recycling (`max_calls`), tensor transports, disabled task events, and
for actor methods a `retry_exceptions` list and per-call names.
"""

_WHAT = {"task": "remote functions", "actor": "actors", "method": "actor methods"}
_TABLES = {"task": TASK_OPTIONS, "actor": ACTOR_OPTIONS, "method": METHOD_OPTIONS}


def _check(kind: str, options: Mapping[str, Any]) -> None:
    if not options:
        return
    table, not_wired = _TABLES[kind], NOT_WIRED[kind]
    for keyword, value in options.items():
        check = table.get(keyword)
        if check is None:
            raise InvalidOptionError(unknown_keyword_message(keyword, table, _WHAT[kind]))
        check(keyword, value)
        pending = not_wired.get(keyword)
        if pending is not None and not pending[0](value):
            raise OptionNotSupportedError(f"{keyword}={value!r}: {pending[1]} in twinray")


def check_task_options(options: Mapping[str, Any], in_options: bool) -> None:
    """Validate task options (`in_options`: given to `.options()` rather than `@remote`)."""
    if in_options and "max_calls" in options:
        raise InvalidOptionError("Setting 'max_calls' is not supported in '.options()'.")
    _check("task", options)


def check_actor_options(options: Mapping[str, Any], in_options: bool) -> None:
    """Validate actor options (`in_options`: given to `.options()` rather than `@remote`)."""
    if in_options and "concurrency_groups" in options:
        raise InvalidOptionError("Setting 'concurrency_groups' is not supported in '.options()'.")
    _check("actor", options)


def check_method_options(options: Mapping[str, Any]) -> None:
    """Validate the options of `method()` or of `actor.method.options()`."""
    _check("method", options)
