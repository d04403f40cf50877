"""describe: pandas' `describe` of each column in its own task, assembled as pandas does."""

from __future__ import annotations

from typing import Any

import pandas

from runtime.dataframe import frame as _frame
from runtime.dataframe.engine import fetch, submit
from runtime.dataframe.fallback import wrap_result

__all__ = ["describe"]


def describe(obj: Any, percentiles: Any = None, include: Any = None, exclude: Any = None) -> Any:
    """`obj.describe(...)`: the columns pandas would describe, one task each."""
    kw = {"percentiles": percentiles, "include": include, "exclude": exclude}
    if isinstance(obj, _frame.Series):
        if include is not None or exclude is not None:
            raise ValueError("include and exclude are not valid for a Series' describe")
        return wrap_result(
            fetch(submit(_describe_column, obj._parts, column=None, percentiles=percentiles))
        )
    chosen = obj._meta.describe(**kw).columns  # pandas' column choice (dtypes only) and errors
    refs = [submit(_describe_column, obj._parts, column=c, percentiles=percentiles) for c in chosen]
    pieces = fetch(refs)
    names: list = []  # row order as pandas' reorder_columns: shortest descriptions first
    for index in sorted((d.index for d in pieces), key=len):
        names.extend(n for n in index if n not in names)
    out = pandas.concat([d.reindex(names) for d in pieces], axis=1, sort=False)
    out.columns = chosen.copy()
    return wrap_result(out)


def _describe_column(*parts: Any, column: Any, percentiles: Any) -> pandas.Series:
    """pandas' describe of one column gathered from every partition."""
    cols = [p if column is None else p[column] for p in parts]
    joined = cols[0] if len(cols) == 1 else pandas.concat(cols)
    return joined.describe(percentiles=percentiles)
