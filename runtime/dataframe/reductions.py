"""Full-frame reductions (sum, prod, min, max, count, mean, var, std; nunique, unique) and dropna, over partitions.

Along axis 0 each partition reduces itself with pandas (a Series per frame partition, a
scalar per Series partition) and the partial results are reduced again by pandas (sums of
sums, minima of minima, counts added); mean, var and std combine counts, means and sums of
squared deviations (Chan's pairwise update), so no partition's rows travel. Along axis 1 a
row's result is that row's alone: one task per partition. Anything else defaults to pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas

from runtime.dataframe import kernels
from runtime.dataframe.engine import Part, fetch, submit
from runtime.dataframe.fallback import wrap_result

__all__ = ["dropna", "nunique", "reduce", "unique"]

# reduction -> how the per-partition results are reduced again
_AGAIN = {"sum": "sum", "prod": "prod", "min": "min", "max": "max", "count": "sum"}
_MOMENTS = {"mean", "var", "std"}


def _live(obj: Any) -> list[Part]:
    return [p for p, n in zip(obj._parts, obj._lengths()) if n]


def reduce(obj: Any, name: str, axis: Any, kw: dict) -> Any:
    """`obj.name(axis=axis, **kw)` over partitions, or `NotImplemented` when pandas must run it."""
    frame = obj._meta.ndim == 2
    if axis in (1, "columns") and frame:
        if name not in _AGAIN and name not in _MOMENTS:
            return NotImplemented
        return obj._map(kernels.apply_method, method=name, kw={"axis": 1, **kw})
    if axis not in (0, "index", None) or (axis is None and frame):
        return NotImplemented
    live = _live(obj)
    if not live:  # no rows: pandas' answer on the (empty) collected object, nothing to spread
        by_axis = {"axis": axis} if frame or axis not in (0, "index", None) else {}
        return wrap_result(getattr(obj._to_pandas(), name)(**by_axis, **kw))
    if name in _AGAIN:
        if name in ("sum", "prod") and kw.get("min_count", 0) != 0:
            return NotImplemented
        partials = fetch([submit(_partial, [p], name=name, kw=kw) for p in live])
        again_kw = {} if name == "count" else {"skipna": kw.get("skipna", True)}
        if frame:
            if name in ("min", "max") and any(
                isinstance(d, pandas.CategoricalDtype) for d in obj._meta.dtypes
            ):
                return NotImplemented
            rows = pandas.DataFrame(partials).reset_index(drop=True)
            result = getattr(rows, _AGAIN[name])(**again_kw)
            return wrap_result(result.astype(partials[0].dtype) if name == "count" else result)
        if isinstance(obj._meta.dtype, pandas.CategoricalDtype):
            return NotImplemented
        values = pandas.Series(partials, dtype=object if name in ("min", "max") else None)
        values = values.infer_objects() if name in ("min", "max") else values
        return getattr(values, _AGAIN[name])(**again_kw)
    if name in _MOMENTS:
        if kw.get("skipna", True) is not True or set(kw) - {"skipna", "numeric_only", "ddof"}:
            return NotImplemented
        ddof = kw.get("ddof", 1) if name != "mean" else 0
        cols = _moment_columns(obj, kw.get("numeric_only", False))
        if cols is None:
            return NotImplemented
        stats = fetch([submit(_moments, [p], cols=cols) for p in live])
        n, mean, m2 = _chan(stats)
        if name == "mean":
            out = np.where(n > 0, mean, np.nan)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(n - ddof > 0, m2 / (n - ddof), np.nan)
            out = np.sqrt(out) if name == "std" else out
        if not frame:
            return np.float64(out[0])
        return wrap_result(
            pandas.Series(out, index=pandas.Index(cols, dtype=obj._meta.columns.dtype))
        )
    return NotImplemented


def _moment_columns(obj: Any, numeric_only: bool) -> list | None:
    """The columns mean/var/std run over (numbers and bools), or None when pandas must."""
    if obj._meta.ndim == 1:
        dtype = obj._meta.dtype
        return [None] if dtype.kind in "biuf" and not _extension(dtype) else None
    dtypes = obj._meta.dtypes
    cols = [c for c in obj._meta.columns if dtypes[c].kind in "biuf" and not _extension(dtypes[c])]
    if numeric_only:
        return cols if obj._meta.columns.is_unique else None
    return cols if len(cols) == len(obj._meta.columns) and obj._meta.columns.is_unique else None


def _extension(dtype: Any) -> bool:
    return isinstance(dtype, pandas.api.extensions.ExtensionDtype)


def _partial(part: Any, *, name: str, kw: dict) -> Any:
    """pandas' reduction of one partition."""
    return getattr(part, name)(**kw)


def _moments(part: Any, *, cols: list) -> np.ndarray:
    """Per column: count of non-missing values, their mean and sum of squared deviations."""
    out = np.zeros((3, len(cols)))
    for j, c in enumerate(cols):
        x = np.asarray(part if c is None else part[c], dtype=np.float64)
        x = x[~np.isnan(x)]
        if len(x):
            m = x.mean()
            out[:, j] = (len(x), m, ((x - m) ** 2).sum())
    return out


def _chan(stats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, means and squared-deviation sums of the partitions combined (pairwise)."""
    n, mean, m2 = (stats[0][i].copy() for i in range(3))
    for s in stats[1:]:
        nb, mb, m2b = s
        tot = n + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - mean
            frac = np.where(tot > 0, nb / tot, 0.0)
            mean = mean + delta * frac
            m2 = m2 + m2b + np.where(tot > 0, delta**2 * n * nb / np.where(tot > 0, tot, 1), 0.0)
        n = tot
    return n, mean, m2


def nunique(obj: Any, axis: Any, dropna: bool) -> Any:
    """Distinct values per column (or of the Series): each partition's distinct values, pooled."""
    if axis not in (0, "index"):
        return NotImplemented
    live = _live(obj)
    if not live:
        return wrap_result(obj._to_pandas().nunique(dropna=dropna))
    distinct = fetch([submit(_distinct, [p]) for p in live])
    if obj._meta.ndim == 1:
        return pandas.concat(distinct).nunique(dropna=dropna)
    if not obj._meta.columns.is_unique:
        return NotImplemented
    counts = [
        pandas.concat([d[i] for d in distinct]).nunique(dropna=dropna)
        for i in range(len(obj._meta.columns))
    ]
    return wrap_result(pandas.Series(counts, index=obj._meta.columns, dtype="int64"))


def _distinct(part: Any) -> Any:
    """The partition's distinct values in first-seen order (per column for a frame)."""
    if part.ndim == 1:
        return part.drop_duplicates().reset_index(drop=True)
    return [part.iloc[:, i].drop_duplicates().reset_index(drop=True) for i in range(part.shape[1])]


def unique(series: Any) -> Any:
    """Series.unique: each partition's distinct values, pooled in first-seen order."""
    live = _live(series)
    if not live:
        return series._to_pandas().unique()
    return pandas.concat(fetch([submit(_distinct, [p]) for p in live])).unique()


def dropna(obj: Any, kw: dict) -> Any:
    """Rows with missing values dropped, partition by partition, or `NotImplemented`."""
    if kw.get("axis", 0) not in (0, "index") or kw.get("inplace") or kw.get("ignore_index"):
        return NotImplemented
    obj._meta.dropna(**kw)  # pandas' errors for bad options (a missing subset label, ...)
    parts = []
    for p in obj._parts:
        ref, n = submit(_dropna_rows, [p], num_returns=2, kw=kw)
        parts.append(Part(ref, n))
    return obj._like(parts, obj._meta, same_rows=False)


def _dropna_rows(part: Any, *, kw: dict) -> tuple[Any, int]:
    out = part.dropna(**kw)
    return out, len(out)
