"""The one remote task every partition operation runs in, and the helpers to submit and fetch it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas

import runtime
from runtime.exceptions import RayTaskError
from runtime.object_ref import ObjectRef

__all__ = ["Part", "ensure_started", "fetch", "fix_index", "submit"]


@dataclass(frozen=True, slots=True)
class Part:
    """One row partition: a pandas object in the store, its row count, its index fix.

    `length` is an int or, while unknown, a ref to it. `start` is None when the stored
    object carries its real index, else the real index is `RangeIndex(start, start+n)`,
    whatever the stored one (read_csv's partitions, `ignore_index=True`): the task that
    reads the partition renumbers it, so no copy is stored just to renumber.
    """

    ref: ObjectRef
    length: int | ObjectRef
    start: int | None = None


def fix_index(obj: Any, start: int | None) -> Any:
    """The partition `obj` with its real index (shifted to `start` when given)."""
    if start is None:
        return obj
    return obj.set_axis(pandas.RangeIndex(start, start + len(obj)), axis=0)


def _run(kernel: Callable[..., Any], starts: tuple, kwargs: dict, *frames: Any) -> Any:
    """Apply `kernel` to partitions `frames` (index-fixed by `starts`) with `kwargs`."""
    fixed = [fix_index(f, s) for f, s in zip(frames, starts)] + list(frames[len(starts) :])
    return kernel(*fixed, **kwargs)


_remote_run = runtime.remote(_run)
_by_returns: dict[tuple[int, str], Any] = {}


def ensure_started() -> None:
    """Start the runtime with its defaults when it is not running (Modin starts Ray)."""
    if not runtime.is_initialized():
        runtime.init()


def submit(
    kernel: Callable[..., Any],
    parts: Sequence[Part],
    /,
    *extra: Any,
    num_returns: int = 1,
    **kwargs: Any,
) -> Any:
    """Run `kernel(*partitions, *extra, **kwargs)` in one task; ref(s) to its return value(s).

    `extra` are further top-level arguments (refs among them are resolved, as in Ray).
    """
    ensure_started()
    key = (num_returns, kernel.__name__)
    fn = _by_returns.get(key)
    if fn is None:  # the kernel names the task (timeline, memory summary)
        fn = _by_returns[key] = _remote_run.options(
            num_returns=num_returns, name=kernel.__name__.lstrip("_")
        )
    starts = tuple(p.start for p in parts)
    return fn.remote(kernel, starts, kwargs, *[p.ref for p in parts], *extra)


def fetch(refs: Any) -> Any:
    """`runtime.get(refs)`, raising a failed task's original exception (pandas' own error)."""
    try:
        return runtime.get(refs)
    except RayTaskError as err:
        if err.cause is not None:
            raise err.cause from None
        raise
