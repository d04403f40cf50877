"""Smoke test of benchmarks/ppo_cartpole.py: a short run to a low target reports its figures."""

from __future__ import annotations

import pytest

from benchmarks import ppo_cartpole


@pytest.mark.timeout(240)
def test_short_run_reports_steps_and_wall_time(capsys: pytest.CaptureFixture[str]) -> None:
    code = ppo_cartpole.main(["--target", "25", "--max-steps", "40000", "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "reached mean return 25" in out and "env steps" in out
    figures = ppo_cartpole.run(target=1e9, max_steps=2000, seed=0, max_seconds=200)
    assert figures["reached"] is False and figures["env_steps"] == 2000
    assert figures["wall_s"] > 0 and figures["iterations"] == 1
