"""read_csv (byte ranges aligned on line ends, parsed in parallel tasks) and read_parquet."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pandas
from pandas.api.types import is_bool_dtype, is_integer_dtype

from runtime.dataframe import frame as _frame
from runtime.dataframe import kernels
from runtime.dataframe.config import NPartitions
from runtime.dataframe.engine import Part, ensure_started, fetch, submit
from runtime.dataframe.fallback import call_pandas

__all__ = ["read_csv", "read_parquet"]

MIN_RANGE_BYTES = 64 * 1024
"""Smallest byte range one parse task gets (smaller files make fewer partitions)."""

_SPLITTABLE_ENCODINGS = {
    None,
    "utf-8",
    "utf8",
    "utf-8-sig",
    "ascii",
    "latin-1",
    "latin1",
    "iso-8859-1",
    "cp1252",
}
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")
# options whose meaning spans the whole file: the file is parsed in one task
_WHOLE_FILE_OPTIONS = {
    "nrows",
    "chunksize",
    "iterator",
    "skipfooter",
    "escapechar",
    "memory_map",
    "storage_options",
}


def read_csv(filepath_or_buffer: Any, **kwargs: Any) -> _frame.DataFrame:
    """pandas' `read_csv` (same options and result), the file parsed in parallel byte ranges.

    The file is cut at line ends into `NPartitions` ranges of at least 64 KiB; the first
    range keeps the header, the others get its column names. Quoted fields spanning a cut
    (detected by quote parity) and options that span the whole file (`nrows`, `skipfooter`,
    compression, multi-line headers, `skiprows` lists, ...) make one task parse the file.
    """
    if kwargs.get("iterator") or kwargs.get("chunksize"):
        return call_pandas("read_csv", pandas.read_csv, (filepath_or_buffer,), kwargs)
    if not isinstance(filepath_or_buffer, str | os.PathLike) or not os.path.isfile(
        filepath_or_buffer
    ):
        if isinstance(filepath_or_buffer, str | os.PathLike) and not str(
            filepath_or_buffer
        ).startswith(("http:", "https:", "s3:", "gs:", "file:")):
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{filepath_or_buffer}'")
        return _frame.from_pandas(
            call_pandas("read_csv", pandas.read_csv, (filepath_or_buffer,), kwargs)._to_pandas()
        )
    ensure_started()
    path = os.fspath(filepath_or_buffer)
    npart = NPartitions.get()
    if not _splittable(path, kwargs):
        return _whole_file(path, kwargs, npart)
    header = kwargs.get("header", "infer")
    names = kwargs.get("names")
    has_header = header == 0 or (header == "infer" and names is None)
    skip = kwargs.get("skiprows") or 0
    size = os.path.getsize(path)
    columns = _all_columns(path, kwargs, has_header)
    cuts = _cuts(path, size, npart, skip + (1 if has_header else 0))
    first_kw = dict(kwargs)
    rest_kw = {k: v for k, v in kwargs.items() if k not in ("skiprows", "header", "names")}
    rest_kw.update(header=None, names=columns)
    quote = (kwargs.get("quotechar") or '"').encode()
    parts, infos = [], []
    for i, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        ref, info = submit(
            _parse_range,
            [],
            num_returns=2,
            path=path,
            lo=lo,
            hi=hi,
            kw=first_kw if i == 0 else rest_kw,
            quote=quote,
        )
        parts.append(ref)
        infos.append(info)
    infos = fetch(infos)
    parity = np.cumsum([info[3] for info in infos]) % 2
    if parity[:-1].any() or not all(info[4] for info in infos):  # a cut inside a quoted field
        return _whole_file(path, kwargs, npart)
    return _assemble(parts, infos, kwargs)


def _splittable(path: str, kw: dict) -> bool:
    """True when the file can be cut into byte ranges parsed independently."""
    if _WHOLE_FILE_OPTIONS & {k for k, v in kw.items() if v not in (None, False, 0)}:
        return False
    if kw.get("compression", "infer") not in (None, "infer") or path.lower().endswith(_COMPRESSED):
        return False
    enc = kw.get("encoding")
    if (enc.lower() if isinstance(enc, str) else enc) not in _SPLITTABLE_ENCODINGS:
        return False
    if kw.get("header", "infer") not in ("infer", 0, None):
        return False
    skip = kw.get("skiprows")
    if skip is not None and not isinstance(skip, int):
        return False
    if kw.get("lineterminator") not in (None, "\n"):
        return False
    dtype = kw.get("dtype")
    cats = [dtype] if not isinstance(dtype, dict) else list(dtype.values())
    if any(
        str(d) == "category" or isinstance(d, pandas.CategoricalDtype)
        for d in cats
        if d is not None
    ):
        return False
    return not (kw.get("sep") is None and "sep" in kw and kw.get("delimiter") is None)


def _all_columns(path: str, kw: dict, has_header: bool) -> list:
    """The file's column names before `usecols`/`index_col` select (what later ranges are told)."""
    probe = {
        k: v
        for k, v in kw.items()
        if k
        in (
            "sep",
            "delimiter",
            "header",
            "names",
            "skiprows",
            "quotechar",
            "encoding",
            "skipinitialspace",
            "comment",
            "engine",
            "dialect",
            "quoting",
            "doublequote",
            "skip_blank_lines",
        )
    }
    if kw.get("engine") == "pyarrow":
        probe.pop("engine")
    head = pandas.read_csv(path, nrows=1, **probe)
    return list(head.columns)


def _cuts(path: str, size: int, npart: int, head_lines: int) -> list[int]:
    """Byte offsets 0 = c0 < c1 < ... < size, each cut just after a line end."""
    with open(path, "rb") as f:
        for _ in range(head_lines):
            f.readline()
        first = f.tell()
        nranges = max(1, min(npart, size // MIN_RANGE_BYTES))
        cuts = [0]
        for i in range(1, nranges):
            target = max(size * i // nranges, first)
            if target <= cuts[-1]:
                continue
            f.seek(target - 1)
            f.readline()  # to the end of the line holding byte target-1 (so a cut at a line start stays)
            pos = f.tell()
            if cuts[-1] < pos < size:
                cuts.append(pos)
    cuts.append(size)
    return cuts


class _Range(io.RawIOBase):
    """Bytes `lo:hi` of an open file, read in the parser's chunks, counting `quote` bytes.

    pandas parses straight from it: the range is never held whole in memory (one copy of
    tens of MB fewer per task than reading it into a `bytes` first).
    """

    def __init__(self, f: Any, lo: int, hi: int, quote: bytes) -> None:
        super().__init__()
        f.seek(lo)
        self._f, self._left, self._quote, self.quotes = f, hi - lo, quote, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: max(0, min(len(buffer), self._left))]
        n = self._f.readinto(view) if len(view) else 0
        self._left -= n
        if n:
            self.quotes += view[:n].tobytes().count(self._quote)
        return n


def _parse_range(*, path: str, lo: int, hi: int, kw: dict, quote: bytes) -> tuple[Any, tuple]:
    """Parse bytes `lo:hi` of the file; the frame and (length, meta, all-NA columns, quotes)."""
    with open(path, "rb", buffering=0) as f:
        source = _Range(f, lo, hi, quote)
        try:
            df = pandas.read_csv(io.BufferedReader(source, 1 << 20), **kw)
        except (
            Exception
        ):  # a cut inside a quoted field, or a real error: the whole-file parse decides
            return None, (0, None, (), -1, False)
        rest = bytearray(1 << 16)
        while source.readinto(rest):  # the parser stopped early (it should not): count the rest
            pass
        quotes = source.quotes
    allna = tuple(c for c in df.columns if len(df) and df[c].isna().all())
    return df, (len(df), df.iloc[:0], allna, quotes, True)


def _target_dtype(col: Any, metas: list, allna: list, combined: Any) -> Any:
    """pandas' dtype for `col` over the whole file, from the ranges' dtypes."""
    informative = {m[col].dtype for m, na in zip(metas, allna) if col not in na}
    if len(informative) == 1:
        only = next(iter(informative))
        if not (is_integer_dtype(only) or is_bool_dtype(only)):
            return (
                only  # ranges where the column is all missing parse as float; pandas keeps only's
            )
    return combined[col].dtype


def _assemble(refs: list, infos: list, kw: dict) -> _frame.DataFrame:
    """The parsed ranges as a frame: dtypes unified as pandas' whole-file parse, index numbered."""
    lengths = [info[0] for info in infos]
    live = [i for i, n in enumerate(lengths) if n] or [0]
    metas = [infos[i][1] for i in live]
    allna = [set(infos[i][2]) for i in live]
    combined = pandas.concat(metas)
    targets = {c: _target_dtype(c, metas, allna, combined) for c in combined.columns}
    meta = combined.astype(targets) if len(combined.columns) else combined
    ranged = kw.get("index_col") in (None, False)
    if ranged:
        meta = meta.reset_index(drop=True)
    parts, offset = [], 0
    for i in live:
        ref, m = refs[i], infos[i][1]
        if any(m[c].dtype != targets[c] for c in m.columns):
            ref = submit(
                kernels.apply_method, [Part(ref, lengths[i])], method="astype", args=(targets,)
            )
        parts.append(Part(ref, lengths[i], offset if ranged else None))
        offset += lengths[i]
    return _frame.DataFrame._build(parts, meta)


def _whole_file(path: str, kw: dict, npart: int) -> _frame.DataFrame:
    """Parse the file in one task, split it into partitions there."""
    pieces = submit(_parse_whole, [], num_returns=npart + 1, path=path, kw=kw, n=npart)
    lengths = fetch(pieces[-1]) if npart else []
    parts = [Part(r, n) for r, n in zip(pieces[:-1], lengths) if n] or [Part(pieces[0], 0)]
    meta = fetch(submit(kernels.meta_of, [parts[0]]))
    return _frame.DataFrame._build(parts, meta)


def _parse_whole(*, path: str, kw: dict, n: int) -> tuple:
    """pandas' read_csv of the whole file, cut into `n` row slices, and their lengths."""
    df = pandas.read_csv(path, **kw)
    pieces = _frame._split(df, n)
    pieces += [df.iloc[:0]] * (n - len(pieces))
    return (*pieces, [len(p) for p in pieces])


def read_parquet(path: Any, columns: Any = None, **kwargs: Any) -> _frame.DataFrame:
    """pandas' `read_parquet` (pyarrow): row groups read in parallel tasks when possible."""
    try:
        import pyarrow.parquet as pq
        from pandas.io._util import arrow_table_to_pandas  # noqa: F401  (the conversion pandas uses)
    except ImportError:
        pq = None
    if pq is None or kwargs or not isinstance(path, str | os.PathLike) or not os.path.isfile(path):
        result = call_pandas(
            "read_parquet", pandas.read_parquet, (path,), {"columns": columns, **kwargs}
        )
        return result if isinstance(result, _frame.DataFrame) else _frame.from_pandas(result)
    ensure_started()
    meta_file = pq.ParquetFile(path)
    groups = list(range(meta_file.num_row_groups))
    npart = max(1, min(NPartitions.get(), len(groups)))
    # file order kept: each task reads a contiguous run of row groups
    bounds = [len(groups) * i // npart for i in range(npart + 1)]
    chunks = [groups[bounds[i] : bounds[i + 1]] for i in range(npart)]
    pmeta = meta_file.schema_arrow.pandas_metadata or {}
    ranged = any(
        isinstance(ix, dict) and ix.get("kind") == "range" for ix in pmeta.get("index_columns", [])
    ) or not pmeta.get("index_columns")
    refs = [
        submit(_read_groups, [], num_returns=2, path=os.fspath(path), groups=c, columns=columns)
        for c in chunks
    ]
    infos = fetch([i for _, i in refs])
    parts, offset = [], 0
    for (ref, _), (n, _) in zip(refs, infos):
        parts.append(Part(ref, n, offset if ranged else None))
        offset += n
    meta = pandas.concat([m for _, m in infos])
    if ranged:
        meta = meta.reset_index(drop=True)
    return _frame.DataFrame._build(parts, meta)


def _read_groups(*, path: str, groups: list, columns: Any) -> tuple[Any, tuple]:
    """Row groups `groups` of the file, converted as pandas converts."""
    import pyarrow.parquet as pq
    from pandas.io._util import arrow_table_to_pandas

    f = pq.ParquetFile(path)
    table = (
        f.read_row_groups(groups, columns=columns, use_pandas_metadata=True)
        if groups
        else f.schema_arrow.empty_table()
    )
    df = arrow_table_to_pandas(table)
    return df, (len(df), df.iloc[:0])
