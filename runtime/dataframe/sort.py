"""sort_values: sampled boundaries, range partitioning through the store, stable local sorts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas

from runtime.dataframe import frame as _frame
from runtime.dataframe import kernels
from runtime.dataframe.engine import Part, fetch, submit

__all__ = ["sort_values"]

SAMPLES_PER_PARTITION = 128
"""Key rows each partition contributes to the boundary sample."""


def sort_values(obj: Any, by: Any = None, *args: Any, **kwargs: Any) -> Any:
    """`obj.sort_values(...)` with pandas' arguments; a stable sort over partitions.

    The result is pandas' for `kind="stable"` (ties keep their order); any pandas kind
    orders ties in some order, this one is always the stable one.
    """
    series = isinstance(obj, _frame.Series)
    if series and by is not None:
        args, by = (by, *args), None
    names = ["axis", "ascending", "inplace", "kind", "na_position", "ignore_index", "key"]
    if len(args) > len(names):
        raise TypeError(f"sort_values() takes at most {len(names)} positional arguments after `by`")
    opts = {
        "axis": 0,
        "ascending": True,
        "inplace": False,
        "kind": "quicksort",
        "na_position": "last",
        "ignore_index": False,
        "key": None,
    }
    unknown = set(kwargs) - set(opts)
    if unknown:
        raise TypeError(f"sort_values() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    opts.update(dict(zip(names, args)), **kwargs)
    check = {k: v for k, v in opts.items() if k != "inplace"}
    if series:
        obj._meta.sort_values(**check)  # pandas' errors for bad options
    else:
        obj._meta.sort_values(by, **check)
    if opts["axis"] not in (0, "index") or opts["key"] is not None:
        pandas_kw = {k: v for k, v in opts.items()}
        return obj._default("sort_values", *(() if series else (by,)), **pandas_kw)
    keys = None if series else ([by] if not isinstance(by, list) else list(by))
    asc = opts["ascending"]
    result = sort_parts(obj, keys, asc, opts["na_position"], opts["ignore_index"])
    if opts["inplace"]:
        object.__setattr__(obj, "_parts", result._parts)
        object.__setattr__(obj, "_meta", result._meta)
        object.__setattr__(obj, "_token", result._token)
        return None
    return result


def sort_parts(
    obj: Any, keys: list | None, ascending: Any, na_position: str, ignore_index: bool
) -> Any:
    """The frame sorted by `keys` (None: a Series' values), stably, as new partitions."""
    lengths = obj._lengths()
    live = [p for p, n in zip(obj._parts, lengths) if n]
    nparts = len(obj._parts)
    meta = obj._meta if not ignore_index else obj._meta.reset_index(drop=True)
    if not live:
        return type(obj)._build(
            [Part(obj._parts[0].ref, 0, 0 if ignore_index else obj._parts[0].start)], meta
        )
    sort_kw = {"ascending": ascending, "na_position": na_position}
    nbuckets = min(nparts, sum(lengths))
    if nbuckets > 1:
        samples = fetch([submit(_sample, [p], keys=keys, n=SAMPLES_PER_PARTITION) for p in live])
        boundaries = _boundaries(pandas.concat(samples, ignore_index=True), nbuckets, sort_kw)
        nbuckets = len(boundaries) + 1
    if nbuckets == 1:
        pieces = [[p] for p in live]
        buckets = [[ref for ref in [p.ref for p in live]]]
        starts = [[p.start for p in live]]
        del pieces
    else:
        split = [
            submit(
                _split_by_range,
                [p],
                num_returns=nbuckets,
                keys=keys,
                boundaries=boundaries,
                sort_kw=sort_kw,
            )
            for p in live
        ]
        buckets = [[s[b] for s in split] for b in range(nbuckets)]
        starts = [[None] * len(live) for _ in range(nbuckets)]
    parts = []
    for refs, st in zip(buckets, starts):
        ref, n = submit(
            _sort_bucket,
            [Part(r, 0, s) for r, s in zip(refs, st)],
            num_returns=2,
            keys=keys,
            sort_kw=sort_kw,
        )
        parts.append(Part(ref, n))
    out = type(obj)._build(parts, meta)
    if ignore_index:
        offset, fixed = 0, []
        for p, n in zip(parts, out._lengths()):
            fixed.append(Part(p.ref, n, offset))
            offset += n
        out = type(obj)._build(fixed, meta)
    return out


def _key_frame(part: Any, keys: list | None) -> pandas.DataFrame:
    """The sort keys of a partition as a frame with columns 0..k-1 and a fresh index."""
    if keys is None:
        return pandas.DataFrame({0: part.array}, copy=False)
    return pandas.DataFrame({i: part[k].array for i, k in enumerate(keys)}, copy=False)


def _sample(part: Any, *, keys: list | None, n: int) -> pandas.DataFrame:
    """Up to `n` evenly spaced key rows of the partition."""
    kf = _key_frame(part, keys)
    if len(kf) > n:
        kf = kf.take(np.linspace(0, len(kf) - 1, n).astype(np.int64))
    return kf


def _boundaries(sample: pandas.DataFrame, nbuckets: int, sort_kw: dict) -> pandas.DataFrame:
    """`nbuckets - 1` key rows cutting the sorted sample into equal parts (duplicates dropped)."""
    ordered = sample.sort_values(list(sample.columns), kind="stable", **sort_kw).reset_index(
        drop=True
    )
    picks = sorted({int(len(ordered) * i / nbuckets) for i in range(1, nbuckets)})
    cut = ordered.take(picks).drop_duplicates().reset_index(drop=True)
    return cut


def _split_one_numeric_key(
    part: Any, keys: list | None, bounds: np.ndarray, sort_kw: dict
) -> tuple | None:
    """Split by one numeric key: sort the partition locally, cut it by binary search.

    The pieces are sorted runs, so the bucket's stable sort (timsort) only merges them.
    None when the key is not a plain number/datetime or the boundaries hold NaN.
    """
    values = np.asarray(part if keys is None else part[keys[0]])
    asc = sort_kw["ascending"]
    asc = asc[0] if isinstance(asc, list) and len(asc) == 1 else asc
    if values.dtype.kind not in "iufM" or bounds.dtype != values.dtype or not isinstance(asc, bool):
        return None
    if bounds.dtype.kind in "fM" and pandas.isna(bounds).any():
        return None
    ordered = part.sort_values(
        **({} if keys is None else {"by": keys[0]}),
        kind="stable",
        ascending=asc,
        na_position=sort_kw["na_position"],
    )
    col = np.asarray(ordered if keys is None else ordered[keys[0]])
    nan = pandas.isna(col) if col.dtype.kind in "fM" else np.zeros(len(col), dtype=bool)
    if asc:
        bucket = np.searchsorted(bounds, col, side="left")  # boundaries strictly below the value
    else:
        bucket = len(bounds) - np.searchsorted(bounds[::-1], col, side="right")  # strictly above
    bucket[nan] = len(bounds) if sort_kw["na_position"] == "last" else 0
    nb = len(bounds) + 1
    edges = np.searchsorted(bucket, np.arange(nb + 1), side="left")  # buckets are non-decreasing
    return tuple(ordered.iloc[edges[i] : edges[i + 1]] for i in range(nb))


def _split_by_range(
    part: Any, *, keys: list | None, boundaries: pandas.DataFrame, sort_kw: dict
) -> tuple:
    """The partition's rows split by the key range they fall in (one piece per bucket)."""
    if len(boundaries.columns) == 1:
        fast = _split_one_numeric_key(part, keys, boundaries[0].to_numpy(), sort_kw)
        if fast is not None:
            return fast
    kf = _key_frame(part, keys)
    n = len(kf)
    both = pandas.concat([kf, boundaries], ignore_index=True)
    order = both.sort_values(list(kf.columns), kind="stable", **sort_kw).index.to_numpy()
    is_boundary = order >= n
    passed = np.cumsum(is_boundary)  # boundaries at or before each position in sorted order
    bucket = np.empty(n, dtype=np.int64)
    bucket[order[~is_boundary]] = passed[~is_boundary]
    return kernels.split_by_bucket(part, bucket, len(boundaries) + 1)


def _sort_bucket(*pieces: Any, keys: list | None, sort_kw: dict) -> tuple[Any, int]:
    """One bucket's pieces, concatenated in partition order and sorted stably."""
    joined = pieces[0] if len(pieces) == 1 else pandas.concat(pieces)
    if keys is None:
        out = joined.sort_values(kind="stable", **sort_kw)
    else:
        out = joined.sort_values(keys, kind="stable", **sort_kw)
    return out, len(out)
