"""pandas over partitions in the object store, in the manner of Modin: `import runtime.dataframe as pd`.

A `DataFrame` is a list of row partitions (refs to pandas frames) plus cached metadata;
its operations are tasks over the partitions (see docs/design.md, "Dataframes"). Every
pandas method or function not made parallel here still works: it runs in pandas on the
collected frame, with a one-time `UserWarning` naming it ("defaulting to pandas").
"""

from __future__ import annotations

from typing import Any

import pandas as _pandas

from runtime.dataframe.config import NPartitions
from runtime.dataframe.fallback import call_pandas as _call_pandas
from runtime.dataframe.frame import (
    DataFrame,
    Series,
    concat,
    execute,
    from_pandas,
    partitions,
    to_pandas,
)
from runtime.dataframe.groupby import DataFrameGroupBy, SeriesGroupBy
from runtime.dataframe.io import read_csv, read_parquet
from runtime.dataframe.merge import merge

__all__ = [
    "DataFrame",
    "DataFrameGroupBy",
    "NPartitions",
    "Series",
    "SeriesGroupBy",
    "concat",
    "execute",
    "from_pandas",
    "merge",
    "partitions",
    "read_csv",
    "read_parquet",
    "to_pandas",
]


def __getattr__(name: str) -> Any:
    """pandas' other names: classes and constants as they are, functions defaulting to pandas."""
    value = getattr(_pandas, name)  # AttributeError as pandas' for unknown names
    if callable(value) and not isinstance(value, type) and not name.startswith("_"):

        def function(*args: Any, **kwargs: Any) -> Any:
            return _call_pandas(name, value, args, kwargs)

        function.__name__ = name
        function.__doc__ = value.__doc__
        return function
    return value
