"""runtime.dataframe element-wise, row-wise and metadata operations equal pandas' own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.dataframe.conftest import CASE_IDS, CASES, random_frame

pandas = pytest.importorskip("pandas")
import pandas.testing as tm  # noqa: E402

import runtime.dataframe as pd  # noqa: E402
from runtime.dataframe.fallback import reset_warnings  # noqa: E402


@pytest.fixture(params=CASES, ids=CASE_IDS)
def frames(request: pytest.FixtureRequest) -> tuple:
    seed, rows, parts = request.param
    p = random_frame(seed, rows)
    return pd.from_pandas(p, parts), p


def test_round_trip_and_metadata(frames: tuple) -> None:
    df, p = frames
    tm.assert_frame_equal(df.to_pandas(), p)
    assert len(df) == len(p) and df.shape == p.shape
    tm.assert_series_equal(df.dtypes, p.dtypes)
    tm.assert_index_equal(df.columns, p.columns)
    tm.assert_index_equal(df.index, p.index)
    tm.assert_frame_equal(df.head(3).to_pandas(), p.head(3))
    tm.assert_frame_equal(df.tail(4).to_pandas(), p.tail(4))
    tm.assert_frame_equal(df.head(-2).to_pandas(), p.head(-2))


def test_arithmetic_and_comparisons(frames: tuple) -> None:
    df, p = frames
    num, pnum = df[["k", "x", "v"]], p[["k", "x", "v"]]
    tm.assert_frame_equal((num * 2 - 1).to_pandas(), pnum * 2 - 1)
    tm.assert_frame_equal((num / num).to_pandas(), pnum / pnum)
    tm.assert_frame_equal((1 - num).to_pandas(), 1 - pnum)
    tm.assert_frame_equal(
        num.add(pandas.Series({"k": 1, "x": 2.5, "v": 3})).to_pandas(),
        pnum.add(pandas.Series({"k": 1, "x": 2.5, "v": 3})),
    )
    tm.assert_series_equal((df.x + df.v).to_pandas(), p.x + p.v)
    tm.assert_series_equal((df.v // 3).to_pandas(), p.v // 3)
    tm.assert_series_equal((df.x >= 0).to_pandas(), p.x >= 0)
    tm.assert_series_equal(((df.k == 1) | ~df.b).to_pandas(), (p.k == 1) | ~p.b)
    tm.assert_series_equal((df.s == "cat").to_pandas(), p.s == "cat")
    tm.assert_series_equal((-df.v).abs().to_pandas(), (-p.v).abs())
    tm.assert_frame_equal(num.isna().to_pandas(), pnum.isna())
    tm.assert_frame_equal(df.fillna({"x": 0.0}).to_pandas(), p.fillna({"x": 0.0}))
    tm.assert_series_equal(df.x.round(1).to_pandas(), p.x.round(1))
    tm.assert_series_equal(df.v.astype("float32").to_pandas(), p.v.astype("float32"))
    tm.assert_series_equal(df.s.isin(["ant", "eel"]).to_pandas(), p.s.isin(["ant", "eel"]))
    tm.assert_series_equal(df.x.where(df.x > 0, -1.0).to_pandas(), p.x.where(p.x > 0, -1.0))


def test_selection_filtering_and_assign(frames: tuple) -> None:
    df, p = frames
    tm.assert_series_equal(df["x"].to_pandas(), p["x"])
    tm.assert_frame_equal(df[["s", "k"]].to_pandas(), p[["s", "k"]])
    tm.assert_frame_equal(df[df.x > 0].to_pandas(), p[p.x > 0])
    tm.assert_frame_equal(df[(df.k == 2) & df.b].to_pandas(), p[(p.k == 2) & p.b])
    tm.assert_series_equal(df.v[df.b].to_pandas(), p.v[p.b])
    filtered, pf = df[df.v > 0], p[p.v > 0]
    assert len(filtered) == len(pf)
    tm.assert_series_equal((filtered.v * filtered.k).to_pandas(), pf.v * pf.k)
    tm.assert_frame_equal(
        df.assign(y=lambda d: d.x * 2, z=1, w=df.v + 1).to_pandas(),
        p.assign(y=lambda d: d.x * 2, z=1, w=p.v + 1),
    )
    df2, p2 = df.copy(), p.copy()
    df2["n"] = df2.v * 10
    p2["n"] = p2.v * 10
    df2["one"] = "x"
    p2["one"] = "x"
    tm.assert_frame_equal(df2.to_pandas(), p2)
    tm.assert_frame_equal(
        df.drop(columns=["t"]).rename(columns={"x": "X"}).to_pandas(),
        p.drop(columns=["t"]).rename(columns={"x": "X"}),
    )
    renamed, pr = df[["k", "v"]].copy(), p[["k", "v"]].copy()
    renamed.columns = ["K", "V"]
    pr.columns = ["K", "V"]
    tm.assert_frame_equal(renamed.to_pandas(), pr)
    with pytest.raises(KeyError):
        df["missing"]


def test_apply_and_map_row_wise(frames: tuple) -> None:
    df, p = frames
    if len(p):
        tm.assert_series_equal(
            df.apply(lambda r: r["k"] * 2 + r["v"], axis=1).to_pandas(),
            p.apply(lambda r: r["k"] * 2 + r["v"], axis=1),
        )
    tm.assert_series_equal(df.v.map(lambda v: v % 7).to_pandas(), p.v.map(lambda v: v % 7))
    tm.assert_series_equal(
        df.k.map({0: "zero", 1: "one"}).to_pandas(), p.k.map({0: "zero", 1: "one"})
    )
    tm.assert_series_equal(df.x.apply(lambda v: v * 3).to_pandas(), p.x.apply(lambda v: v * 3))
    tm.assert_frame_equal(
        df[["k", "v"]].map(lambda v: v + 1).to_pandas(), p[["k", "v"]].map(lambda v: v + 1)
    )
    tm.assert_series_equal(df.s.str.upper().to_pandas(), p.s.str.upper())
    tm.assert_series_equal(df.s.str.len().to_pandas(), p.s.str.len())
    tm.assert_series_equal(df.t.dt.hour.to_pandas(), p.t.dt.hour)


def test_concat_keeps_pandas_dtypes_and_index(frames: tuple) -> None:
    df, p = frames
    other = p.assign(v=p.v.astype("float64"))
    tm.assert_frame_equal(
        pd.concat([df, pd.from_pandas(other, 2)]).to_pandas(), pandas.concat([p, other])
    )
    tm.assert_frame_equal(
        pd.concat([df, df], ignore_index=True).to_pandas(), pandas.concat([p, p], ignore_index=True)
    )
    tm.assert_series_equal(pd.concat([df.x, df.x]).to_pandas(), pandas.concat([p.x, p.x]))


def test_construction_as_pandas() -> None:
    data = {"a": [1, 2, 3], "b": ["x", "y", None]}
    tm.assert_frame_equal(pd.DataFrame(data).to_pandas(), pandas.DataFrame(data))
    tm.assert_frame_equal(
        pd.DataFrame(data, index=[10, 20, 30], columns=["b", "a"]).to_pandas(),
        pandas.DataFrame(data, index=[10, 20, 30], columns=["b", "a"]),
    )
    tm.assert_series_equal(
        pd.Series([1.5, None], name="s").to_pandas(), pandas.Series([1.5, None], name="s")
    )
    tm.assert_frame_equal(pd.DataFrame().to_pandas(), pandas.DataFrame())
    assert isinstance(pd.DataFrame(data)["a"], pd.Series)
    assert pd.Timestamp is pandas.Timestamp


def test_npartitions_is_configurable() -> None:
    pd.NPartitions.put(3)
    try:
        assert len(pd.DataFrame({"a": range(10)})._parts) == 3
    finally:
        pd.NPartitions.put(None)
    assert pd.NPartitions.get() == 2  # the cluster's CPUs
    with pytest.raises(ValueError, match="NPartitions"):
        pd.NPartitions.put(0)


def test_other_methods_default_to_pandas_with_one_warning_each() -> None:
    p = random_frame(7, 40)
    df = pd.from_pandas(p, 3)
    reset_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tm.assert_frame_equal(df[["x", "v"]].rank().to_pandas(), p[["x", "v"]].rank())
        tm.assert_frame_equal(df[["x", "v"]].rank().to_pandas(), p[["x", "v"]].rank())
        tm.assert_frame_equal(
            df.pivot_table(index="k", values="v", aggfunc="sum").to_pandas(),
            p.pivot_table(index="k", values="v", aggfunc="sum"),
        )
        tm.assert_series_equal(df.x.cumsum().to_pandas(), p.x.cumsum())
        tm.assert_frame_equal(df.loc[df.index[3:9]].to_pandas(), p.loc[p.index[3:9]])
        assert df.v.median() == p.v.median()
        tm.assert_frame_equal(
            pd.melt(df[["k", "v"]], id_vars="k").to_pandas(),
            pandas.melt(p[["k", "v"]], id_vars="k"),
        )
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    for name in (
        "DataFrame.rank",
        "DataFrame.pivot_table",
        "Series.cumsum",
        "DataFrame.loc",
        "Series.median",
        "melt",
    ):
        assert sum(f"`{name}`" in m for m in messages) == 1, (name, messages)
    assert all("defaulting to pandas" in m for m in messages)


def test_in_place_fallbacks_change_the_frame() -> None:
    p = random_frame(8, 30)
    df = pd.from_pandas(p, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df.reset_index(drop=True, inplace=True)
        p.reset_index(drop=True, inplace=True)
        df.loc[2, "v"] = 999
        p.loc[2, "v"] = 999
        df.insert(0, "first", 1)
        p.insert(0, "first", 1)
    tm.assert_frame_equal(df.to_pandas(), p)


def test_errors_are_pandas_errors() -> None:
    df = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    with pytest.raises(TypeError):
        (df.a - 1).to_pandas()
    with pytest.raises(AttributeError):
        df.no_such_method()
    with pytest.raises(KeyError):
        df.groupby("zz")
    assert np.asarray(df.b).tolist() == [1, 2]
