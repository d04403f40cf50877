"""OptunaSearch in a Tuner: a program that must behave the same under twinray and Ray Tune 2.60."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest


def _quadratic(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    tune.report({"loss": (config["x"] - 1.5) ** 2 + (config["y"] + 0.5) ** 2})


def test_optuna_search_in_a_tuner_with_a_concurrency_limiter(
    ray_started: ModuleType, tmp_path: Any
) -> None:
    pytest.importorskip("optuna", reason="optuna not installed (the tune extra)")
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    search = importlib.import_module(ray_started.__name__ + ".tune.search")
    optuna_search = importlib.import_module(ray_started.__name__ + ".tune.search.optuna")
    searcher = search.ConcurrencyLimiter(
        optuna_search.OptunaSearch(points_to_evaluate=[{"x": 0.0, "y": 0.0}], seed=7),
        max_concurrent=2,
    )
    grid = tune.Tuner(
        _quadratic,
        param_space={"x": tune.uniform(-4, 4), "y": tune.uniform(-4, 4), "tune": tune.__name__},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=6, search_alg=searcher),
        run_config=tune.RunConfig(name="optuna", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 6 and grid.num_errors == 0
    configs = [r.config for r in grid]
    assert {"x": 0.0, "y": 0.0} in [{"x": c["x"], "y": c["y"]} for c in configs]  # tried first
    assert all(
        -4 <= c["x"] <= 4 and -4 <= c["y"] <= 4 and c["tune"] == tune.__name__ for c in configs
    )
    best = grid.get_best_result()
    assert best.metrics["loss"] <= 2.5  # the start point (loss 2.5) was tried
    assert len({(c["x"], c["y"]) for c in configs}) == 6


def test_optuna_search_with_its_own_space(ray_started: ModuleType, tmp_path: Any) -> None:
    optuna = pytest.importorskip("optuna", reason="optuna not installed (the tune extra)")
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    optuna_search = importlib.import_module(ray_started.__name__ + ".tune.search.optuna")
    space = {
        "x": optuna.distributions.FloatDistribution(-4, 4),
        "y": optuna.distributions.FloatDistribution(-4, 4),
    }
    grid = tune.Tuner(
        _quadratic,
        param_space={"tune": tune.__name__},
        tune_config=tune.TuneConfig(
            num_samples=4,
            search_alg=optuna_search.OptunaSearch(space, metric="loss", mode="min", seed=3),
        ),
        run_config=tune.RunConfig(name="optuna_own", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 4 and grid.num_errors == 0
    assert grid.get_best_result(metric="loss", mode="min").metrics["loss"] >= 0
    with pytest.raises((ValueError, RuntimeError)):  # a space twice: Ray refuses, so do we
        tune.Tuner(
            _quadratic,
            param_space={"x": tune.uniform(0, 1), "tune": tune.__name__},
            tune_config=tune.TuneConfig(
                num_samples=2,
                search_alg=optuna_search.OptunaSearch(space, metric="loss", mode="min"),
            ),
            run_config=tune.RunConfig(name="optuna_twice", storage_path=str(tmp_path), verbose=0),
        ).fit()
