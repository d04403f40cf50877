"""Fixtures for runtime.dataframe tests: one runtime per module, random frames from a seed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

pandas = pytest.importorskip("pandas")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """A 2-CPU runtime for the module's tests, shut down after them."""
    import runtime

    runtime.init(num_cpus=2)
    yield
    runtime.shutdown()
    from runtime.dataframe import NPartitions

    NPartitions.put(None)


def random_frame(seed: int, rows: int) -> pandas.DataFrame:
    """Ints, floats with NaN, strings with missing values, bools, datetimes, a categorical."""
    rng = np.random.default_rng(seed)
    words = np.array(["ant", "bee", "cat", "dog", "eel"], dtype=object)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.2] = np.nan
    s = words[rng.integers(0, len(words), rows)]
    s[rng.random(rows) < 0.15] = None
    return pandas.DataFrame(
        {
            "k": rng.integers(0, 4, rows),
            "x": x,
            "s": pandas.Series(s, dtype="str"),
            "b": rng.random(rows) < 0.5,
            "t": pandas.Timestamp("2024-01-01")
            + pandas.to_timedelta(rng.integers(0, 1000, rows), unit="h"),
            "c": pandas.Categorical(
                rng.choice(["lo", "mid", "hi"], rows), categories=["lo", "mid", "hi"]
            ),
            "v": rng.integers(-50, 50, rows),
        }
    )


# (seed, rows, partitions): empty, one row, more partitions than rows, a few partitions
CASES = [(0, 0, 3), (1, 1, 4), (2, 5, 8), (3, 60, 3), (4, 200, 5)]
CASE_IDS = [f"rows{r}-parts{p}" for _, r, p in CASES]
