"""Operations made parallel in round 6 (shuffled groupby, reductions, missing values, loc/iloc,
nunique/unique) equal pandas' on random frames, and run without defaulting to pandas."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tests.dataframe.conftest import CASE_IDS, CASES, random_frame

pandas = pytest.importorskip("pandas")
import pandas.testing as tm  # noqa: E402

import runtime.dataframe as pd  # noqa: E402

SOME = [0, 4]  # empty, several partitions (more partitions than rows: loc, groupby)


@pytest.fixture(params=[CASES[i] for i in SOME], ids=[CASE_IDS[i] for i in SOME])
def frames(request: pytest.FixtureRequest) -> tuple:
    seed, rows, parts = request.param
    p = random_frame(seed, rows)
    return pd.from_pandas(p, parts), p


@pytest.fixture(autouse=True)
def no_defaulting() -> Iterator[None]:
    """Every operation here must run over partitions: a 'defaulting to pandas' warning fails."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*defaulting to pandas.*")
        yield


def same(ours: Callable[[], object], theirs: Callable[[], object]) -> None:
    """Equal results, or the same exception type when pandas raises."""
    try:
        expected = theirs()
    except Exception as err:  # pandas refuses: so must we, with the same kind of error
        with pytest.raises(type(err)):
            ours()
        return
    got = ours()
    got = got.to_pandas() if hasattr(got, "to_pandas") else got
    if isinstance(expected, pandas.DataFrame):
        tm.assert_frame_equal(got, expected)
    elif isinstance(expected, pandas.Series):
        tm.assert_series_equal(got, expected)
    elif isinstance(expected, pandas.api.extensions.ExtensionArray):
        tm.assert_extension_array_equal(got, expected)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(got, expected)
    else:  # a scalar: the same type, equal (floats to rounding: partial sums add up differently)
        assert type(got) is type(expected), (got, expected)
        if isinstance(expected, float):
            assert np.isclose(got, expected, rtol=1e-9, equal_nan=True), (got, expected)
        else:
            assert got == expected or (pandas.isna(got) and pandas.isna(expected)), (got, expected)


@pytest.mark.parametrize(
    "case,key,sort,dropna",
    [(CASES[2], "k", True, True), (CASES[4], ["s", "k"], False, False)],
    ids=["parts-over-rows", "two-keys-nan-first-seen"],
)
def test_shuffled_groupby(case: tuple, key: object, sort: bool, dropna: bool) -> None:
    seed, rows, parts = case
    p = random_frame(seed, rows)
    df = pd.from_pandas(p, parts)
    g, pg = df.groupby(key, sort=sort, dropna=dropna), p.groupby(key, sort=sort, dropna=dropna)
    same(lambda: g[["x", "v"]].median(), lambda: pg[["x", "v"]].median())
    if rows < 10:  # more partitions than rows: the bucket plumbing, the rest on bigger frames
        same(lambda: g.v.transform("sum"), lambda: pg.v.transform("sum"))
        return
    same(lambda: g["x"].quantile([0.25, 0.75]), lambda: pg["x"].quantile([0.25, 0.75]))
    same(lambda: g.nunique(), lambda: pg.nunique())
    spread = {"x": ["median", "std"], "v": lambda s: s.max() - s.min()}
    same(lambda: g.agg(spread), lambda: pg.agg(spread))
    same(lambda: g["v"].transform("sum"), lambda: pg["v"].transform("sum"))
    same(lambda: g[["x", "v"]].transform(lambda s: s - s.mean()),
         lambda: pg[["x", "v"]].transform(lambda s: s - s.mean()))  # fmt: skip
    same(lambda: g.apply(lambda f: f["v"].sum()), lambda: pg.apply(lambda f: f["v"].sum()))
    same(lambda: g.apply(lambda f: f.head(2)), lambda: pg.apply(lambda f: f.head(2)))


def test_shuffled_groupby_empty() -> None:
    p = random_frame(0, 0)
    df = pd.from_pandas(p, 3)
    same(lambda: df.groupby("k").median(), lambda: p.groupby("k").median())
    same(lambda: df.groupby("k").v.transform("sum"), lambda: p.groupby("k").v.transform("sum"))


def test_reductions(frames: tuple) -> None:
    df, p = frames
    num = ["k", "x", "b", "v"]
    for name in ("sum", "min", "max", "count", "mean", "std", "var", "prod"):
        same(lambda n=name: getattr(df[num], n)(), lambda n=name: getattr(p[num], n)())
        same(lambda n=name: getattr(df.x, n)(), lambda n=name: getattr(p.x, n)())
    for name in ("sum", "max", "std"):  # per row: one task per partition, whatever the name
        same(lambda n=name: getattr(df[num], n)(axis=1), lambda n=name: getattr(p[num], n)(axis=1))
    same(lambda: df.mean(numeric_only=True), lambda: p.mean(numeric_only=True))
    same(lambda: df[["s", "t", "v"]].min(), lambda: p[["s", "t", "v"]].min())
    same(lambda: df.count(), lambda: p.count())
    same(lambda: df.s.max(), lambda: p.s.max())
    same(lambda: df.var(ddof=0, numeric_only=True), lambda: p.var(ddof=0, numeric_only=True))


def test_missing_values_and_distinct(frames: tuple) -> None:
    df, p = frames
    same(lambda: df.dropna(), lambda: p.dropna())
    same(lambda: df.dropna(subset=["x"], how="all"), lambda: p.dropna(subset=["x"], how="all"))
    same(lambda: df.s.dropna(), lambda: p.s.dropna())
    same(lambda: df.fillna({"x": 0.0}).isna(), lambda: p.fillna({"x": 0.0}).isna())
    same(lambda: df.nunique(), lambda: p.nunique())
    same(lambda: df.s.nunique(dropna=False), lambda: p.s.nunique(dropna=False))
    same(lambda: df.s.unique(), lambda: p.s.unique())
    same(lambda: df.v.unique(), lambda: p.v.unique())


@pytest.mark.parametrize("case", [CASES[2], CASES[4]], ids=[CASE_IDS[2], CASE_IDS[4]])
def test_loc_iloc(case: tuple) -> None:
    seed, rows, parts = case
    p = random_frame(seed, rows)
    df = pd.from_pandas(p, parts)
    for key in (slice(1, 4), slice(None, -2), slice(3, None), slice(0, 0)):
        same(lambda k=key: df.iloc[k], lambda k=key: p.iloc[k])
    same(lambda: df.iloc[2:50, 1:3], lambda: p.iloc[2:50, 1:3])
    same(lambda: df.iloc[-1], lambda: p.iloc[-1])
    same(lambda: df.iloc[3, 1], lambda: p.iloc[3, 1])
    same(lambda: df.x.iloc[1:3], lambda: p.x.iloc[1:3])
    same(lambda: df.loc[df.v > 0], lambda: p.loc[p.v > 0])
    same(lambda: df.loc[df.v > 0, ["x", "s"]], lambda: p.loc[p.v > 0, ["x", "s"]])
    same(lambda: df.loc[2:4, "x":"b"], lambda: p.loc[2:4, "x":"b"])
    same(lambda: df.loc[3], lambda: p.loc[3])
    same(lambda: df.loc[3, "v"], lambda: p.loc[3, "v"])
    same(lambda: df.loc[10**6], lambda: p.loc[10**6])  # KeyError both
    keyed = p.set_index("s")
    dk = pd.from_pandas(keyed, 3)
    same(lambda: dk.loc["cat"], lambda: keyed.loc["cat"])  # duplicate labels: a frame
    same(lambda: dk.v.loc["dog"], lambda: keyed.v.loc["dog"])
