"""Functions that run inside tasks on one or a few partitions (pandas in, pandas out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas

__all__ = [
    "apply_method",
    "binary",
    "call",
    "concat_parts",
    "filter_rows",
    "head_rows",
    "index_of",
    "meta_of",
    "sized",
    "split_by_bucket",
    "tail_rows",
]


def meta_of(obj: Any) -> Any:
    """An empty object with `obj`'s columns, dtypes and index type (a partition's metadata)."""
    return obj.iloc[:0]


def sized(obj: Any) -> tuple[Any, int, Any]:
    """`obj`, its length and its metadata (for tasks whose row count is not known ahead)."""
    return obj, len(obj), obj.iloc[:0]


def apply_method(
    part: Any, *others: Any, method: str, args: tuple = (), kw: dict | None = None
) -> Any:
    """`part.method(*others, *args, **kw)`: an element-wise or row-wise pandas method."""
    return getattr(part, method)(*others, *args, **(kw or {}))


def accessor_method(part: Any, accessor: str, method: str, args: tuple, kw: dict) -> Any:
    """`part.<accessor>.<method>(*args, **kw)` (`.str`/`.dt` element-wise methods)."""
    target = getattr(getattr(part, accessor), method)
    return target(*args, **kw) if callable(target) else target


def binary(
    part: Any,
    other: Any = None,
    *,
    op: str,
    value: Any = None,
    use_value: bool = False,
    kw: dict | None = None,
) -> Any:
    """`part.op(other)`: `other` is the matching partition, or `value` when `use_value`."""
    rhs = value if use_value else other
    return getattr(part, op)(rhs, **(kw or {}))


def call(part: Any, *, fn: Callable[..., Any], args: tuple = (), kw: dict | None = None) -> Any:
    """`fn(part, *args, **kw)`."""
    return fn(part, *args, **(kw or {}))


def filter_rows(part: Any, mask: Any) -> tuple[Any, int, Any]:
    """Rows of `part` where the aligned boolean partition `mask` is true; with length, meta."""
    out = part[mask]
    return out, len(out), out.iloc[:0]


def concat_parts(*parts: Any) -> Any:
    """The partitions concatenated in order."""
    return parts[0] if len(parts) == 1 else pandas.concat(parts)


def head_rows(part: Any, n: int) -> Any:
    """The first `n` rows."""
    return part.iloc[:n]


def tail_rows(part: Any, n: int) -> Any:
    """The last `n` rows."""
    return part.iloc[len(part) - n :]


def index_of(part: Any) -> pandas.Index:
    """The partition's index."""
    return part.index


def split_by_bucket(part: Any, buckets: np.ndarray, n: int) -> tuple[Any, ...]:
    """`part`'s rows split into `n` pieces by the bucket number of each row (order kept)."""
    if n == 1:
        return (part,)
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange(n + 1), side="left")
    taken = part.take(order)
    return tuple(taken.iloc[bounds[i] : bounds[i + 1]] for i in range(n))
