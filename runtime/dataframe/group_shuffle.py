"""groupby operations that need every row of a group together: rows hash-shuffled by key, pandas per bucket.

median, std, var, sem, nunique, prod, quantile, `agg` with such names or functions, `apply`
and `transform`: each partition's rows go to the bucket their key hashes to (every row of a
group lands in one bucket, in partition order), pandas' own groupby method runs on each
bucket, and the buckets' results are put in pandas' group order (sorted keys, or first
appearance with `sort=False`); `transform`'s rows go back to their partitions and order.
Because each group is computed by pandas on exactly its rows in their order, results are
pandas' own, not a re-derivation from partial statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas

from runtime.dataframe import kernels
from runtime.dataframe.engine import Part, fetch, submit
from runtime.dataframe.merge import _hash_kind, _normalise

__all__ = ["AGG_NAMES", "shuffled_agg", "shuffled_apply", "shuffled_transform", "supported"]

# the reductions (group -> one row) that can run per bucket; partial-statistics ones included
AGG_NAMES = frozenset(
    {
        "sum", "mean", "count", "size", "min", "max", "first", "last", "median", "std",
        "var", "sem", "nunique", "prod", "quantile", "any", "all", "skew",
    }
)  # fmt: skip


def supported(gb: Any) -> bool:
    """True when the grouping can be shuffled: column keys, none categorical, unique columns."""
    if gb._keys is None:
        return False
    dtypes = gb._obj._meta.dtypes
    return not any(isinstance(dtypes[k], pandas.CategoricalDtype) for k in gb._keys)


def _bucketed(gb: Any) -> tuple[list[list[Any]], list[int]]:
    """Every live partition split by key hash: refs per bucket and the partitions' offsets."""
    obj, keys = gb._obj, gb._keys
    lengths = obj._lengths()
    offsets = [int(x) for x in np.cumsum([0, *lengths])]
    live = [i for i, n in enumerate(lengths) if n]
    n = max(1, len(live))
    kinds = [_hash_kind(obj._meta[k].dtype, obj._meta[k].dtype) for k in keys]
    split = [
        submit(
            _split, [obj._parts[i]], num_returns=n, keys=keys, kinds=kinds, n=n, offset=offsets[i]
        )
        for i in live
    ]
    if n == 1:
        split = [[s] for s in split]
    return [[s[b] for s in split] for b in range(n)], offsets


def _split(part: pandas.DataFrame, *, keys: list, kinds: list, n: int, offset: int) -> tuple:
    """(rows, their global positions) of the partition, one pair per bucket of the key hash."""
    pos = np.arange(offset, offset + len(part), dtype=np.int64)
    if n == 1:
        return (part, pos)
    normal = pandas.DataFrame(
        {i: _normalise(part[k], kind).to_numpy() for i, (k, kind) in enumerate(zip(keys, kinds))}
    )
    from pandas.util import hash_pandas_object

    bucket = (hash_pandas_object(normal, index=False).to_numpy() % np.uint64(n)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(n + 1), side="left")
    taken, tpos = part.take(order), pos[order]
    return tuple(
        (taken.iloc[bounds[i] : bounds[i + 1]], tpos[bounds[i] : bounds[i + 1]]) for i in range(n)
    )


def _joined(pieces: tuple) -> tuple[pandas.DataFrame, np.ndarray]:
    """One bucket's rows (partition order) and their global positions."""
    frames = [f for f, _ in pieces]
    frame = frames[0] if len(frames) == 1 else pandas.concat(frames)
    return frame, np.concatenate([p for _, p in pieces])


def _grouped(frame: pandas.DataFrame, keys: list, opts: dict, selection: Any) -> Any:
    g = frame.groupby(keys if len(keys) > 1 else keys[0], **opts)
    return g if selection is None else g[selection]


def _first_seen(
    frame: pandas.DataFrame, pos: np.ndarray, keys: list, dropna: bool
) -> pandas.Series:
    """Each group's first global row position, indexed by the group key (as pandas indexes it)."""
    k = keys if len(keys) > 1 else keys[0]
    return (
        pandas.Series(pos, index=frame.index)
        .groupby([frame[c] for c in keys] if len(keys) > 1 else frame[k], sort=False, dropna=dropna)
        .min()
    )


def _bucket_op(
    *pieces: tuple, keys: list, opts: dict, selection: Any, fn: Callable[[Any], Any]
) -> tuple[Any, pandas.Series | None]:
    """`fn` of the bucket's grouping and each group's first position (None: bucket empty)."""
    frame, pos = _joined(pieces)
    if not len(frame):
        return None, None
    result = fn(_grouped(frame, keys, opts, selection))
    return result, _first_seen(frame, pos, keys, opts.get("dropna", True))


def _group_ranks(firsts: list[pandas.Series], sort: bool) -> pandas.Series:
    """Group key -> its place in pandas' group order, over every bucket's groups."""
    first = pandas.concat(firsts)
    if sort:
        names = list(range(first.index.nlevels))
        ranks = (
            pandas.Series(0, index=first.index)
            .groupby(level=names if len(names) > 1 else 0, sort=True, dropna=False)
            .ngroup()
        )
        return pandas.Series(ranks.to_numpy(), index=first.index)
    order = np.argsort(first.to_numpy(), kind="stable")
    ranks = np.empty(len(first), dtype=np.int64)
    ranks[order] = np.arange(len(first))
    return pandas.Series(ranks, index=first.index)


def _keys_of(result: Any, nkeys: int, as_index: bool, keys: list) -> pandas.Index:
    """The group key of each result row (index levels, or key columns with `as_index=False`)."""
    if as_index:
        idx = result.index
        if nkeys == 1:
            return idx.get_level_values(0) if idx.nlevels > 1 else idx
        return pandas.MultiIndex.from_arrays([idx.get_level_values(i) for i in range(nkeys)])
    if nkeys == 1:
        return pandas.Index(result[keys[0]])
    return pandas.MultiIndex.from_arrays([result[k] for k in keys])


def _ordered(gb: Any, fn: Callable[[Any], Any], keyed: Callable[[Any], bool]) -> Any:
    """Bucket results of `fn` concatenated in pandas' group order; None when pandas must run it."""
    buckets, _ = _bucketed(gb)
    keys, opts = gb._keys, dict(gb._opts)
    done = fetch(
        [
            submit(_bucket_op, [], *refs, keys=keys, opts=opts, selection=gb._selection, fn=fn)
            for refs in buckets
        ]
    )
    done = [(r, f) for r, f in done if r is not None]
    if not done:
        return None
    results = [r for r, _ in done]
    if len({type(r) for r in results}) != 1 or not all(keyed(r) for r in results):
        return None
    if isinstance(results[0], pandas.DataFrame) and not all(
        list(r.columns) == list(results[0].columns) and (r.dtypes == results[0].dtypes).all()
        for r in results
    ):
        return None
    ranks = _group_ranks([f for _, f in done], opts.get("sort", True))
    as_index = opts.get("as_index", True)
    whole = results[0] if len(results) == 1 else pandas.concat(results)
    where = ranks.index.get_indexer(_keys_of(whole, len(keys), as_index, keys))
    if (where < 0).any():
        return None
    out = whole.take(np.argsort(ranks.to_numpy()[where], kind="stable"))
    return out if as_index else out.reset_index(drop=True)


def _keyed_by(keys: list, as_index: bool) -> Callable[[Any], bool]:
    """A check that a bucket's result is indexed (or led, `as_index=False`) by the group keys."""

    def check(result: Any) -> bool:
        if not isinstance(result, (pandas.DataFrame, pandas.Series)):
            return False
        if as_index:
            return list(result.index.names[: len(keys)]) == list(keys)
        return isinstance(result, pandas.DataFrame) and list(result.columns[: len(keys)]) == list(
            keys
        )

    return check


def shuffled_agg(gb: Any, fn: Callable[[Any], Any]) -> Any:
    """A per-group reduction `fn(grouping)` run per bucket; the pandas object, or None."""
    return _ordered(gb, fn, _keyed_by(gb._keys, gb._opts.get("as_index", True)))


def shuffled_apply(gb: Any, fn: Callable[[Any], Any]) -> Any:
    """`apply` run per bucket when its result is keyed by the groups; the pandas object, or None."""
    if not gb._opts.get("as_index", True) or not gb._opts.get("group_keys", True):
        return None
    return _ordered(gb, fn, _keyed_by(gb._keys, True))


def shuffled_transform(gb: Any, fn: Callable[[Any], Any]) -> Any:
    """`transform` per bucket, rows sent back to their partitions in order; a frame, or None."""
    from runtime.dataframe.frame import _dtypes_of, _same_dtypes

    obj = gb._obj
    buckets, offsets = _bucketed(gb)
    nparts = len(obj._parts)
    keys, opts = gb._keys, dict(gb._opts)
    pieces = [
        submit(
            _transform_bucket,
            [],
            *refs,
            num_returns=nparts + 1,
            keys=keys,
            opts=opts,
            selection=gb._selection,
            fn=fn,
            offsets=offsets,
        )  # fmt: skip
        for refs in buckets
    ]
    oks = fetch([p[-1] for p in pieces])
    if not all(oks):
        return None
    refs, metas, lengths = {}, {}, obj._lengths()
    for i in range(nparts):
        refs[i], metas[i] = submit(_gather_rows, [], *[p[i] for p in pieces], num_returns=2)
    metas = dict(zip(refs, fetch(list(metas.values()))))
    combined = pandas.concat([metas[i] for i in range(nparts)])
    parts = []
    for i in range(nparts):
        ref = refs[i]
        if not _same_dtypes(metas[i], combined):
            ref = submit(
                kernels.apply_method, [Part(ref, lengths[i])], method="astype",
                args=(_dtypes_of(combined),),
            )  # fmt: skip
        parts.append(Part(ref, lengths[i]))
    return obj._like(parts, combined, same_rows=True)


def _transform_bucket(
    *pieces: tuple, keys: list, opts: dict, selection: Any, fn: Callable, offsets: list
) -> tuple:
    """The bucket's transformed rows split by the partition they came from, and whether it ran."""
    frame, pos = _joined(pieces)
    nparts = len(offsets) - 1
    if not len(frame):
        return (*[None] * nparts, True)
    try:
        out = fn(_grouped(frame, keys, opts, selection))
    except Exception:  # e.g. a bucket of only missing keys: pandas on the whole frame decides
        return (*[None] * nparts, False)
    if not (isinstance(out, (pandas.DataFrame, pandas.Series)) and len(out) == len(frame)):
        return (*[None] * nparts, False)
    target = np.searchsorted(np.asarray(offsets), pos, side="right") - 1
    order = np.argsort(target, kind="stable")
    bounds = np.searchsorted(target[order], np.arange(nparts + 1), side="left")
    taken, tpos = out.take(order), pos[order]
    return (
        *[
            (taken.iloc[bounds[i] : bounds[i + 1]], tpos[bounds[i] : bounds[i + 1]])
            for i in range(nparts)
        ],
        True,
    )


def _gather_rows(*pieces: tuple) -> tuple[Any, Any]:
    """One partition's transformed rows from every bucket, back in their original order."""
    frame, pos = _joined(tuple(p for p in pieces if p is not None))
    out = frame.take(np.argsort(pos, kind="stable"))
    return out, out.iloc[:0]
