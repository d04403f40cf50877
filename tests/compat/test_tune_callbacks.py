"""tune.Callback hooks: a program that must see the same events under twinray and Ray Tune 2.60."""

from __future__ import annotations

import importlib
import os
import tempfile
from collections import defaultdict
from types import ModuleType
from typing import Any

import pytest


def _reporting(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "i")) as f:
            start = int(f.read())
    for i in range(start, 3):
        if config["x"] == 2 and i == 1:
            raise RuntimeError("x=2 fails at its second iteration")
        directory = tempfile.mkdtemp()
        with open(os.path.join(directory, "i"), "w") as f:
            f.write(str(i + 1))
        tune.report(
            {"score": config["x"] * 10 + i}, checkpoint=tune.Checkpoint.from_directory(directory)
        )


def _recorder(tune: Any) -> Any:
    class Recorder(tune.Callback):
        def __init__(self) -> None:
            self.setups: list[dict[str, Any]] = []
            self.steps = 0
            self.events: dict[int, list[Any]] = defaultdict(list)
            self.ended: list[int] = []

        def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
            self.setups.append({"num_samples": num_samples, "total": total_num_samples})

        def on_step_begin(self, iteration, trials, **info):
            self.steps += 1

        def on_trial_start(self, iteration, trials, trial, **info):
            self.events[trial.config["x"]].append("start")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.events[trial.config["x"]].append(("result", result["training_iteration"]))

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            with open(os.path.join(checkpoint.path, "i")) as f:
                self.events[trial.config["x"]].append(("checkpoint", int(f.read())))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.events[trial.config["x"]].append("complete")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.events[trial.config["x"]].append("recover")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.events[trial.config["x"]].append("error")

        def on_experiment_end(self, trials, **info):
            self.ended.append(len(trials))

    return Recorder()


def test_callbacks_see_each_trials_events_in_rays_order(
    ray_started: ModuleType, tmp_path: Any
) -> None:
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    recorder = _recorder(tune)
    grid = tune.Tuner(
        _reporting,
        param_space={"x": tune.grid_search([1, 2]), "tune": tune.__name__},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(
            name="callbacks",
            storage_path=str(tmp_path),
            verbose=0,
            callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    ).fit()
    assert grid.num_errors == 1
    assert recorder.setups == [{"num_samples": 1, "total": 2}]
    assert recorder.ended == [2] and recorder.steps > 0
    steps = [e for i in (1, 2, 3) for e in (("result", i), ("checkpoint", i))]
    assert recorder.events[1] == ["start", *steps, "complete"]
    # x=2 reports once, fails, is retried from its checkpoint, fails again: ERROR
    first = [("result", 1), ("checkpoint", 1)]
    assert recorder.events[2] == ["start", *first, "recover", "start", "error"]


def test_a_callback_that_is_not_one_is_refused(ray: ModuleType) -> None:
    tune = importlib.import_module(ray.__name__ + ".tune")
    # twinray refuses it in RunConfig (a TuneError, a ValueError); Ray fails calling its hooks
    with pytest.raises((ValueError, TypeError, AttributeError)):
        tune.Tuner(_reporting, run_config=tune.RunConfig(callbacks=[object()])).fit()
