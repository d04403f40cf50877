"""Defaulting to pandas: collect, run pandas' own method, re-partition, warn once per method."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pandas

__all__ = ["reset_warnings", "to_pandas_args", "warn_default", "wrap_result"]

_warned: set[str] = set()


def warn_default(name: str) -> None:
    """Warn, the first time only, that `name` runs in pandas on the collected frame."""
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(
        f"`{name}` is not parallel in runtime.dataframe: defaulting to pandas "
        "(the frame is collected, pandas runs it, a frame result is partitioned again)",
        UserWarning,
        stacklevel=4,
    )


def reset_warnings() -> None:
    """Forget which methods have warned (each warns once again; for tests)."""
    _warned.clear()


def to_pandas_args(value: Any) -> Any:
    """`value` with every runtime.dataframe object (also inside lists, tuples, dicts) as pandas."""
    from runtime.dataframe.frame import BaseFrame

    if isinstance(value, BaseFrame):
        return value._to_pandas()
    if isinstance(value, list):
        return [to_pandas_args(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(to_pandas_args(v) for v in value)
    if isinstance(value, dict) and type(value) is dict:
        return {k: to_pandas_args(v) for k, v in value.items()}
    return value


def wrap_result(value: Any) -> Any:
    """A pandas DataFrame/Series result as a partitioned one; anything else as it is."""
    from runtime.dataframe.frame import DataFrame, Series, from_pandas

    if isinstance(value, (pandas.DataFrame, pandas.Series)):
        return from_pandas(value)
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(wrap_result(v) for v in value)
    if isinstance(value, (DataFrame, Series)):
        return value
    return value


def call_pandas(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Warn once for `name`, call `fn` with pandas arguments, wrap a frame result."""
    warn_default(name)
    return wrap_result(fn(*to_pandas_args(args), **to_pandas_args(kwargs)))


class PandasProxy:
    """An accessor (`.loc`, `.iloc`, `.cat`, ...) of the collected frame, results re-partitioned.

    Assignments through it (`df.loc[i, "a"] = 1`) change the owning frame, as in pandas.
    """

    def __init__(self, owner: Any, name: str, target: Any) -> None:
        self._owner = owner
        self._name = name
        self._target = target

    def __getitem__(self, key: Any) -> Any:
        return wrap_result(self._target[to_pandas_args(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._target[to_pandas_args(key)] = to_pandas_args(value)
        self._owner._replace_with(self._collected)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if callable(value):

            def method(*args: Any, **kwargs: Any) -> Any:
                result = value(*to_pandas_args(args), **to_pandas_args(kwargs))
                if kwargs.get("inplace"):
                    self._owner._replace_with(self._collected)
                return wrap_result(result)

            return method
        return wrap_result(value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return wrap_result(self._target(*to_pandas_args(args), **to_pandas_args(kwargs)))

    def __repr__(self) -> str:
        return repr(self._target)

    _collected: Any = None
