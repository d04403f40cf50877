"""groupby (map then tree reduce) and value_counts equal pandas' on random frames."""

from __future__ import annotations

import warnings

import pytest

from tests.dataframe.conftest import CASE_IDS, CASES, random_frame

pandas = pytest.importorskip("pandas")
import pandas.testing as tm  # noqa: E402

import runtime.dataframe as pd  # noqa: E402
from runtime.dataframe import groupby as groupby_module  # noqa: E402

SOME = [0, 2, 4]  # empty, more partitions than rows, several partitions


@pytest.fixture(params=[CASES[i] for i in SOME], ids=[CASE_IDS[i] for i in SOME])
def frames(request: pytest.FixtureRequest) -> tuple:
    seed, rows, parts = request.param
    p = random_frame(seed, rows)
    return pd.from_pandas(p, parts), p


def check(ours: object, theirs: object) -> None:
    got = ours.to_pandas()
    if isinstance(theirs, pandas.Series):
        tm.assert_series_equal(got, theirs)
    else:
        tm.assert_frame_equal(got, theirs)


@pytest.mark.parametrize(
    "key,sort,dropna",
    [
        ("k", True, True),
        ("s", False, False),
        (["s", "k"], True, False),
        ("b", False, True),
        ("c", True, True),
        ("c", False, False),
    ],
)
def test_methods_by_key(frames: tuple, key: object, sort: bool, dropna: bool) -> None:
    df, p = frames
    opts = {"sort": sort, "dropna": dropna, "observed": key != "c" or not sort}
    g, pg = df.groupby(key, **opts), p.groupby(key, **opts)
    check(g[["x", "v"]].sum(), pg[["x", "v"]].sum())
    check(g[["x", "v", "b"]].mean(), pg[["x", "v", "b"]].mean())
    check(g.count(), pg.count())
    check(g.size(), pg.size())
    check(g[["x", "s", "t"]].min(), pg[["x", "s", "t"]].min())
    check(g["v"].max(), pg["v"].max())


def test_agg_forms_and_as_index(frames: tuple) -> None:
    df, p = frames
    g, pg = df.groupby("k"), p.groupby("k")
    check(g[["x", "v", "s"]].agg("sum"), pg[["x", "v", "s"]].agg("sum"))
    check(g[["x", "v"]].agg(["sum", "mean", "count"]), pg[["x", "v"]].agg(["sum", "mean", "count"]))
    check(g.agg({"x": "mean", "v": ["min", "max"]}), pg.agg({"x": "mean", "v": ["min", "max"]}))
    check(g.agg({"x": "mean", "s": "first"}), pg.agg({"x": "mean", "s": "first"}))
    check(g.agg(total=("v", "sum"), n=("x", "count")), pg.agg(total=("v", "sum"), n=("x", "count")))
    check(g["x"].agg(["mean", "max"]), pg["x"].agg(["mean", "max"]))
    check(g.last(), pg.last())
    ga, pga = df.groupby(["k", "b"], as_index=False), p.groupby(["k", "b"], as_index=False)
    check(ga[["x", "v"]].sum(), pga[["x", "v"]].sum())
    check(ga.size(), pga.size())
    check(ga.agg({"v": "mean"}), pga.agg({"v": "mean"}))
    check(df.groupby("s").sum(numeric_only=True), p.groupby("s").sum(numeric_only=True))


def test_tree_reduce_over_many_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groupby_module, "FAN_IN", 2)
    p = random_frame(11, 150)
    df = pd.from_pandas(p, 9)
    check(
        df.groupby("s", dropna=False)[["x", "v"]].mean(),
        p.groupby("s", dropna=False)[["x", "v"]].mean(),
    )
    check(
        df.groupby("k", sort=False)[["x", "v"]].agg(["sum", "max"]),
        p.groupby("k", sort=False)[["x", "v"]].agg(["sum", "max"]),
    )
    check(df.v.value_counts(), p.v.value_counts())


def test_other_groupby_methods_default_to_pandas() -> None:
    p = random_frame(12, 50)
    df = pd.from_pandas(p, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(df.groupby("k")["x"].cumsum(), p.groupby("k")["x"].cumsum())
        check(df.groupby("k")["x"].rank(), p.groupby("k")["x"].rank())
        check(df.groupby("k").t.mean(), p.groupby("k").t.mean())
        check(df.groupby("c", observed=False).v.median(), p.groupby("c", observed=False).v.median())
    messages = [str(w.message) for w in caught]
    assert any("SeriesGroupBy.cumsum" in m and "defaulting to pandas" in m for m in messages)
    assert any("SeriesGroupBy.median" in m for m in messages)  # categorical keys: not shuffled


@pytest.mark.parametrize("column", ["s", "c", "x"])
def test_value_counts(frames: tuple, column: str) -> None:
    df, p = frames
    for kw in ({}, {"dropna": False, "ascending": True}, {"normalize": True, "sort": False}):
        check(df[column].value_counts(**kw), p[column].value_counts(**kw))
