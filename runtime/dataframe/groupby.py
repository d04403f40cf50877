"""groupby and value_counts: partial aggregation in each partition, then a tree reduce."""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas
from pandas.api.types import is_bool_dtype, is_list_like, is_numeric_dtype, is_scalar

from runtime.dataframe import frame as _frame
from runtime.dataframe import group_shuffle
from runtime.dataframe.engine import fetch, submit
from runtime.dataframe.fallback import call_pandas, to_pandas_args, wrap_result

__all__ = ["DataFrameGroupBy", "SeriesGroupBy", "groupby", "value_counts"]

FAN_IN = 8
"""How many partial results one reduce task combines."""

# statistic -> how partial values of it combine
_COMBINE = {
    "sum": "sum",
    "count": "sum",
    "size": "sum",
    "min": "min",
    "max": "max",
    "first": "first",
    "last": "last",
}
# aggregation -> the partial statistics it needs
_NEEDS = {
    "sum": ("sum",), "count": ("count",), "size": ("size",), "min": ("min",), "max": ("max",),
    "first": ("first",), "last": ("last",), "mean": ("sum", "count"),
}  # fmt: skip
_NO_DEFAULT = object()


def groupby(
    obj: Any,
    by: Any = None,
    level: Any = None,
    as_index: bool = True,
    sort: bool = True,
    group_keys: bool = True,
    observed: Any = _NO_DEFAULT,
    dropna: bool = True,
    **kwargs: Any,
) -> Any:
    """`obj.groupby(...)` with pandas' arguments; by column label(s) runs in parallel."""
    opts = {
        "level": level,
        "as_index": as_index,
        "sort": sort,
        "group_keys": group_keys,
        "dropna": dropna,
        **kwargs,
    }
    if observed is not _NO_DEFAULT:
        opts["observed"] = observed
    if not isinstance(by, _frame.BaseFrame):
        obj._meta.groupby(by, **opts)  # pandas' errors for bad keys and options
    keys = (
        [by]
        if is_scalar(by) or isinstance(by, tuple)
        else list(by)
        if isinstance(by, list)
        else None
    )
    parallel = (
        isinstance(obj, _frame.DataFrame)
        and level is None
        and not kwargs
        and keys is not None
        and len(keys) > 0
        and all(is_scalar(k) or isinstance(k, tuple) for k in keys)
        and all(k in obj._meta.columns for k in keys)
        and obj._meta.columns.is_unique
    )
    return DataFrameGroupBy(obj, by, keys if parallel else None, opts, selection=None)


class DataFrameGroupBy:
    """A grouping of a frame's rows; the listed aggregations run as map then tree-reduce."""

    def __init__(self, obj: Any, by: Any, keys: list | None, opts: dict, selection: Any) -> None:
        self._obj = obj
        self._by = by
        self._keys = keys
        self._opts = opts
        self._selection = selection

    # -- selection -----------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        cols = self._obj._meta.columns
        missing = [
            k
            for k in (key if is_list_like(key) and not isinstance(key, tuple) else [key])
            if k not in cols
        ]
        if missing:
            raise KeyError(f"Columns not found: {', '.join(map(str, missing))}")
        cls = (
            DataFrameGroupBy if is_list_like(key) and not isinstance(key, tuple) else SeriesGroupBy
        )
        return cls(
            self._obj,
            self._by,
            self._keys,
            self._opts,
            list(key) if cls is DataFrameGroupBy else key,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._obj._meta
        if isinstance(meta, pandas.DataFrame) and name in meta.columns and self._selection is None:
            return self[name]
        pandas_attr = getattr(self._pandas_meta(), name)  # AttributeError as pandas

        if not callable(pandas_attr):
            return call_pandas(
                self._qual(name), lambda: getattr(self._pandas_groupby(), name), (), {}
            )

        def method(*args: Any, **kw: Any) -> Any:
            return call_pandas(self._qual(name), getattr(self._pandas_groupby(), name), args, kw)

        return method

    def __iter__(self) -> Any:
        return iter(
            call_pandas(self._qual("__iter__"), lambda: list(self._pandas_groupby()), (), {})
        )

    def __len__(self) -> int:
        return self.ngroups

    @property
    def ngroups(self) -> int:
        """Number of groups."""
        return len(self.size()) if self._opts.get("as_index", True) else len(self.size())

    def _qual(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    def _columns(self) -> list:
        """The aggregated columns: the selection, else every column but the keys."""
        if self._selection is not None:
            return [self._selection] if isinstance(self, SeriesGroupBy) else list(self._selection)
        keys = set(self._keys or [])
        return [c for c in self._obj._meta.columns if c not in keys]

    def _pandas_meta(self) -> Any:
        """The same grouping on the empty metadata frame (names, errors, empty results)."""
        by = self._by if not isinstance(self._by, _frame.BaseFrame) else self._by._meta
        g = self._obj._meta.groupby(to_pandas_args(by), **self._opts)
        return g if self._selection is None else g[self._selection]

    def _pandas_groupby(self) -> Any:
        """The same grouping on the collected frame (for methods that default to pandas)."""
        g = self._obj._to_pandas().groupby(to_pandas_args(self._by), **self._opts)
        return g if self._selection is None else g[self._selection]

    # -- aggregations --------------------------------------------------------------------
    def sum(self, numeric_only: bool = False, min_count: int = 0, **kw: Any) -> Any:
        """Group sums."""
        return self._agg_method("sum", numeric_only=numeric_only, min_count=min_count, **kw)

    def mean(self, numeric_only: bool = False, **kw: Any) -> Any:
        """Group means (partial sums and counts)."""
        return self._agg_method("mean", numeric_only=numeric_only, **kw)

    def count(self) -> Any:
        """Non-missing values per group."""
        return self._agg_method("count")

    def size(self) -> Any:
        """Rows per group."""
        return self._agg_method("size")

    def min(self, numeric_only: bool = False, min_count: int = -1, **kw: Any) -> Any:
        """Group minima."""
        return self._agg_method("min", numeric_only=numeric_only, min_count=min_count, **kw)

    def max(self, numeric_only: bool = False, min_count: int = -1, **kw: Any) -> Any:
        """Group maxima."""
        return self._agg_method("max", numeric_only=numeric_only, min_count=min_count, **kw)

    def first(self, numeric_only: bool = False, min_count: int = -1, skipna: bool = True) -> Any:
        """First non-missing value per group."""
        return self._agg_method(
            "first", numeric_only=numeric_only, min_count=min_count, skipna=skipna
        )

    def last(self, numeric_only: bool = False, min_count: int = -1, skipna: bool = True) -> Any:
        """Last non-missing value per group."""
        return self._agg_method(
            "last", numeric_only=numeric_only, min_count=min_count, skipna=skipna
        )

    def agg(self, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Aggregate by name(s), list, dict or named aggregation: partial statistics and a
        tree reduce where they suffice, else (median, std, functions, ...) a shuffle by key."""
        spec = self._spec(func, kwargs) if not args else None
        if spec is None or self._keys is None:
            if _shufflable_agg(func, kwargs, isinstance(self, SeriesGroupBy)):
                return self._shuffled("agg", (func, *args), kwargs, group_shuffle.shuffled_agg)
            return call_pandas(self._qual("agg"), self._pandas_groupby().agg, (func, *args), kwargs)
        return self._run(spec)

    aggregate = agg

    # -- by a shuffle of the rows on the key (every row of a group in one task) --------------
    def median(self, numeric_only: bool = False, **kw: Any) -> Any:
        """Group medians (rows shuffled by key, pandas' median per bucket)."""
        return self._shuffled("median", (), {"numeric_only": numeric_only, **kw})

    def std(self, ddof: int = 1, numeric_only: bool = False, **kw: Any) -> Any:
        """Group standard deviations (rows shuffled by key)."""
        return self._shuffled("std", (), {"ddof": ddof, "numeric_only": numeric_only, **kw})

    def var(self, ddof: int = 1, numeric_only: bool = False, **kw: Any) -> Any:
        """Group variances (rows shuffled by key)."""
        return self._shuffled("var", (), {"ddof": ddof, "numeric_only": numeric_only, **kw})

    def sem(self, ddof: int = 1, numeric_only: bool = False, **kw: Any) -> Any:
        """Group standard errors of the mean (rows shuffled by key)."""
        return self._shuffled("sem", (), {"ddof": ddof, "numeric_only": numeric_only, **kw})

    def prod(self, numeric_only: bool = False, min_count: int = 0, **kw: Any) -> Any:
        """Group products (rows shuffled by key)."""
        return self._shuffled(
            "prod", (), {"numeric_only": numeric_only, "min_count": min_count, **kw}
        )

    def nunique(self, dropna: bool = True) -> Any:
        """Distinct values per group (rows shuffled by key)."""
        return self._shuffled("nunique", (), {"dropna": dropna})

    def quantile(self, q: Any = 0.5, **kw: Any) -> Any:
        """Group quantiles (rows shuffled by key)."""
        return self._shuffled("quantile", (q,), kw)

    def apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """pandas' `apply` per bucket of groups when its result is keyed by the groups (a
        reduction or a frame per group, `group_keys=True`); otherwise in pandas."""
        if not callable(func):
            return self._shuffled("apply", (func, *args), kwargs)
        return self._shuffled("apply", (func, *args), kwargs, group_shuffle.shuffled_apply)

    def transform(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """pandas' `transform` per bucket of groups, rows back in their partitions and order."""
        return self._shuffled(
            "transform", (func, *args), kwargs, group_shuffle.shuffled_transform, check=False
        )

    def _shuffled(
        self, name: str, args: tuple, kw: dict, runner: Any = None, check: bool = True
    ) -> Any:
        """Run pandas' `name(*args, **kw)` on each bucket of the key shuffle (`runner` puts the
        buckets' results together; default: a reduction's rows in group order), or in pandas."""
        runner = runner or group_shuffle.shuffled_agg
        qual = self._qual(name)
        if (
            self._keys is None
            or not group_shuffle.supported(self)
            or name == "apply"
            and (not args or not callable(args[0]))
        ):
            return call_pandas(qual, getattr(self._pandas_groupby(), name), args, kw)
        if check and name != "apply" and not callable(args[0] if args else None):
            getattr(self._pandas_meta(), name)(*args, **kw)  # pandas' errors for bad options
        if not any(self._obj._lengths()):
            return wrap_result(getattr(self._pandas_groupby(), name)(*args, **kw))
        fn = partial(_call_grouped, name=name, args=args, kw=kw)
        out = runner(self, fn)
        if out is None:  # the per-bucket results do not combine: pandas on the whole frame
            return call_pandas(qual, getattr(self._pandas_groupby(), name), args, kw)
        return wrap_result(out) if not isinstance(out, _frame.BaseFrame) else out

    def _agg_method(self, name: str, **kw: Any) -> Any:
        defaults = {"numeric_only": False, "min_count": 0 if name == "sum" else -1, "skipna": True}
        plain = all(defaults.get(k) == v for k, v in kw.items() if k != "numeric_only")
        numeric_only = kw.get("numeric_only", False)
        if self._keys is None or not plain or kw.keys() - {"numeric_only", "min_count", "skipna"}:
            return call_pandas(self._qual(name), getattr(self._pandas_groupby(), name), (), kw)
        if name == "size":
            return self._run(("size", None))
        cols = self._columns()
        if numeric_only:
            dtypes = self._obj._meta.dtypes
            cols = [c for c in cols if is_numeric_dtype(dtypes[c]) or is_bool_dtype(dtypes[c])]
        meta_kw = {"numeric_only": numeric_only} if name not in ("count",) else {}
        try:
            getattr(self._pandas_meta(), name)(**meta_kw)
        except Exception:
            return call_pandas(self._qual(name), getattr(self._pandas_groupby(), name), (), kw)
        if name == "mean" and not self._means_ok(cols):
            return call_pandas(self._qual(name), getattr(self._pandas_groupby(), name), (), kw)
        return self._run(("method", name, cols), exact=lambda g: getattr(g, name)(**kw))

    def _means_ok(self, cols: list) -> bool:
        """True when every column's mean is a sum over a count (numbers and bools)."""
        dtypes = self._obj._meta.dtypes
        return all(
            (is_numeric_dtype(dtypes[c]) or is_bool_dtype(dtypes[c])) and dtypes[c].kind in "biuf"
            for c in cols
        )

    def _spec(self, func: Any, kwargs: dict) -> Any:
        """The aggregation as a plan this module runs, or None when pandas must."""
        series = isinstance(self, SeriesGroupBy)
        if func is None and kwargs and not series:
            if not all(
                isinstance(v, tuple) and len(v) == 2 and v[1] in _NEEDS for v in kwargs.values()
            ):
                return None
            named = [(out, col, f) for out, (col, f) in kwargs.items()]
            if not all(c in self._obj._meta.columns for _, c, _ in named):
                return None
            return ("named", named)
        if kwargs:
            return None
        if isinstance(func, str):
            if func not in _NEEDS:
                return None
            return ("size", None) if func == "size" else ("method", func, self._columns())
        if (
            isinstance(func, list)
            and func
            and all(isinstance(f, str) and f in _NEEDS and f != "size" for f in func)
        ):
            if len(set(func)) != len(func):
                return None
            return ("list", func, self._columns())
        if isinstance(func, dict) and func and not series:
            items = []
            for col, f in func.items():
                fs = f if isinstance(f, list) else [f]
                if (
                    col not in self._obj._meta.columns
                    or not fs
                    or not all(isinstance(x, str) and x in _NEEDS and x != "size" for x in fs)
                ):
                    return None
                items.append((col, f))
            return ("dict", items)
        return None

    def _stats_needed(self, spec: Any) -> dict:
        """column -> partial statistics the plan needs (None: the group sizes)."""
        need: dict[Any, set] = {}

        def add(col: Any, f: str) -> None:
            if f == "mean" and not self._means_ok([col]):
                raise _NotParallel
            need.setdefault(col, set()).update(_NEEDS[f])

        kind = spec[0]
        if kind == "size":
            need[None] = {"size"}
        elif kind == "method":
            for c in spec[2]:
                add(c, spec[1])
        elif kind == "list":
            for c in spec[2]:
                for f in spec[1]:
                    add(c, f)
        elif kind == "dict":
            for c, f in spec[1]:
                for x in f if isinstance(f, list) else [f]:
                    add(c, x)
        elif kind == "named":
            for _, c, f in spec[1]:
                add(c, f)
        return {c: sorted(s) for c, s in need.items()}

    def _run(self, spec: Any, exact: Any = None) -> Any:
        """Partial aggregation per partition, tree reduce, final assembly in one task."""
        try:
            need = self._stats_needed(spec)
        except _NotParallel:
            return call_pandas(
                self._qual("agg"), self._pandas_groupby().agg, (_spec_func(spec),), {}
            )
        opts = {"dropna": self._opts["dropna"]}
        if "observed" in self._opts:
            opts["observed"] = self._opts["observed"]
        lengths = self._obj._lengths()
        live = [p for p, n in zip(self._obj._parts, lengths) if n]
        if not live:
            if exact is not None:
                return wrap_result(exact(self._pandas_groupby()))
            return call_pandas_quiet(self._pandas_groupby(), spec, self)
        partials = [submit(_partial, [p], keys=self._keys, need=need, opts=opts) for p in live]
        while len(partials) > FAN_IN:
            partials = [
                submit(_combine, [], *partials[i : i + FAN_IN], nkeys=len(self._keys), opts=opts)
                for i in range(0, len(partials), FAN_IN)
            ]
        final = submit(
            _finish, [], *partials, nkeys=len(self._keys), opts={**opts, "sort": self._opts["sort"]},
            spec=spec, selection_series=isinstance(self, SeriesGroupBy), selection=self._selection,
        )  # fmt: skip
        result = fetch(final)
        result = self._shape_like_pandas(result, spec)
        return wrap_result(result)

    def _shape_like_pandas(self, result: Any, spec: Any) -> Any:
        """Names, key columns (`as_index=False`) as pandas gives them, from the empty grouping."""
        if not self._opts.get("as_index", True):
            if spec[0] == "size":
                if isinstance(self, SeriesGroupBy):
                    result = result.rename(self._selection)
                result = (
                    result.rename("size").reset_index()
                    if not isinstance(self, SeriesGroupBy)
                    else result.reset_index()
                )
            else:
                result = result.reset_index()
            return result
        if spec[0] == "size" and isinstance(self, SeriesGroupBy):
            result = result.rename(self._selection)
        return result


def _call_grouped(grouped: Any, *, name: str, args: tuple, kw: dict) -> Any:
    """`grouped.name(*args, **kw)` (run in a task on one bucket's grouping)."""
    return getattr(grouped, name)(*args, **kw)


def _shufflable_agg(func: Any, kwargs: dict, series: bool) -> bool:
    """True when `agg(func, **kwargs)` is a per-group reduction that can run per bucket."""

    def one(f: Any) -> bool:
        return (isinstance(f, str) and f in group_shuffle.AGG_NAMES) or (
            callable(f) and not isinstance(f, type)
        )

    if func is None:
        return (
            bool(kwargs)
            and not series
            and all(isinstance(v, tuple) and len(v) == 2 and one(v[1]) for v in kwargs.values())
        )
    if kwargs:
        return False
    if isinstance(func, list):
        return bool(func) and all(one(f) for f in func)
    if isinstance(func, dict):
        return (
            bool(func)
            and not series
            and all(
                all(one(x) for x in f) if isinstance(f, list) else one(f) for f in func.values()
            )
        )
    return one(func)


class SeriesGroupBy(DataFrameGroupBy):
    """A grouping with one column selected: results are Series named after it."""


class _NotParallel(Exception):
    """The plan has a step only pandas can do."""


def _spec_func(spec: Any) -> Any:
    """The pandas `agg` argument a plan stands for."""
    kind = spec[0]
    if kind == "size":
        return "size"
    if kind == "method":
        return spec[1]
    if kind == "list":
        return spec[1]
    if kind == "dict":
        return dict(spec[1])
    raise _NotParallel


def call_pandas_quiet(grouped: Any, spec: Any, owner: DataFrameGroupBy) -> Any:
    """The plan run by pandas itself (an empty frame: exact pandas result, no warning)."""
    if spec[0] == "named":
        result = grouped.agg(**{out: (col, f) for out, col, f in spec[1]})
    else:
        func = _spec_func(spec)
        result = getattr(grouped, func)() if isinstance(func, str) else grouped.agg(func)
    return wrap_result(result)


def _partial(part: pandas.DataFrame, *, keys: list, need: dict, opts: dict) -> dict:
    """Statistics of each group of one partition: stat -> frame (or Series for size)."""
    opts = {**opts, "observed": True}  # unobserved categories are the final step's business
    g = part.groupby(keys if len(keys) > 1 else keys[0], sort=False, **opts)
    out: dict[str, Any] = {}
    by_stat: dict[str, list] = {}
    for col, stats in need.items():
        for s in stats:
            by_stat.setdefault(s, []).append(col)
    for stat, cols in by_stat.items():
        if stat == "size":
            out["size"] = g.size()
        else:
            out[stat] = getattr(g[cols], stat)()
    return out


def _combine_dicts(parts: tuple, nkeys: int, opts: dict, sort: bool = False) -> dict:
    """Partial statistics of several partitions combined into one (partition order kept)."""
    out = {}
    for stat in parts[0]:
        pieces = [p[stat] for p in parts]
        joined = pieces[0] if len(pieces) == 1 else pandas.concat(pieces)
        g = joined.groupby(level=list(range(nkeys)) if nkeys > 1 else 0, sort=sort, **opts)
        out[stat] = getattr(g, _COMBINE[stat])()
    return out


def _combine(*parts: dict, nkeys: int, opts: dict) -> dict:
    """A reduce step: partial statistics combined."""
    return _combine_dicts(parts, nkeys, {**opts, "observed": True})


def _finish(
    *parts: dict, nkeys: int, opts: dict, spec: Any, selection_series: bool, selection: Any
) -> Any:
    """The last reduce step: combine, then assemble the result pandas would give."""
    sort = opts.pop("sort")
    stats = _combine_dicts(parts, nkeys, opts, sort=sort)

    def column(col: Any, f: str) -> pandas.Series:
        if f == "mean":
            return stats["sum"][col] / stats["count"][col]
        return stats[f][col]

    kind = spec[0]
    if kind == "size":
        return stats["size"]
    if kind == "method":
        f, cols = spec[1], spec[2]
        if selection_series:
            return column(selection, f).rename(selection)
        return (
            pandas.DataFrame({c: column(c, f) for c in cols}, columns=pandas.Index(cols))
            if cols
            else stats[_NEEDS[f][0]][[]]
        )
    if kind == "list":
        funcs, cols = spec[1], spec[2]
        if selection_series:
            return pandas.DataFrame(
                {f: column(selection, f) for f in funcs}, columns=pandas.Index(funcs)
            )
        pieces = {(c, f): column(c, f) for c in cols for f in funcs}
        out = pandas.DataFrame(pieces)
        out.columns = pandas.MultiIndex.from_tuples(list(pieces), names=[None, None])
        return out
    if kind == "dict":
        multi = any(isinstance(f, list) for _, f in spec[1])
        if not multi:
            return pandas.DataFrame(
                {c: column(c, f) for c, f in spec[1]}, columns=pandas.Index([c for c, _ in spec[1]])
            )
        pieces = {
            (c, x): column(c, x) for c, f in spec[1] for x in (f if isinstance(f, list) else [f])
        }
        out = pandas.DataFrame(pieces)
        out.columns = pandas.MultiIndex.from_tuples(list(pieces))
        return out
    named = spec[1]
    return pandas.DataFrame(
        {o: column(c, f) for o, c, f in named}, columns=pandas.Index([o for o, _, _ in named])
    )


# -- value_counts -----------------------------------------------------------------------------
def value_counts(
    series: Any, *, normalize: bool, sort: bool, ascending: bool, bins: Any, dropna: bool
) -> Any:
    """Series.value_counts: per-partition counts, summed in first-seen order, sorted stably."""
    kw = {
        "normalize": normalize,
        "sort": sort,
        "ascending": ascending,
        "bins": bins,
        "dropna": dropna,
    }
    if bins is not None:
        return call_pandas("Series.value_counts", series._to_pandas().value_counts, (), kw)
    lengths = series._lengths()
    live = [p for p, n in zip(series._parts, lengths) if n]
    if not live:
        return wrap_result(series._meta.value_counts(**kw))
    partials = [submit(_vc_partial, [p], dropna=dropna) for p in live]
    while len(partials) > FAN_IN:
        partials = [
            submit(_vc_combine, [], *partials[i : i + FAN_IN], dropna=dropna)
            for i in range(0, len(partials), FAN_IN)
        ]
    result = fetch(
        submit(
            _vc_finish,
            [],
            *partials,
            dropna=dropna,
            normalize=normalize,
            sort=sort,
            ascending=ascending,
        )
    )
    return wrap_result(result)


def _vc_partial(part: pandas.Series, *, dropna: bool) -> pandas.Series:
    """Counts in one partition, in first-seen order."""
    return part.value_counts(sort=False, dropna=dropna)


def _vc_combine(*parts: pandas.Series, dropna: bool) -> pandas.Series:
    """Counts of several partitions summed, first-seen order kept."""
    joined = parts[0] if len(parts) == 1 else pandas.concat(parts)
    name, index_name = joined.name, joined.index.name
    out = joined.groupby(level=0, sort=False, dropna=dropna, observed=False).sum()
    out.name, out.index.name = name, index_name
    return out


def _vc_finish(
    *parts: pandas.Series, dropna: bool, normalize: bool, sort: bool, ascending: bool
) -> pandas.Series:
    """Summed counts, sorted and normalised as pandas does."""
    out = _vc_combine(*parts, dropna=dropna)
    if sort:
        out = out.sort_values(ascending=ascending, kind="stable")
    if normalize:
        out = out / out.sum()
        out.name = "proportion"
    return out
