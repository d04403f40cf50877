"""Tune programs that must behave the same under twinray (`runtime.tune`) and Ray Tune 2.60."""

from __future__ import annotations

import importlib
import json
import os
from types import ModuleType
from typing import Any

import pytest


def _tune(ray: ModuleType) -> Any:
    return importlib.import_module(ray.__name__ + ".tune")


def _run_config(tune: Any, tmp_path: Any, name: str, **kwargs: Any) -> Any:
    return tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0, **kwargs)


def _quadratic(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    for step in range(3):
        tune.report({"loss": (config["x"] - 2) ** 2 + step, "step": step})


def test_grid_search_best_result_and_files(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    grid = tune.Tuner(
        _quadratic,
        param_space={"x": tune.grid_search([0, 1, 2, 3]), "tune": tune.__name__},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=_run_config(tune, tmp_path, "grid"),
    ).fit()
    assert len(grid) == 4
    assert grid.num_errors == 0 and grid.num_terminated == 4
    best = grid.get_best_result()
    assert best.config["x"] == 2
    assert best.metrics["loss"] == 2 and best.metrics["training_iteration"] == 3
    assert sorted(r.config["x"] for r in grid) == [0, 1, 2, 3]
    worst = grid.get_best_result(metric="loss", mode="max")
    assert worst.config["x"] == 0
    assert grid.get_best_result(metric="loss", mode="min", scope="all").config["x"] == 2
    frame = grid.get_dataframe()
    assert {"loss", "config/x", "logdir", "training_iteration"} <= set(frame.columns)
    assert sorted(frame["config/x"]) == [0, 1, 2, 3]
    for result in grid:
        files = set(os.listdir(result.path))
        assert {"params.json", "result.json", "progress.csv"} <= files
        with open(os.path.join(result.path, "result.json")) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        assert [line["training_iteration"] for line in lines] == [1, 2, 3]
        with open(os.path.join(result.path, "params.json")) as f:
            assert json.load(f)["x"] == result.config["x"]
        assert len(result.metrics_dataframe) == 3


def _fails_on_x1(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    tune.report({"acc": config["x"]})
    if config["x"] == 1:
        raise RuntimeError("trial x=1 broke")
    tune.report({"acc": config["x"] + 1})


def test_raising_trial_errors_others_finish(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    grid = tune.Tuner(
        _fails_on_x1,
        param_space={"x": tune.grid_search([0, 1, 2]), "tune": tune.__name__},
        run_config=_run_config(tune, tmp_path, "errors"),
    ).fit()
    assert len(grid) == 3
    assert grid.num_errors == 1 and grid.num_terminated == 2
    failed = next(r for r in grid if r.config["x"] == 1)
    assert isinstance(failed.error, RuntimeError)
    assert "trial x=1 broke" in str(failed.error)
    assert failed.metrics["acc"] == 1
    assert os.path.exists(os.path.join(failed.path, "error.txt"))
    with open(os.path.join(failed.path, "error.txt")) as f:
        assert "trial x=1 broke" in f.read()
    for result in grid:
        if result.config["x"] != 1:
            assert result.error is None and result.metrics["acc"] == result.config["x"] + 1
    assert len(grid.errors) == 1
    assert grid.get_best_result(metric="acc", mode="max").config["x"] == 2


def _checkpointing(config: dict[str, Any]) -> None:
    import tempfile

    tune = importlib.import_module(config["tune"])
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory, open(os.path.join(directory, "step.txt")) as f:
            start = int(f.read()) + 1
    for step in range(start, 4):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "step.txt"), "w") as f:
                f.write(str(step))
            tune.report(
                {"step": step, "start": start}, checkpoint=tune.Checkpoint.from_directory(tmp)
            )
        marker = os.path.join(config["dir"], "failed_once")
        if step == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError("first attempt dies after step 1")


def test_max_failures_resumes_from_checkpoint(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    grid = tune.Tuner(
        _checkpointing,
        param_space={"tune": tune.__name__, "dir": str(tmp_path)},
        run_config=_run_config(
            tune, tmp_path, "retry", failure_config=tune.FailureConfig(max_failures=1)
        ),
    ).fit()
    result = grid[0]
    assert result.error is None
    assert result.metrics["step"] == 3
    assert result.metrics["start"] == 2  # resumed after the checkpoint of step 1
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as d, open(os.path.join(d, "step.txt")) as f:
        assert f.read() == "3"
    copy = result.checkpoint.to_directory(str(tmp_path / "copy"))
    assert os.path.exists(os.path.join(copy, "step.txt"))


def test_max_failures_exhausted_is_error(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)

    def always_fails(config: dict[str, Any]) -> None:
        raise KeyError("always")

    grid = tune.Tuner(
        always_fails,
        run_config=_run_config(
            tune, tmp_path, "fails", failure_config=tune.FailureConfig(max_failures=2)
        ),
    ).fit()
    assert isinstance(grid[0].error, KeyError)
    with open(os.path.join(grid[0].path, "error.txt")) as f:
        assert f.read().count("Failure # ") == 3


def _make_counter(tune: Any) -> type:
    class Counter(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.count = config["start"]

        def step(self) -> dict[str, Any]:
            self.count += 1
            return {"count": self.count}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, "count"), "w") as f:
                f.write(str(self.count))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, "count")) as f:
                self.count = int(f.read())

    return Counter


def test_class_trainable_checkpoint_at_end(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    grid = tune.Tuner(
        _make_counter(tune),
        param_space={"start": tune.grid_search([10, 20])},
        tune_config=tune.TuneConfig(metric="count", mode="max"),
        run_config=_run_config(
            tune,
            tmp_path,
            "counter",
            stop={"training_iteration": 3},
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
        ),
    ).fit()
    best = grid.get_best_result()
    assert best.config["start"] == 20 and best.metrics["count"] == 23
    assert best.metrics["training_iteration"] == 3
    assert best.checkpoint is not None
    with best.checkpoint.as_directory() as d, open(os.path.join(d, "count")) as f:
        assert f.read() == "23"


def test_stop_callable_and_stopper(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    counter = _make_counter(tune)

    def stop_at_12(trial_id: str, result: dict[str, Any]) -> bool:
        return result["count"] >= 12

    grid = tune.Tuner(
        counter,
        param_space={"start": 10},
        run_config=_run_config(tune, tmp_path, "fn_stop", stop=stop_at_12),
    ).fit()
    assert grid[0].metrics["count"] == 12

    class StopAtFour(tune.stopper.Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return result["training_iteration"] >= 4

        def stop_all(self) -> bool:
            return False

    grid = tune.Tuner(
        counter,
        param_space={"start": 0},
        run_config=_run_config(tune, tmp_path, "cls_stop", stop=StopAtFour()),
    ).fit()
    assert grid[0].metrics["count"] == 4


def test_metric_never_reported_raises(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)
    with pytest.raises(tune.TuneError, match="loss_typo"):
        tune.Tuner(
            _quadratic,
            param_space={"x": 1, "tune": tune.__name__},
            tune_config=tune.TuneConfig(metric="loss_typo", mode="min"),
            run_config=_run_config(tune, tmp_path, "typo"),
        ).fit()


def test_bad_mode_is_value_error(ray: ModuleType) -> None:
    tune = _tune(ray)
    with pytest.raises(ValueError, match="mode"):
        tune.Tuner(_quadratic, tune_config=tune.TuneConfig(metric="loss", mode="avg")).fit()


def test_old_api_run(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = _tune(ray_started)

    def trainable(config: dict[str, Any]) -> None:
        tune_mod = importlib.import_module(config["tune"])
        for i in range(2):
            tune_mod.report({"score": config["a"] * 10 + i})

    analysis = tune.run(
        trainable,
        config={"a": tune.grid_search([1, 3, 2]), "tune": tune.__name__},
        metric="score",
        mode="max",
        storage_path=str(tmp_path),
        name="old",
        verbose=0,
        resources_per_trial={"cpu": 1},
    )
    assert analysis.best_config["a"] == 3
    assert analysis.get_best_config(metric="score", mode="min")["a"] == 1
    assert len(analysis.trials) == 3
    frame = analysis.dataframe()
    assert sorted(frame["score"]) == [11, 21, 31]
    frames = analysis.trial_dataframes
    assert len(frames) == 3 and all(len(df) == 2 for df in frames.values())
    assert analysis.best_trial.last_result["score"] == 31
