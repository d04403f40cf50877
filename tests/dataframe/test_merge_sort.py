"""merge/join (hash shuffle), sort_values (range partitioning) and describe equal pandas'."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from tests.dataframe.conftest import CASE_IDS, CASES, random_frame

pandas = pytest.importorskip("pandas")
import pandas.testing as tm  # noqa: E402

import runtime.dataframe as pd  # noqa: E402

merge_module = importlib.import_module("runtime.dataframe.merge")


@pytest.fixture(params=[CASES[2], CASES[4]], ids=[CASE_IDS[2], CASE_IDS[4]])
def frames(request: pytest.FixtureRequest) -> tuple:
    seed, rows, parts = request.param
    p = random_frame(seed, rows)
    return pd.from_pandas(p, parts), p


def right_frame(seed: int, rows: int) -> pandas.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["ant", "bee", "cat", "fox", None], dtype=object)
    return pandas.DataFrame(
        {
            "k": rng.integers(0, 6, rows),
            "s": pandas.Series(words[rng.integers(0, 5, rows)], dtype="str"),
            "w": rng.integers(0, 100, rows),
            "x": rng.random(rows),
        }
    )


@pytest.mark.parametrize("broadcast", [True, False], ids=["broadcast", "shuffle"])
@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_merge(frames: tuple, how: str, broadcast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not broadcast:
        monkeypatch.setattr(merge_module, "BROADCAST_ROWS", -1)
    df, p = frames
    r = right_frame(len(p), 23)
    dr = pd.from_pandas(r, 3)
    tm.assert_frame_equal(df.merge(dr, on="k", how=how).to_pandas(), p.merge(r, on="k", how=how))
    tm.assert_frame_equal(
        pd.merge(df, dr, on=["k", "s"], how=how).to_pandas(),
        pandas.merge(p, r, on=["k", "s"], how=how),
    )
    if broadcast:
        return
    tm.assert_frame_equal(
        df.merge(dr, left_on="v", right_on="w", how=how, suffixes=("_l", "_r")).to_pandas(),
        p.merge(r, left_on="v", right_on="w", how=how, suffixes=("_l", "_r")),
    )
    if how != "outer":
        tm.assert_frame_equal(
            df.merge(dr, on="k", how=how, sort=True).to_pandas(),
            p.merge(r, on="k", how=how, sort=True),
        )


def test_merge_of_a_small_left_side() -> None:
    p = random_frame(9, 3)
    r = right_frame(9, 40)
    for how in ("inner", "left", "right"):
        tm.assert_frame_equal(
            pd.from_pandas(p, 2).merge(pd.from_pandas(r, 3), on="k", how=how).to_pandas(),
            p.merge(r, on="k", how=how),
        )


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_join_on_index(frames: tuple, how: str) -> None:
    df, p = frames
    r = right_frame(5, 15).set_index("k")
    tm.assert_frame_equal(
        df[["v", "x"]].join(pd.from_pandas(r, 2), how=how, suffixes=("", "_r")).to_pandas(),
        p[["v", "x"]].join(r, how=how, suffixes=("", "_r")),
    )


def test_merge_and_sort_of_empty_frames() -> None:
    p = random_frame(0, 0)
    df = pd.from_pandas(p, 3)
    r = right_frame(0, 4)
    for how in ("inner", "left", "right", "outer"):
        tm.assert_frame_equal(
            df.merge(pd.from_pandas(r), on="k", how=how).to_pandas(), p.merge(r, on="k", how=how)
        )
    tm.assert_frame_equal(df.sort_values(["k", "x"]).to_pandas(), p.sort_values(["k", "x"]))
    tm.assert_frame_equal(df.describe().to_pandas(), p.describe())


def test_shuffled_keys_meet_across_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge_module, "BROADCAST_ROWS", -1)
    left = pandas.DataFrame({"k": [0.0, -0.0, 1.0, np.nan, 2.5], "a": range(5)})
    right = pandas.DataFrame({"k": [0, 1, 2, 0], "b": range(4)})
    for how in ("inner", "outer"):
        tm.assert_frame_equal(
            pd.from_pandas(left, 3).merge(pd.from_pandas(right, 2), on="k", how=how).to_pandas(),
            left.merge(right, on="k", how=how),
        )


def test_merge_errors_are_pandas_errors() -> None:
    a = pd.DataFrame({"k": [1, 2], "v": [3, 4]})
    with pytest.raises(KeyError):
        a.merge(pd.DataFrame({"j": [1]}), on="k")
    with pytest.raises(pandas.errors.MergeError):
        a.merge(pd.DataFrame({"k": [1, 1]}), on="k", validate="one_to_one")


@pytest.mark.parametrize(
    "by,kw",
    [
        ("x", {}),
        ("s", {"ascending": False}),
        (["k", "x"], {"ascending": [True, False]}),
        (["s", "v"], {"na_position": "first"}),
        ("t", {"ignore_index": True}),
        ("c", {}),
        (["b", "v"], {}),
    ],
)
def test_sort_values(frames: tuple, by: object, kw: dict) -> None:
    df, p = frames
    tm.assert_frame_equal(
        df.sort_values(by, **kw).to_pandas(), p.sort_values(by, kind="stable", **kw)
    )


def test_series_sort_and_inplace(frames: tuple) -> None:
    df, p = frames
    tm.assert_series_equal(
        df.x.sort_values(ascending=False).to_pandas(),
        p.x.sort_values(ascending=False, kind="stable"),
    )
    tm.assert_series_equal(
        df.s.sort_values(na_position="first").to_pandas(),
        p.s.sort_values(na_position="first", kind="stable"),
    )
    d2, p2 = df.copy(), p.copy()
    assert d2.sort_values("v", inplace=True) is None
    p2.sort_values("v", inplace=True, kind="stable")
    tm.assert_frame_equal(d2.to_pandas(), p2)


def test_describe(frames: tuple) -> None:
    df, p = frames
    tm.assert_frame_equal(df.describe().to_pandas(), p.describe())
    tm.assert_frame_equal(df.describe(include="all").to_pandas(), p.describe(include="all"))
    tm.assert_frame_equal(
        df.describe(percentiles=[0.1, 0.9]).to_pandas(), p.describe(percentiles=[0.1, 0.9])
    )
    tm.assert_series_equal(df.s.describe().to_pandas(), p.s.describe())
    tm.assert_series_equal(df.x.describe().to_pandas(), p.x.describe())
