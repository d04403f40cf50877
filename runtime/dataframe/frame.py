"""`DataFrame` and `Series`: row partitions in the object store plus cached metadata."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas
from pandas.api.types import is_list_like, is_scalar

import runtime
from runtime.dataframe import kernels
from runtime.dataframe.config import NPartitions
from runtime.dataframe.engine import Part, ensure_started, fetch, fix_index, submit
from runtime.dataframe.fallback import (
    PandasProxy,
    call_pandas,
    to_pandas_args,
    warn_default,
    wrap_result,
)

__all__ = [
    "BaseFrame",
    "DataFrame",
    "Series",
    "concat",
    "execute",
    "from_pandas",
    "partitions",
    "to_pandas",
]

_ARITH = [
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
    "radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rmod", "rpow",
    "eq", "ne", "lt", "le", "gt", "ge",
]  # fmt: skip
_DUNDER = [
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
    "radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rmod", "rpow",
    "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "xor", "rand", "ror", "rxor",
]  # fmt: skip
_UNARY = ["__neg__", "__pos__", "__abs__", "__invert__"]
# Element-wise methods: each row's result depends on that row only, the index is kept.
_ELEMENTWISE = [
    "abs", "round", "isna", "isnull", "notna", "notnull", "astype", "clip", "copy",
    "add_prefix", "add_suffix", "replace", "convert_dtypes", "infer_objects",
]  # fmt: skip
# Of `.str` / `.dt`, the methods whose result for a row is not that row's alone.
_ACCESSOR_GLOBAL = {"str": {"cat", "get_dummies"}, "dt": set()}
# pandas methods that change the frame they are called on without `inplace=True`.
_MUTATORS = {"insert", "pop", "update", "__delitem__"}


def _fresh() -> object:
    """A new index token: frames sharing a token share rows, index and partitioning."""
    return object()


def _split(obj: Any, n: int) -> list[Any]:
    """`obj` cut into `n` row slices of near-equal length (at most one per row, at least one)."""
    rows = len(obj)
    n = max(1, min(n, rows))
    bounds = [rows * i // n for i in range(n + 1)]
    return [obj.iloc[bounds[i] : bounds[i + 1]] for i in range(n)]


def from_pandas(obj: pandas.DataFrame | pandas.Series, npartitions: int | None = None) -> Any:
    """A partitioned copy of a pandas DataFrame or Series (`NPartitions` row partitions)."""
    if not isinstance(obj, (pandas.DataFrame, pandas.Series)):
        raise TypeError(
            f"from_pandas expects a pandas DataFrame or Series, got {type(obj).__name__}"
        )
    ensure_started()
    pieces = _split(obj, npartitions or NPartitions.get())
    parts = [Part(runtime.put(p), len(p)) for p in pieces]
    cls = DataFrame if isinstance(obj, pandas.DataFrame) else Series
    return cls._build(parts, obj.iloc[:0], _fresh(), attrs=obj.attrs)


def to_pandas(obj: Any) -> Any:
    """The pandas object a runtime.dataframe DataFrame or Series holds (collected)."""
    if not isinstance(obj, BaseFrame):
        raise TypeError(f"to_pandas expects a runtime.dataframe object, got {type(obj).__name__}")
    return obj._to_pandas()


def execute(*objs: Any) -> None:
    """Wait until every partition of the given frames is computed (Modin's `modin.utils.execute`)."""
    refs = [p.ref for o in objs if isinstance(o, BaseFrame) for p in o._parts]
    if refs:
        runtime.wait(refs, num_returns=len(refs))
        fetch(
            [r for o in objs if isinstance(o, BaseFrame) for r in [o._parts[0].ref]]
        )  # errors surface
        for o in objs:
            if isinstance(o, BaseFrame):
                o._lengths()


def partitions(obj: Any) -> pandas.DataFrame:
    """One row per partition of `obj`: its ObjectRef in the store and its row count."""
    if not isinstance(obj, BaseFrame):
        raise TypeError(f"partitions expects a runtime.dataframe object, got {type(obj).__name__}")
    return pandas.DataFrame({"ref": [p.ref for p in obj._parts], "rows": obj._lengths()})


class BaseFrame:
    """What DataFrame and Series share: partitions, metadata, fallback to pandas."""

    _pandas_type: type = pandas.DataFrame
    _parts: list[Part]
    _meta: Any
    _token: object

    # -- construction ------------------------------------------------------------------
    @classmethod
    def _build(
        cls, parts: list[Part], meta: Any, token: object | None = None, attrs: dict | None = None
    ) -> Any:
        self = object.__new__(cls)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_meta", meta)
        object.__setattr__(self, "_token", token if token is not None else _fresh())
        if attrs:
            meta.attrs.update(attrs)
        return self

    def _replace_with(self, pandas_obj: Any) -> None:
        """Make this object hold `pandas_obj` (after an in-place pandas method)."""
        new = from_pandas(pandas_obj, max(len(self._parts), 1))
        object.__setattr__(self, "_parts", new._parts)
        object.__setattr__(self, "_meta", new._meta)
        object.__setattr__(self, "_token", _fresh())

    def _like(self, parts: list[Part], meta: Any, same_rows: bool) -> Any:
        """A frame of the class `meta` calls for; same token when the rows are this frame's."""
        cls = DataFrame if isinstance(meta, pandas.DataFrame) else Series
        return cls._build(parts, meta, self._token if same_rows else None)

    # -- partitions --------------------------------------------------------------------
    def _lengths(self) -> list[int]:
        """Row counts of the partitions (fetching the ones not known yet)."""
        unknown = [i for i, p in enumerate(self._parts) if not isinstance(p.length, int)]
        if unknown:
            values = fetch([self._parts[i].length for i in unknown])
            parts = list(self._parts)
            for i, n in zip(unknown, values):
                parts[i] = Part(parts[i].ref, int(n), parts[i].start)
            object.__setattr__(self, "_parts", parts)
        return [int(p.length) for p in self._parts]  # type: ignore[arg-type]

    def _to_pandas(self) -> Any:
        """Collect the partitions into one pandas object."""
        values = fetch([p.ref for p in self._parts])
        values = [fix_index(v, p.start) for v, p in zip(values, self._parts)]
        out = values[0] if len(values) == 1 else pandas.concat(values)
        if not out.attrs and self._meta.attrs:
            out.attrs.update(self._meta.attrs)
        return out

    def _map(
        self,
        kernel: Callable[..., Any],
        *,
        others: Sequence[BaseFrame] = (),
        meta: Any = None,
        **kwargs: Any,
    ) -> Any:
        """One task per partition: `kernel(part, *other_parts, **kwargs)`, rows kept.

        With `meta` None the result's metadata comes from the results (user functions);
        partitions whose dtypes disagree are cast to the dtypes of their concatenation.
        """
        if meta is not None:
            parts = [
                Part(submit(kernel, [p, *(o._parts[i] for o in others)], **kwargs), p.length)
                for i, p in enumerate(self._parts)
            ]
            return self._like(parts, meta, same_rows=True)
        lengths = self._lengths()
        live = [i for i, n in enumerate(lengths) if n]
        if not live:  # every partition empty: pandas on the (empty) collected frame decides
            args = [o._to_pandas() for o in others]
            return wrap_result(kernel(self._to_pandas(), *args, **kwargs))
        refs = {}
        metas = {}
        for i in live:
            ref, m = submit(
                _with_meta, [self._parts[i], *(o._parts[i] for o in others)], num_returns=2,
                kernel=kernel, kw=kwargs,
            )  # fmt: skip
            refs[i], metas[i] = ref, m
        fetched = dict(zip(live, fetch([metas[i] for i in live])))
        return self._assemble(refs, fetched, lengths)

    def _assemble(self, refs: dict[int, Any], metas: dict[int, Any], lengths: list[int]) -> Any:
        """A frame of results (non-empty partitions only) with dtypes unified."""
        kinds = {type(m) for m in metas.values()}
        if len(kinds) != 1 or not isinstance(
            next(iter(metas.values())), (pandas.DataFrame, pandas.Series)
        ):
            # results of different kinds per partition (or not frames): let pandas combine them
            values = fetch([refs[i] for i in sorted(refs)])
            return wrap_result(_combine_values(values))
        combined = pandas.concat([metas[i] for i in sorted(metas)])
        parts = []
        for i in sorted(refs):
            ref = refs[i]
            if not _same_dtypes(metas[i], combined):
                ref = submit(
                    kernels.apply_method,
                    [Part(ref, lengths[i])],
                    method="astype",
                    args=(_dtypes_of(combined),),
                )
            parts.append(Part(ref, lengths[i]))
        same = len(parts) == len(self._parts)
        return self._like(parts, combined, same_rows=same)

    # -- fallback ----------------------------------------------------------------------
    def _default(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run pandas' `name` on the collected object, warning once; keep in-place changes."""
        qual = f"{type(self).__name__}.{name}"
        collected = self._to_pandas()
        method = getattr(collected, name)
        result = call_pandas(qual, method, args, kwargs)
        if kwargs.get("inplace") or name in _MUTATORS:
            self._replace_with(collected)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private and display hooks (`_repr_latex_`) are not pandas API
            raise AttributeError(name)
        meta = object.__getattribute__(self, "_meta")
        if (
            isinstance(meta, pandas.DataFrame)
            and name in meta.columns
            and not hasattr(pandas.DataFrame, name)
        ):
            return self[name]
        if not hasattr(type(meta), name) and not hasattr(meta, name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        attr = getattr(type(meta), name, None)
        if callable(attr) and not isinstance(attr, type):

            def method(*args: Any, **kwargs: Any) -> Any:
                return self._default(name, *args, **kwargs)

            method.__name__ = name
            method.__doc__ = getattr(attr, "__doc__", None)
            return method
        qual = f"{type(self).__name__}.{name}"
        warn_default(qual)
        collected = self._to_pandas()
        value = getattr(collected, name)
        if isinstance(value, (pandas.DataFrame, pandas.Series)) or is_scalar(value):
            return wrap_result(value)
        if isinstance(value, (pandas.Index, np.ndarray)):
            return value
        proxy = PandasProxy(self, qual, value)
        proxy._collected = collected
        return proxy

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_parts", "_meta", "_token"):
            object.__setattr__(self, name, value)
        elif isinstance(self._meta, pandas.DataFrame) and name in self._meta.columns:
            self[name] = value
        elif isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
        else:
            collected = self._to_pandas()
            warn_default(f"{type(self).__name__}.__setattr__")
            setattr(collected, name, to_pandas_args(value))
            self._replace_with(collected)

    # -- metadata ----------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(self._lengths())

    @property
    def shape(self) -> tuple[int, ...]:
        """Rows (and columns), as pandas."""
        if isinstance(self._meta, pandas.DataFrame):
            return (len(self), len(self._meta.columns))
        return (len(self),)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        """1 for a Series, 2 for a DataFrame."""
        return self._meta.ndim

    @property
    def empty(self) -> bool:
        """True when there are no elements."""
        return self.size == 0

    @property
    def index(self) -> pandas.Index:
        """The row index (collected from the partitions)."""
        lengths = self._lengths()
        pieces = []
        refs = []
        for p, n in zip(self._parts, lengths):
            if p.start is not None:
                pieces.append(pandas.RangeIndex(p.start, p.start + n))
            else:
                pieces.append(None)
                refs.append(submit(kernels.index_of, [p]))
        got = iter(fetch(refs))
        pieces = [x if x is not None else next(got) for x in pieces]
        if all(isinstance(x, pandas.RangeIndex) for x in pieces):
            index = _join_ranges(pieces)
            if index is not None:
                return index.rename(self._meta.index.name)
        return pieces[0].append(pieces[1:]) if len(pieces) > 1 else pieces[0]

    @index.setter
    def index(self, value: Any) -> None:
        collected = self._to_pandas()
        collected.index = to_pandas_args(value)
        self._replace_with(collected)

    @property
    def loc(self) -> Any:
        """Rows by label (a label, a label slice, an aligned boolean mask) and columns by label."""
        from runtime.dataframe.indexing import LocIndexer

        return LocIndexer(self)

    @property
    def iloc(self) -> Any:
        """Rows by position (an int, a slice) and columns by position."""
        from runtime.dataframe.indexing import ILocIndexer

        return ILocIndexer(self)

    @property
    def attrs(self) -> dict:
        """pandas' `attrs` (kept on the metadata)."""
        return self._meta.attrs

    def _collect_rows(self, positions: slice) -> Any:
        """Rows at `positions` (a slice of row numbers) as one pandas object, fetched lazily."""
        lengths = self._lengths()
        start, stop, _ = positions.indices(sum(lengths))
        refs, offset = [], 0
        for p, n in zip(self._parts, lengths):
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            if lo < hi:
                if lo == 0 and hi == n:
                    refs.append((p.ref, p.start, None))
                else:
                    refs.append((submit(_slice_rows, [p], lo=lo, hi=hi), None, None))
            offset += n
        if not refs:
            return self._meta.copy()
        values = fetch([r for r, _, _ in refs])
        values = [fix_index(v, s) for v, (_, s, _) in zip(values, refs)]
        return values[0] if len(values) == 1 else pandas.concat(values)

    def head(self, n: int = 5) -> Any:
        """The first `n` rows (all but the last `-n` when negative), as pandas."""
        total = len(self)
        stop = n if n >= 0 else max(total + n, 0)
        return from_pandas(self._collect_rows(slice(0, min(stop, total))), 1)

    def tail(self, n: int = 5) -> Any:
        """The last `n` rows (all but the first `-n` when negative)."""
        total = len(self)
        if n == 0:
            return from_pandas(self._meta.copy(), 1)
        start = max(total - n, 0) if n > 0 else min(-n, total)
        return from_pandas(self._collect_rows(slice(start, total)), 1)

    def _repr_source(self) -> tuple[Any, bool]:
        """The pandas object to print and whether it is a head+tail excerpt."""
        total = len(self)
        max_rows = pandas.get_option("display.max_rows") or total
        if total <= max_rows:
            return self._to_pandas(), False
        k = max_rows // 2 + 1
        return pandas.concat(
            [self._collect_rows(slice(0, k)), self._collect_rows(slice(total - k, total))]
        ), True

    def __repr__(self) -> str:
        obj, cut = self._repr_source()
        text = repr(obj)
        if cut:
            lines = text.rsplit("\n", 1)
            if isinstance(obj, pandas.DataFrame):
                text = lines[0] + f"\n[{len(self)} rows x {len(self._meta.columns)} columns]"
            else:
                text = text.replace(f"Length: {len(obj)}", f"Length: {len(self)}")
        return text

    def _repr_html_(self) -> str | None:
        obj, _ = self._repr_source()
        return obj._repr_html_() if isinstance(obj, pandas.DataFrame) else None

    def to_pandas(self) -> Any:
        """Collect into a pandas object (Modin's `_to_pandas`)."""
        return self._to_pandas()

    def to_numpy(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """The values as a numpy array (collected)."""
        return self._to_pandas().to_numpy(*args, **kwargs)

    @property
    def values(self) -> Any:
        """The values as a numpy array (collected)."""
        return self._to_pandas().values

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self._to_pandas(), dtype=dtype)

    def __iter__(self) -> Any:
        return iter(self._to_pandas())

    def __contains__(self, key: Any) -> bool:
        return key in self._to_pandas() if isinstance(self, Series) else key in self._meta.columns

    def __bool__(self) -> bool:
        raise ValueError(
            f"The truth value of a {type(self).__name__} is ambiguous. "
            "Use a.empty, a.bool(), a.item(), a.any() or a.all()."
        )

    def __copy__(self) -> Any:
        return self.copy(deep=False)

    def __deepcopy__(self, memo: Any) -> Any:
        return self.copy(deep=True)

    def __reduce__(self) -> Any:
        return (from_pandas, (self._to_pandas(), len(self._parts)))

    # -- element-wise ------------------------------------------------------------------
    def _elementwise(self, method: str, *args: Any, **kw: Any) -> Any:
        """`method` on each partition (rows and index kept), metadata from the empty frame."""
        try:
            meta = getattr(self._meta, method)(*args, **kw)
        except Exception:
            return self._default(method, *args, **kw)
        if not isinstance(meta, (pandas.DataFrame, pandas.Series)) or kw.get("inplace"):
            return self._default(method, *args, **kw)
        return self._map(kernels.apply_method, meta=meta, method=method, args=args, kw=kw)

    def _aligned(self, other: Any) -> bool:
        """True when `other` is partitioned like this frame, row for row."""
        return (
            isinstance(other, BaseFrame)
            and other._token is self._token
            and len(other._parts) == len(self._parts)
        )

    def _binary(self, op: str, other: Any, **kw: Any) -> Any:
        """`self.op(other)` per partition when that is pandas' answer, else in pandas."""
        axis = kw.get("axis", "columns")
        if isinstance(other, BaseFrame):
            if not self._aligned(other) or (
                isinstance(self, DataFrame) and isinstance(other, Series) and axis in ("columns", 1)
            ):
                return self._default(op, other, **kw)
            try:
                meta = getattr(self._meta, op)(other._meta, **kw)
            except Exception:
                return self._default(op, other, **kw)
            return self._map(kernels.binary, others=[other], meta=meta, op=op, kw=kw)
        if is_scalar(other) or (
            isinstance(self, DataFrame)
            and axis in ("columns", 1)
            and is_list_like(other)
            and not isinstance(other, (pandas.DataFrame, BaseFrame))
            and (isinstance(other, (pandas.Series, dict)) or np.ndim(other) == 1)
        ):
            try:
                meta = getattr(self._meta, op)(other, **kw)
            except Exception:
                return self._default(op, other, **kw)
            return self._map(kernels.binary, meta=meta, op=op, value=other, use_value=True, kw=kw)
        return self._default(op, other, **kw)

    def _unary(self, op: str) -> Any:
        meta = getattr(self._meta, op)()
        return self._map(kernels.apply_method, meta=meta, method=op)

    def where(self, cond: Any, other: Any = np.nan, **kw: Any) -> Any:
        """Keep values where `cond` holds, else `other` (per partition when aligned)."""
        return self._cond("where", cond, other, **kw)

    def mask(self, cond: Any, other: Any = np.nan, **kw: Any) -> Any:
        """Replace values where `cond` holds with `other` (per partition when aligned)."""
        return self._cond("mask", cond, other, **kw)

    def _cond(self, name: str, cond: Any, other: Any, **kw: Any) -> Any:
        if kw or not self._aligned(cond) or not (is_scalar(other) or self._aligned(other)):
            return self._default(name, cond, other, **kw)
        others = [cond] + ([other] if isinstance(other, BaseFrame) else [])
        value = None if isinstance(other, BaseFrame) else other
        meta = getattr(self._meta, name)(
            cond._meta, other._meta if isinstance(other, BaseFrame) else other
        )
        return self._map(_cond_kernel, others=others, meta=meta, name=name, value=value)

    def fillna(self, value: Any = None, **kw: Any) -> Any:
        """Fill missing values with a scalar or per-column dict (per partition); else pandas."""
        if kw or not (is_scalar(value) or isinstance(value, dict)) or value is None:
            return self._default("fillna", value, **kw)
        return self._elementwise("fillna", value)

    def dropna(self, **kw: Any) -> Any:
        """Rows with missing values dropped per partition (axis 0); otherwise pandas."""
        from runtime.dataframe.reductions import dropna

        out = dropna(self, kw)
        return self._default("dropna", **kw) if out is NotImplemented else out

    def nunique(self, axis: Any = 0, dropna: bool = True) -> Any:
        """Distinct values (per column): each partition's distinct values pooled."""
        from runtime.dataframe.reductions import nunique

        out = nunique(self, axis, dropna)
        if out is NotImplemented:
            return self._default("nunique", **({"axis": axis} if axis else {}), dropna=dropna)
        return out

    def isin(self, values: Any) -> Any:
        """Whether each element is in `values` (a list-like or dict; per partition)."""
        if isinstance(values, (BaseFrame, pandas.Series, pandas.DataFrame)):
            return self._default("isin", values)
        return self._elementwise("isin", values)

    # -- row-wise ----------------------------------------------------------------------
    def _filter(self, mask: BaseFrame) -> Any:
        """Rows where the aligned boolean `mask` is true, partition by partition."""
        parts = []
        for p, mp in zip(self._parts, mask._parts):
            ref, n, _ = submit(kernels.filter_rows, [p, mp], num_returns=3)
            parts.append(Part(ref, n))
        return self._like(parts, self._meta, same_rows=False)

    def sort_values(self, *args: Any, **kwargs: Any) -> Any:
        """Sort by values: sampled boundaries, range partitioning, a stable local sort."""
        from runtime.dataframe.sort import sort_values

        return sort_values(self, *args, **kwargs)

    def describe(self, *args: Any, **kwargs: Any) -> Any:
        """Summary statistics, one task per column (pandas' `describe` on each)."""
        from runtime.dataframe.describe import describe

        return describe(self, *args, **kwargs)

    def groupby(self, *args: Any, **kwargs: Any) -> Any:
        """Group rows: per-partition partial aggregation, then a tree reduce."""
        from runtime.dataframe.groupby import groupby

        return groupby(self, *args, **kwargs)


def _with_meta(*frames: Any, kernel: Callable[..., Any], kw: dict) -> tuple[Any, Any]:
    """`kernel(*frames, **kw)` and the metadata of its result (or the result if not a frame)."""
    out = kernel(*frames, **kw)
    meta = out.iloc[:0] if isinstance(out, (pandas.DataFrame, pandas.Series)) else out
    return out, meta


def _cond_kernel(part: Any, cond: Any, other: Any = None, *, name: str, value: Any) -> Any:
    """`part.where/mask(cond, other)` with the other value or partition."""
    return getattr(part, name)(cond, value if other is None else other)


def _slice_rows(part: Any, lo: int, hi: int) -> Any:
    """Rows `lo:hi` of the partition."""
    return part.iloc[lo:hi]


def _join_ranges(pieces: list[pandas.RangeIndex]) -> pandas.RangeIndex | None:
    """The RangeIndex the consecutive step-1 ranges make together, or None."""
    start = pieces[0].start
    pos = start
    for r in pieces:
        if len(r) and (r.step != 1 or r.start != pos):
            return None
        pos += len(r)
    return pandas.RangeIndex(start, pos)


def _same_dtypes(a: Any, b: Any) -> bool:
    if isinstance(a, pandas.DataFrame):
        return list(a.columns) == list(b.columns) and (a.dtypes == b.dtypes).all()
    return a.dtype == b.dtype


def _dtypes_of(meta: Any) -> Any:
    return meta.dtypes.to_dict() if isinstance(meta, pandas.DataFrame) else meta.dtype


def _combine_values(values: list[Any]) -> Any:
    """Per-partition results pandas would have computed on the whole (concatenated)."""
    frames = [v for v in values if isinstance(v, (pandas.DataFrame, pandas.Series))]
    if len(frames) == len(values):
        return pandas.concat(values)
    raise TypeError("the function returned values of mixed kinds across partitions")


def _install_operators(cls: type) -> None:
    """Arithmetic, comparison and logical operators and their named methods on `cls`."""
    for name in _DUNDER:
        dunder = f"__{name}__"

        def op(self: BaseFrame, other: Any, _op: str = dunder) -> Any:
            return self._binary(_op, other)

        op.__name__ = dunder
        op.__doc__ = f"`{dunder}` per partition (pandas semantics)."
        setattr(cls, dunder, op)
    for name in _ARITH:

        def named(self: BaseFrame, other: Any, *args: Any, _op: str = name, **kw: Any) -> Any:
            if args:
                return self._default(_op, other, *args, **kw)
            return self._binary(_op, other, **kw)

        named.__name__ = name
        named.__doc__ = f"`{name}` per partition (pandas semantics)."
        setattr(cls, name, named)
    for alias, target in {
        "div": "truediv",
        "rdiv": "rtruediv",
        "subtract": "sub",
        "multiply": "mul",
        "divide": "truediv",
    }.items():
        setattr(cls, alias, getattr(cls, target))
    for dunder in _UNARY:

        def unary(self: BaseFrame, _op: str = dunder) -> Any:
            return self._unary(_op)

        unary.__name__ = dunder
        setattr(cls, dunder, unary)
    for name in _ELEMENTWISE:

        def elementwise(self: BaseFrame, *args: Any, _m: str = name, **kw: Any) -> Any:
            return self._elementwise(_m, *args, **kw)

        elementwise.__name__ = name
        elementwise.__doc__ = f"`{name}` per partition (element-wise; pandas semantics)."
        setattr(cls, name, elementwise)


_install_operators(BaseFrame)

_REDUCTIONS = ["sum", "prod", "min", "max", "count", "mean", "var", "std"]


def _install_reductions(cls: type) -> None:
    """Full-frame reductions over partitions (`runtime.dataframe.reductions`), else pandas."""
    from runtime.dataframe import reductions

    for name in _REDUCTIONS:

        def reduction(self: BaseFrame, *args: Any, _name: str = name, **kw: Any) -> Any:
            if args:
                return self._default(_name, *args, **kw)
            given = {"axis": kw["axis"]} if "axis" in kw else {}
            axis = kw.pop("axis", 0)
            out = reductions.reduce(self, _name, axis, kw)
            return self._default(_name, **given, **kw) if out is NotImplemented else out

        reduction.__name__ = name
        reduction.__doc__ = (
            f"pandas' `{name}`: per-partition results reduced again (axis 0), per row (axis 1)."
        )
        setattr(cls, name, reduction)


_install_reductions(BaseFrame)


class DataFrame(BaseFrame):
    """pandas' DataFrame over row partitions in the object store (Modin's semantics).

    Constructed exactly as pandas' (`DataFrame(data, index, columns, dtype, copy)`).
    """

    def __init__(
        self,
        data: Any = None,
        index: Any = None,
        columns: Any = None,
        dtype: Any = None,
        copy: bool | None = None,
    ) -> None:
        if isinstance(data, BaseFrame):
            if index is None and columns is None and dtype is None:
                source = data if isinstance(data, DataFrame) else data.to_frame()
                self._parts, self._meta, self._token = source._parts, source._meta, source._token
                return
            data = data._to_pandas()
        data = to_pandas_args(data)
        built = from_pandas(
            pandas.DataFrame(
                data, index=index, columns=to_pandas_args(columns), dtype=dtype, copy=copy
            )
        )
        self._parts, self._meta, self._token = built._parts, built._meta, built._token

    @property
    def columns(self) -> pandas.Index:
        """The column labels."""
        return self._meta.columns

    @columns.setter
    def columns(self, value: Any) -> None:
        meta = self._meta.set_axis(to_pandas_args(value), axis=1)
        new = self._map(
            kernels.apply_method, meta=meta, method="set_axis", args=(meta.columns,), kw={"axis": 1}
        )
        object.__setattr__(self, "_parts", new._parts)
        object.__setattr__(self, "_meta", meta)

    @property
    def dtypes(self) -> pandas.Series:
        """The column dtypes."""
        return self._meta.dtypes

    @property
    def T(self) -> Any:  # noqa: N802
        """The transpose (in pandas)."""
        return self._default("transpose")

    def keys(self) -> pandas.Index:
        """The column labels."""
        return self._meta.columns

    def items(self) -> Iterable[tuple[Hashable, Series]]:
        """(label, column) pairs."""
        for c in self._meta.columns:
            yield c, self[c]

    def __getitem__(self, key: Any) -> Any:
        meta = self._meta
        if isinstance(key, BaseFrame):
            if isinstance(key, Series) and self._aligned(key) and key._meta.dtype == bool:
                return self._filter(key)
            return self._default("__getitem__", key)
        if isinstance(key, slice) or callable(key):
            return self._default("__getitem__", key)
        if is_list_like(key) and not isinstance(key, tuple):
            arr = list(key)
            if len(arr) and all(isinstance(k, (bool, np.bool_)) for k in arr):
                return self._default("__getitem__", key)
            sub = meta[arr]  # raises pandas' KeyError for missing labels
            return self._map(kernels.apply_method, meta=sub, method="__getitem__", args=(arr,))
        sub = meta[key]  # KeyError as pandas
        return self._map(kernels.apply_method, meta=sub, method="__getitem__", args=(key,))

    def __setitem__(self, key: Any, value: Any) -> None:
        simple = is_scalar(value) or (self._aligned(value) and isinstance(value, Series))
        if (is_scalar(key) or isinstance(key, tuple)) and simple:
            new = self._setcol(key, value)
            if new is not None:
                object.__setattr__(self, "_parts", new._parts)
                object.__setattr__(self, "_meta", new._meta)
                return
        collected = self._to_pandas()
        warn_default("DataFrame.__setitem__")
        collected[to_pandas_args(key)] = to_pandas_args(value)
        self._replace_with(collected)

    def _setcol(self, key: Any, value: Any) -> Any:
        meta = self._meta.copy()
        try:
            meta[key] = value._meta if isinstance(value, BaseFrame) else value
        except Exception:
            return None
        if isinstance(value, BaseFrame):
            return self._map(_set_column, others=[value], meta=meta, key=key)
        return self._map(_set_column, meta=meta, key=key, value=value, scalar=True)

    def __delitem__(self, key: Any) -> None:
        new = self.drop(columns=[key])
        object.__setattr__(self, "_parts", new._parts)
        object.__setattr__(self, "_meta", new._meta)

    def assign(self, **kwargs: Any) -> DataFrame:
        """New columns (callables get the frame, as in pandas); per partition."""
        out = self.copy(deep=False)
        for key, value in kwargs.items():
            out[key] = value(out) if callable(value) else value
        return out

    def drop(
        self,
        labels: Any = None,
        *,
        axis: Any = 0,
        index: Any = None,
        columns: Any = None,
        level: Any = None,
        inplace: bool = False,
        errors: str = "raise",
    ) -> Any:
        """Drop columns per partition; dropping rows defaults to pandas."""
        if axis in (1, "columns") and labels is not None and columns is None:
            columns, labels = labels, None
        if (
            labels is not None
            or index is not None
            or level is not None
            or inplace
            or columns is None
        ):
            return self._default(
                "drop",
                labels,
                axis=axis,
                index=index,
                columns=columns,
                level=level,
                inplace=inplace,
                errors=errors,
            )
        return self._elementwise("drop", columns=columns, errors=errors)

    def rename(
        self,
        mapper: Any = None,
        *,
        index: Any = None,
        columns: Any = None,
        axis: Any = None,
        copy: Any = None,
        inplace: bool = False,
        level: Any = None,
        errors: str = "ignore",
    ) -> Any:
        """Rename columns per partition; renaming rows defaults to pandas."""
        if mapper is not None and axis in (1, "columns"):
            columns, mapper = mapper, None
        if (
            mapper is not None
            or index is not None
            or inplace
            or columns is None
            or level is not None
        ):
            return self._default(
                "rename",
                mapper,
                index=index,
                columns=columns,
                axis=axis,
                inplace=inplace,
                level=level,
                errors=errors,
            )
        return self._elementwise("rename", columns=columns, errors=errors)

    def select_dtypes(self, include: Any = None, exclude: Any = None) -> DataFrame:
        """Columns of the given dtypes (per partition)."""
        return self._elementwise("select_dtypes", include=include, exclude=exclude)

    def apply(
        self,
        func: Any,
        axis: Any = 0,
        raw: bool = False,
        result_type: Any = None,
        args: tuple = (),
        by_row: Any = "compat",
        engine: Any = None,
        engine_kwargs: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Row-wise (`axis=1`) apply runs per partition; column-wise defaults to pandas."""
        if axis not in (1, "columns") or not callable(func) or engine is not None:
            return self._default(
                "apply",
                func,
                axis=axis,
                raw=raw,
                result_type=result_type,
                args=args,
                by_row=by_row,
                engine=engine,
                engine_kwargs=engine_kwargs,
                **kwargs,
            )
        return self._map(
            kernels.apply_method,
            method="apply",
            args=(func,),
            kw={"axis": 1, "raw": raw, "result_type": result_type, "args": args, **kwargs},
        )

    def map(self, func: Any, na_action: Any = None, **kwargs: Any) -> DataFrame:
        """Element-wise `func` per partition (pandas' `DataFrame.map`)."""
        return self._map(
            kernels.apply_method, method="map", args=(func,), kw={"na_action": na_action, **kwargs}
        )

    def applymap(self, func: Any, na_action: Any = None, **kwargs: Any) -> DataFrame:
        """Alias of `map` (pandas' old name)."""
        return self.map(func, na_action=na_action, **kwargs)

    def merge(self, right: Any, *args: Any, **kwargs: Any) -> DataFrame:
        """Database-style join: hash-partitioned shuffle of both sides, pandas merge per bucket."""
        from runtime.dataframe.merge import merge

        return merge(self, right, *args, **kwargs)

    def join(self, other: Any, *args: Any, **kwargs: Any) -> DataFrame:
        """Join on the index (or `on` column) via the parallel merge."""
        from runtime.dataframe.merge import join

        return join(self, other, *args, **kwargs)

    def to_frame(self) -> DataFrame:
        """Itself."""
        return self

    def copy(self, deep: bool = True) -> DataFrame:
        """A copy (partitions are immutable, so both share them)."""
        return DataFrame._build(list(self._parts), self._meta.copy(), self._token)

    def info(self, *args: Any, **kwargs: Any) -> None:
        """pandas' `info` on the collected frame."""
        return self._default("info", *args, **kwargs)


def _set_column(
    part: Any, value_part: Any = None, *, key: Any, value: Any = None, scalar: bool = False
) -> Any:
    """`part` with column `key` set to a scalar or the aligned Series partition."""
    out = part.copy(deep=False)
    out[key] = value if scalar else value_part
    return out


class _Accessor:
    """`.str` / `.dt` of a Series: element-wise methods per partition, the rest in pandas."""

    def __init__(self, series: Series, name: str) -> None:
        self._series = series
        self._name = name
        self._meta = getattr(series._meta, name)  # raises pandas' AttributeError for bad dtypes

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        target = getattr(self._meta, method)
        series = self._series
        if method in _ACCESSOR_GLOBAL[self._name]:

            def fallback(*args: Any, **kw: Any) -> Any:
                return call_pandas(
                    f"Series.{self._name}.{method}",
                    getattr(getattr(series._to_pandas(), self._name), method),
                    args,
                    kw,
                )

            return fallback if callable(target) else fallback()
        if not callable(target):
            return series._map(
                kernels.accessor_method,
                meta=target,
                accessor=self._name,
                method=method,
                args=(),
                kw={},
            )

        def run(*args: Any, **kw: Any) -> Any:
            try:
                meta = target(*args, **kw)
            except Exception:
                return call_pandas(
                    f"Series.{self._name}.{method}",
                    getattr(getattr(series._to_pandas(), self._name), method),
                    args,
                    kw,
                )
            if not isinstance(meta, (pandas.Series, pandas.DataFrame)):
                return call_pandas(
                    f"Series.{self._name}.{method}",
                    getattr(getattr(series._to_pandas(), self._name), method),
                    args,
                    kw,
                )
            if isinstance(meta, pandas.DataFrame):  # expand=True: columns depend on the data
                return series._map(
                    kernels.accessor_method, accessor=self._name, method=method, args=args, kw=kw
                )
            return series._map(
                kernels.accessor_method,
                meta=meta,
                accessor=self._name,
                method=method,
                args=args,
                kw=kw,
            )

        return run


class Series(BaseFrame):
    """pandas' Series over row partitions in the object store (Modin's semantics)."""

    _pandas_type = pandas.Series

    def __init__(
        self,
        data: Any = None,
        index: Any = None,
        dtype: Any = None,
        name: Any = None,
        copy: bool | None = None,
    ) -> None:
        if isinstance(data, BaseFrame):
            if index is None and dtype is None and name is None and isinstance(data, Series):
                self._parts, self._meta, self._token = data._parts, data._meta, data._token
                return
            data = data._to_pandas()
        data = to_pandas_args(data)
        built = from_pandas(pandas.Series(data, index=index, dtype=dtype, name=name, copy=copy))
        self._parts, self._meta, self._token = built._parts, built._meta, built._token

    @property
    def name(self) -> Hashable:
        """The Series' name."""
        return self._meta.name

    @name.setter
    def name(self, value: Hashable) -> None:
        new = self.rename(value)
        object.__setattr__(self, "_parts", new._parts)
        object.__setattr__(self, "_meta", new._meta)

    @property
    def dtype(self) -> Any:
        """The values' dtype."""
        return self._meta.dtype

    dtypes = dtype

    @property
    def str(self) -> _Accessor:
        """String methods, element-wise per partition."""
        return _Accessor(self, "str")

    @property
    def dt(self) -> _Accessor:
        """Datetime properties and methods, element-wise per partition."""
        return _Accessor(self, "dt")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, Series) and self._aligned(key) and key._meta.dtype == bool:
            return self._filter(key)
        return self._default("__getitem__", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        collected = self._to_pandas()
        warn_default("Series.__setitem__")
        collected[to_pandas_args(key)] = to_pandas_args(value)
        self._replace_with(collected)

    def rename(self, index: Any = None, **kwargs: Any) -> Any:
        """A new name (scalar) per partition; relabelling rows defaults to pandas."""
        if kwargs or not (is_scalar(index) or isinstance(index, tuple)) or index is None:
            return self._default("rename", index, **kwargs)
        return self._elementwise("rename", index)

    def map(self, arg: Any, na_action: Any = None) -> Series:
        """Map values by a function, dict or Series (per partition)."""
        arg = to_pandas_args(arg)
        return self._map(
            kernels.apply_method, method="map", args=(arg,), kw={"na_action": na_action}
        )

    def apply(
        self,
        func: Any,
        convert_dtype: Any = None,
        args: tuple = (),
        *,
        by_row: Any = "compat",
        **kwargs: Any,
    ) -> Any:
        """`func` on each value (per partition); a ufunc or string name defaults to pandas."""
        if not callable(func) or isinstance(func, np.ufunc) or by_row != "compat":
            return self._default("apply", func, args=args, by_row=by_row, **kwargs)
        return self._map(
            kernels.apply_method, method="apply", args=(func,), kw={"args": args, **kwargs}
        )

    def unique(self) -> Any:
        """Distinct values in order of appearance: each partition's distinct values pooled."""
        from runtime.dataframe.reductions import unique

        out = unique(self)
        return self._default("unique") if out is NotImplemented else out

    def between(self, left: Any, right: Any, inclusive: str = "both") -> Series:
        """Whether each value is between `left` and `right` (per partition)."""
        return self._elementwise("between", left, right, inclusive=inclusive)

    def value_counts(
        self,
        normalize: bool = False,
        sort: bool = True,
        ascending: bool = False,
        bins: Any = None,
        dropna: bool = True,
    ) -> Series:
        """Counts of unique values: per-partition counts, summed in first-seen order, then sorted."""
        from runtime.dataframe.groupby import value_counts

        return value_counts(
            self, normalize=normalize, sort=sort, ascending=ascending, bins=bins, dropna=dropna
        )

    def to_frame(self, name: Any = None) -> DataFrame:
        """The Series as a one-column DataFrame (per partition)."""
        args = () if name is None else (name,)
        return self._elementwise("to_frame", *args)

    def copy(self, deep: bool = True) -> Series:
        """A copy (partitions are immutable, so both share them)."""
        return Series._build(list(self._parts), self._meta.copy(), self._token)


def concat(
    objs: Any,
    *,
    axis: Any = 0,
    join: str = "outer",
    ignore_index: bool = False,
    keys: Any = None,
    levels: Any = None,
    names: Any = None,
    verify_integrity: bool = False,
    sort: bool = False,
    copy: Any = None,
) -> Any:
    """pandas' `concat`; rows of frames with the same columns join without moving data."""

    def in_pandas() -> Any:
        return call_pandas(
            "concat",
            pandas.concat,
            (objs,),
            dict(
                axis=axis,
                join=join,
                ignore_index=ignore_index,
                keys=keys,
                levels=levels,
                names=names,
                verify_integrity=verify_integrity,
                sort=sort,
            ),
        )

    if isinstance(objs, dict):
        return in_pandas()
    items = [o for o in objs if o is not None]
    simple = (
        axis in (0, "index") and keys is None and levels is None and names is None and not verify_integrity
        and items and all(isinstance(o, BaseFrame) for o in items)
        and len({type(o) for o in items}) == 1
    )  # fmt: skip
    if simple and isinstance(items[0], DataFrame):
        first = items[0]._meta.columns
        simple = all(o._meta.columns.equals(first) for o in items) and first.is_unique
    if not simple:
        return in_pandas()
    meta = pandas.concat([o._meta for o in items], ignore_index=ignore_index)
    parts: list[Part] = []
    offset = 0
    for o in items:
        lengths = o._lengths() if ignore_index else [p.length for p in o._parts]
        cast = not _same_dtypes(o._meta, meta)
        for p, n in zip(o._parts, lengths):
            start = offset if ignore_index else p.start
            if cast:
                p = Part(
                    submit(kernels.apply_method, [p], method="astype", args=(_dtypes_of(meta),)), n
                )
                start = offset if ignore_index else None
            parts.append(Part(p.ref, n, start))
            if ignore_index:
                offset += int(n)  # type: ignore[arg-type]
    cls = type(items[0])
    return cls._build(parts, meta, None)
