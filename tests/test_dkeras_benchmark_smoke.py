"""Smoke test of the dKeras inference benchmark: a tiny run prints and writes positive rates."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported (the `ml` extra's)
pytest.importorskip("keras")

from benchmarks import dkeras_inference  # noqa: E402


@pytest.mark.timeout(600)  # keras imported in the replica: minutes on a loaded machine
def test_smoke_run_reports_a_rate_per_replica_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dkeras.json"
    assert dkeras_inference.main(["--smoke", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["figures"]
    rates = [figures["in_process"], *figures["replicas"].values()]
    assert list(figures["replicas"]) == ["1"]
    assert all(math.isfinite(r) and r > 0 for r in rates)
    table = capsys.readouterr().out
    assert "in-process" in table and "dKeras, 1 replica(s) x 1 thread(s)" in table


def test_bad_flags_are_refused() -> None:
    with pytest.raises(SystemExit):
        dkeras_inference.main(["--replicas", "0"])
    with pytest.raises(SystemExit):
        dkeras_inference.main(["--replicas", "two"])
