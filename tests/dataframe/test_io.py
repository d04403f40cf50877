"""read_csv in parallel byte ranges and read_parquet give pandas' own frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.dataframe.conftest import random_frame

pandas = pytest.importorskip("pandas")
import pandas.testing as tm  # noqa: E402

import runtime.dataframe as pd  # noqa: E402
from runtime.dataframe import io as io_module  # noqa: E402


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut even small test files into several ranges."""
    monkeypatch.setattr(io_module, "MIN_RANGE_BYTES", 200)
    pd.NPartitions.put(5)
    yield
    pd.NPartitions.put(None)


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = random_frame(21, 300).drop(columns=["c"])
    path = tmp_path / "data.csv"
    p.to_csv(path, index=False)
    return path


def test_split_ranges_parse_as_pandas(csv: Path) -> None:
    df = pd.read_csv(csv)
    assert len(df._parts) == 5
    tm.assert_frame_equal(df.to_pandas(), pandas.read_csv(csv))
    tm.assert_index_equal(df.index, pandas.RangeIndex(300))
    for kw in (
        {"usecols": ["k", "s", "x"]},
        {"parse_dates": ["t"]},
        {"index_col": "k"},
        {"dtype": {"v": "float32"}},
        {"skiprows": 1, "header": None},
        {"names": list("ABCDEF"), "header": 0},
        {"nrows": 17},
    ):
        tm.assert_frame_equal(pd.read_csv(csv, **kw).to_pandas(), pandas.read_csv(csv, **kw))


def test_quoted_newlines_and_header_only(tmp_path: Path) -> None:
    rows = [f'{i},"line one\nline two {i}",{i * 0.5}' for i in range(60)]
    path = tmp_path / "quoted.csv"
    path.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    tm.assert_frame_equal(pd.read_csv(path).to_pandas(), pandas.read_csv(path))
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    tm.assert_frame_equal(pd.read_csv(empty).to_pandas(), pandas.read_csv(empty))


def test_ranges_with_missing_values_get_whole_file_dtypes(tmp_path: Path) -> None:
    n = 400
    s = np.where(np.arange(n) < 300, "", "word")  # strings only in the last ranges
    i = np.where(np.arange(n) < 350, "7", "")  # ints, then missing: float for the file
    path = tmp_path / "sparse.csv"
    path.write_text("s,i,z\n" + "".join(f"{a},{b},{k}\n" for k, (a, b) in enumerate(zip(s, i))))
    ours, theirs = pd.read_csv(path), pandas.read_csv(path)
    tm.assert_series_equal(ours.dtypes, theirs.dtypes)
    tm.assert_frame_equal(ours.to_pandas(), theirs)


def test_missing_file_is_pandas_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        pd.read_csv(tmp_path / "nope.csv")


def test_read_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    p = random_frame(22, 120)
    path = tmp_path / "data.parquet"
    p.to_parquet(path, row_group_size=25)
    df = pd.read_parquet(path)
    assert len(df._parts) == 5
    tm.assert_frame_equal(df.to_pandas(), pandas.read_parquet(path))
    tm.assert_frame_equal(
        pd.read_parquet(path, columns=["k", "s"]).to_pandas(),
        pandas.read_parquet(path, columns=["k", "s"]),
    )
