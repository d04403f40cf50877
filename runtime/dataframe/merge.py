"""merge/join: both sides hash-partitioned on the keys in tasks, pandas' merge per bucket."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype
from pandas.util import hash_pandas_object

from runtime import put as runtime_put
from runtime.dataframe import frame as _frame
from runtime.dataframe import kernels
from runtime.dataframe.engine import Part, fetch, submit
from runtime.dataframe.fallback import call_pandas
from runtime.dataframe.sort import sort_parts

__all__ = ["join", "merge"]

_LPOS = "__twinray_left_position__"
_RPOS = "__twinray_right_position__"
_KEY = "__twinray_index_key__"

BROADCAST_ROWS = 1_000_000
"""A side with at most this many rows (and fewer than the other's) is sent whole to every
partition of the other side instead of shuffling both (inner/left: right small; right: left small)."""


def merge(
    left: Any,
    right: Any,
    how: str = "inner",
    on: Any = None,
    left_on: Any = None,
    right_on: Any = None,
    left_index: bool = False,
    right_index: bool = False,
    sort: bool = False,
    suffixes: Any = ("_x", "_y"),
    copy: Any = None,
    indicator: Any = False,
    validate: Any = None,
) -> Any:
    """pandas' `merge`, row order included; column keys with inner/left/right/outer in parallel."""
    kw = dict(
        how=how,
        on=on,
        left_on=left_on,
        right_on=right_on,
        left_index=left_index,
        right_index=right_index,
        sort=sort,
        suffixes=suffixes,
        indicator=indicator,
        validate=validate,
    )
    if isinstance(right, pandas.Series | _frame.Series):
        if right.name is None:
            raise ValueError("Cannot merge a Series without a name")
        right = right.to_frame()
    if isinstance(right, pandas.DataFrame):
        right = _frame.from_pandas(right)
    if not isinstance(left, _frame.DataFrame) or not isinstance(right, _frame.DataFrame):
        return call_pandas("merge", pandas.merge, (left, right), kw)
    meta_kw = {k: v for k, v in kw.items() if k != "validate"}
    pandas.merge(left._meta, right._meta, **meta_kw)  # pandas' errors for bad keys and options
    if on is None and left_on is None and right_on is None and not left_index and not right_index:
        on = [c for c in left._meta.columns if c in right._meta.columns]
    lkeys = _as_list(on if on is not None else left_on)
    rkeys = _as_list(on if on is not None else right_on)
    parallel = (
        how in ("inner", "left", "right", "outer")
        and not left_index and not right_index and indicator is False
        and lkeys is not None and rkeys is not None and len(lkeys) == len(rkeys)
        and all(k in left._meta.columns for k in lkeys) and all(k in right._meta.columns for k in rkeys)
        and left._meta.columns.is_unique and right._meta.columns.is_unique
        and ((how != "outer" and not sort) or lkeys == rkeys)
        and _LPOS not in left._meta.columns and _RPOS not in right._meta.columns
    )  # fmt: skip
    if not parallel:
        return call_pandas("merge", pandas.merge, (left, right), kw)
    if not sort and how in ("inner", "left", "right"):
        big, small = (left, right) if how != "right" else (right, left)
        if len(small) <= BROADCAST_ROWS and len(small) < len(big) and len(big):
            merge_kw = {"how": how, "suffixes": suffixes, "validate": validate}
            merge_kw.update(
                {"on": lkeys}
                if on is not None or lkeys == rkeys
                else {"left_on": lkeys, "right_on": rkeys}
            )
            return _broadcast_merge(big, small, how == "right", merge_kw)
    return _shuffle_merge(
        left, right, lkeys, rkeys, how, on is not None or lkeys == rkeys, sort, suffixes, validate
    )


def _broadcast_merge(big: Any, small: Any, small_is_left: bool, kw: dict) -> Any:
    """Each partition of the big side merged with the whole small side: pandas' row order."""
    whole = small._to_pandas()
    ref = runtime_put(whole)
    lengths = big._lengths()
    refs, metas = {}, {}
    for i, p in enumerate(big._parts):
        if lengths[i] or i == 0:
            refs[i], n, metas[i] = submit(
                _merge_with, [p], ref, num_returns=3, small_is_left=small_is_left, kw=kw
            )
            refs[i] = (refs[i], n)
    counts = dict(zip(refs, fetch([n for _, n in refs.values()])))
    fetched = dict(zip(metas, fetch(list(metas.values()))))
    live = [i for i in refs if counts[i]] or [next(iter(refs))]
    meta = pandas.concat([fetched[i] for i in live]).reset_index(drop=True)
    dtypes = meta.dtypes.to_dict()
    parts, offset = [], 0
    for i in live:
        r = refs[i][0]
        if not (fetched[i].dtypes == meta.dtypes).all():
            r = submit(kernels.apply_method, [Part(r, counts[i])], method="astype", args=(dtypes,))
        parts.append(Part(r, counts[i], offset))
        offset += counts[i]
    return _frame.DataFrame._build(parts, meta)


def _merge_with(
    part: pandas.DataFrame, whole: pandas.DataFrame, *, small_is_left: bool, kw: dict
) -> tuple[Any, int, Any]:
    """pandas' merge of one partition with the whole other side."""
    out = pandas.merge(whole, part, **kw) if small_is_left else pandas.merge(part, whole, **kw)
    return out, len(out), out.iloc[:0]


def _as_list(keys: Any) -> list | None:
    if keys is None:
        return None
    return list(keys) if isinstance(keys, list | tuple) else [keys]


def _shuffle_merge(
    left: Any,
    right: Any,
    lkeys: list,
    rkeys: list,
    how: str,
    same_names: bool,
    sort: bool,
    suffixes: Any,
    validate: Any,
) -> Any:
    """Hash-partition both sides, merge per bucket, order rows as pandas does."""
    nbuckets = max(len(left._parts), len(right._parts))
    kinds = [
        _hash_kind(left._meta[lk].dtype, right._meta[rk].dtype) for lk, rk in zip(lkeys, rkeys)
    ]
    sides = []
    for frame_, keys, pos in ((left, lkeys, _LPOS), (right, rkeys, _RPOS)):
        offsets = np.cumsum([0, *frame_._lengths()])
        pieces = [
            submit(
                _hash_split,
                [p],
                num_returns=nbuckets,
                keys=keys,
                kinds=kinds,
                n=nbuckets,
                pos=pos,
                offset=int(offsets[i]),
            )
            for i, p in enumerate(frame_._parts)
        ]
        if nbuckets == 1:
            pieces = [[ref] for ref in pieces]
        sides.append(pieces)
    merge_kw = {"how": how, "sort": False, "suffixes": suffixes, "validate": validate}
    if same_names:
        merge_kw["on"] = lkeys
    else:
        merge_kw.update(left_on=lkeys, right_on=rkeys)
    parts, metas = [], []
    nleft = len(sides[0])
    for b in range(nbuckets):
        refs = [s[b] for s in sides[0]] + [s[b] for s in sides[1]]
        ref, n, m = submit(_merge_bucket, [], *refs, nleft=nleft, kw=merge_kw, num_returns=3)
        parts.append(Part(ref, n))
        metas.append(m)
    metas = fetch(metas)
    meta = pandas.concat(metas)
    merged = _frame.DataFrame._build(parts, meta)
    if sort or how == "outer":
        order = [
            *(lkeys if same_names else []),
            *([_RPOS, _LPOS] if how == "right" else [_LPOS, _RPOS]),
        ]
    else:
        order = [_RPOS, _LPOS] if how == "right" else [_LPOS, _RPOS]
    ordered = sort_parts(merged, order, True, "last", True)
    final_meta = meta.drop(columns=[_LPOS, _RPOS]).reset_index(drop=True)
    return ordered._map(_drop_positions, meta=final_meta, dtypes=final_meta.dtypes.to_dict())


def _hash_kind(a: Any, b: Any) -> str:
    """How a key is normalised before hashing so that equal keys of both sides hash alike."""
    if (is_numeric_dtype(a) or is_bool_dtype(a)) and (is_numeric_dtype(b) or is_bool_dtype(b)):
        return "float"
    if is_datetime64_any_dtype(a) and is_datetime64_any_dtype(b):
        return "datetime"
    return "object"


def _normalise(values: pandas.Series, kind: str) -> pandas.Series:
    if kind == "float":
        return values.astype("float64") + 0.0  # -0.0 becomes 0.0: equal keys hash alike
    if kind == "datetime":
        s = (
            values
            if getattr(values.dtype, "tz", None) is None
            else values.dt.tz_convert("UTC").dt.tz_localize(None)
        )
        return s.astype("datetime64[ns]").astype("int64").where(s.notna(), np.iinfo(np.int64).min)
    return values.astype(object)


def _hash_split(
    part: pandas.DataFrame, *, keys: list, kinds: list, n: int, pos: str, offset: int
) -> tuple:
    """The partition (with its global row positions) split into `n` pieces by key hash."""
    out = part.assign(**{pos: np.arange(offset, offset + len(part), dtype=np.int64)})
    if n == 1:
        return out
    normal = pandas.DataFrame(
        {i: _normalise(part[k], kind).to_numpy() for i, (k, kind) in enumerate(zip(keys, kinds))}
    )
    hashed = hash_pandas_object(normal, index=False).to_numpy()
    return kernels.split_by_bucket(out, (hashed % np.uint64(n)).astype(np.int64), n)


def _merge_bucket(*pieces: pandas.DataFrame, nleft: int, kw: dict) -> tuple[Any, int, Any]:
    """pandas' merge of one bucket's left and right rows."""
    lhs, rhs = pieces[:nleft], pieces[nleft:]
    lf = lhs[0] if len(lhs) == 1 else pandas.concat(lhs)
    rf = rhs[0] if len(rhs) == 1 else pandas.concat(rhs)
    out = pandas.merge(lf, rf, **kw)
    return out, len(out), out.iloc[:0]


def _drop_positions(part: pandas.DataFrame, *, dtypes: dict) -> pandas.DataFrame:
    """The partition without the position columns, cast to the result's dtypes."""
    out = part.drop(columns=[_LPOS, _RPOS])
    if not (out.dtypes == pandas.Series(dtypes)).all():
        out = out.astype(dtypes)
    return out


def join(
    left: Any,
    other: Any,
    on: Any = None,
    how: str = "left",
    lsuffix: str = "",
    rsuffix: str = "",
    sort: bool = False,
    validate: Any = None,
    **kwargs: Any,
) -> Any:
    """pandas' `DataFrame.join` on the index: the index becomes a key column for the merge."""
    kw = dict(on=on, how=how, sort=sort, validate=validate, **kwargs)
    if lsuffix or rsuffix:
        kw.update(lsuffix=lsuffix, rsuffix=rsuffix)
    if "suffixes" in kwargs:
        lsuffix, rsuffix = (s or "" for s in kwargs["suffixes"])
    if isinstance(other, pandas.Series | _frame.Series):
        if other.name is None:
            raise ValueError("Other Series must have a name")
        other = other.to_frame()
    if isinstance(other, pandas.DataFrame):
        other = _frame.from_pandas(other)
    if (
        not isinstance(other, _frame.DataFrame)
        or on is not None
        or how not in ("inner", "left", "right", "outer")
    ):
        return left._default("join", other, **kw)
    meta = left._meta.join(other._meta, **kw)  # pandas' errors (overlapping columns, ...)
    if (
        left._meta.index.nlevels != 1 or other._meta.index.nlevels != 1 or _KEY in meta.columns
        or sort or set(kwargs) - {"suffixes"} or not len(left) or not len(other)
    ):  # fmt: skip
        return left._default("join", other, **kw)
    lname, rname = left._meta.index.name, other._meta.index.name
    lk = left._map(_index_to_key, meta=left._meta.assign(**{_KEY: left._meta.index}))
    rk = other._map(_index_to_key, meta=other._meta.assign(**{_KEY: other._meta.index}))
    overlap = [c for c in left._meta.columns if c in other._meta.columns]
    lk = lk.rename(columns={c: f"{c}{lsuffix}" for c in overlap}) if overlap else lk
    rk = rk.rename(columns={c: f"{c}{rsuffix}" for c in overlap}) if overlap else rk
    merged = _shuffle_merge(lk, rk, [_KEY], [_KEY], how, True, sort, ("", ""), validate)
    return merged._map(_key_to_index, name=rname if how == "right" else lname)


def _index_to_key(part: pandas.DataFrame) -> pandas.DataFrame:
    """The partition with its index copied into the key column."""
    return part.assign(**{_KEY: part.index})


def _key_to_index(part: pandas.DataFrame, *, name: Any) -> pandas.DataFrame:
    """The key column made the index again (named as pandas names it)."""
    return part.set_index(_KEY).rename_axis(name)
