"""`loc` and `iloc` over partitions: row slices, boolean masks and label lookups; the rest in pandas.

Rows are chosen by position: `iloc` slices directly; `loc` turns a label or label slice
into positions with pandas' own `Index.get_loc`/`slice_indexer` on the (fetched) index, so
its rules for duplicates, monotonic indexes and missing labels (`KeyError`) are pandas'.
Whole partitions inside the range are kept as they are; the two cut at its ends are sliced
in tasks. A boolean mask aligned with the frame filters partition by partition. Columns
(the second key) are selected per partition. Assignment and other keys (lists of labels,
callables, steps) run in pandas on the collected frame, with the usual one-time warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas
from pandas.api.types import is_bool_dtype, is_integer, is_list_like, is_scalar

from runtime.dataframe.engine import Part, submit
from runtime.dataframe.fallback import PandasProxy, warn_default

__all__ = ["ILocIndexer", "LocIndexer"]


class _Indexer:
    """What `loc` and `iloc` share: split the key, run the parallel cases, else pandas."""

    name = ""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def _pandas(self) -> PandasProxy:
        qual = f"{type(self._obj).__name__}.{self.name}"
        warn_default(qual)
        collected = self._obj._to_pandas()
        proxy = PandasProxy(self._obj, qual, getattr(collected, self.name))
        proxy._collected = collected
        return proxy

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pandas()[key] = value

    def __getitem__(self, key: Any) -> Any:
        rows, cols = key if isinstance(key, tuple) and self._obj._meta.ndim == 2 else (key, None)
        if isinstance(key, tuple) and len(key) != 2:
            return self._pandas()[key]
        out = self._rows(rows)
        if out is NotImplemented:
            return self._pandas()[key]
        if cols is None or (isinstance(cols, slice) and cols == slice(None)):
            return out
        selected = self._columns(cols)
        if selected is NotImplemented:
            return self._pandas()[key]
        if isinstance(out, pandas.Series):  # one row (a label or position): pandas' own pick
            return out[selected] if is_list_like(selected) else out[selected]
        return out[selected]

    def _rows(self, rows: Any) -> Any:
        raise NotImplementedError

    def _columns(self, cols: Any) -> Any:
        raise NotImplementedError

    def _slice(self, start: int, stop: int) -> Any:
        """Rows `start:stop` (positions, step 1) as a new partitioned frame."""
        obj = self._obj
        lengths = obj._lengths()
        parts, offset = [], 0
        for p, n in zip(obj._parts, lengths):
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            if lo < hi:
                if lo == 0 and hi == n:
                    parts.append(p)
                else:
                    from runtime.dataframe.frame import _slice_rows

                    parts.append(Part(submit(_slice_rows, [p], lo=lo, hi=hi), hi - lo))
            offset += n
        if not parts:
            from runtime.dataframe.frame import from_pandas

            return from_pandas(obj._meta.copy(), 1)
        return obj._like(
            parts,
            obj._meta,
            same_rows=len(parts) == len(obj._parts) and start == 0 and stop >= sum(lengths),
        )

    def _one_row(self, position: int) -> Any:
        """The row at `position` as pandas gives it (a Series for a frame, a scalar for a Series)."""
        row = self._obj._collect_rows(slice(position, position + 1))
        return row.iloc[0]

    def _take(self, positions: np.ndarray) -> Any:
        """Rows at sorted `positions`, each partition taking its own in a task."""
        obj = self._obj
        offsets = np.cumsum([0, *obj._lengths()])
        parts = []
        for i, p in enumerate(obj._parts):
            lo, hi = np.searchsorted(positions, [offsets[i], offsets[i + 1]])
            if hi > lo:
                local = positions[lo:hi] - offsets[i]
                parts.append(Part(submit(_take_rows, [p], local), int(hi - lo)))
        return obj._like(parts, obj._meta, same_rows=False)

    def _mask(self, rows: Any) -> Any:
        """Rows where an aligned boolean Series is true, or NotImplemented."""
        from runtime.dataframe.frame import Series

        if (
            isinstance(rows, Series)
            and self._obj._aligned(rows)
            and is_bool_dtype(rows._meta.dtype)
        ):
            return self._obj._filter(rows)
        return NotImplemented


class ILocIndexer(_Indexer):
    """`obj.iloc[...]`: an int, a slice with step 1, each optionally with columns by position."""

    name = "iloc"

    def _rows(self, rows: Any) -> Any:
        if isinstance(rows, slice):
            if rows.step not in (None, 1):
                return NotImplemented
            for bound in (rows.start, rows.stop):
                if bound is not None and not is_integer(bound):
                    raise TypeError(
                        f"cannot do positional indexing on {type(self._obj._meta.index).__name__} "
                        f"with these indexers [{bound}] of type {type(bound).__name__}"
                    )
            start, stop, _ = rows.indices(len(self._obj))
            return self._slice(start, max(start, stop))
        if is_integer(rows) and not isinstance(rows, bool):
            total = len(self._obj)
            pos = int(rows) + total if rows < 0 else int(rows)
            if not 0 <= pos < total:
                raise IndexError("single positional indexer is out-of-bounds")
            return self._one_row(pos)
        return NotImplemented

    def _columns(self, cols: Any) -> Any:
        labels = self._obj._meta.columns
        if is_integer(cols) or isinstance(cols, slice):
            return labels[cols]
        if is_list_like(cols) and all(is_integer(c) and not isinstance(c, bool) for c in cols):
            return list(labels[list(cols)])
        return NotImplemented


class LocIndexer(_Indexer):
    """`obj.loc[...]`: a label, a label slice, an aligned boolean mask, `:`; columns by label."""

    name = "loc"

    def _rows(self, rows: Any) -> Any:
        mask = self._mask(rows)
        if mask is not NotImplemented:
            return mask
        if isinstance(rows, slice):
            if rows == slice(None):
                return self._obj
            if rows.step not in (None, 1):
                return NotImplemented
            index = self._obj.index
            where = index.slice_indexer(rows.start, rows.stop)  # pandas' KeyError/TypeError
            start, stop, step = where.indices(len(index))
            return self._slice(start, max(start, stop)) if step == 1 else NotImplemented
        if is_scalar(rows) or (isinstance(rows, tuple) and self._obj._meta.ndim == 1):
            index = self._obj.index
            where = index.get_loc(rows)  # pandas' KeyError for a missing label
            if is_integer(where):
                return self._one_row(int(where))
            if isinstance(where, slice) and where.step in (None, 1):
                start, stop, _ = where.indices(len(index))
                return self._slice(start, stop)
            if isinstance(where, np.ndarray) and where.dtype == bool:
                return self._take(np.flatnonzero(where))
        return NotImplemented

    def _columns(self, cols: Any) -> Any:
        meta = self._obj._meta
        if is_scalar(cols) or isinstance(cols, tuple):
            meta[cols]  # pandas' KeyError
            return cols
        if is_list_like(cols) and not any(isinstance(c, (bool, np.bool_)) for c in cols):
            meta[list(cols)]
            return list(cols)
        if isinstance(cols, slice):
            return list(meta.loc[:, cols].columns)
        return NotImplemented


def _take_rows(part: Any, positions: np.ndarray) -> Any:
    """The partition's rows at `positions`."""
    return part.take(positions)
