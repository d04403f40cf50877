"""reuse_actors: a finished trial's actor runs the next trial (Ray Tune 2.60's semantics)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any


def _trainable_classes(tune: Any) -> tuple[type, type]:
    class Resettable(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.resets = 0

        def step(self) -> dict[str, Any]:
            return {"pid": os.getpid(), "resets": self.resets, "k": self.config["k"], "done": True}

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self.resets += 1
            return True

        # Ray 2.60 saved these trials as they ended (save() was called): give it a state
        def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
            return {"resets": self.resets}

        def load_checkpoint(self, checkpoint: Any) -> None:
            pass

    class NotResettable(Resettable):
        def reset_config(self, new_config: dict[str, Any]) -> bool:
            return False

    return Resettable, NotResettable


def _fit(tune: Any, trainable: Any, tmp_path: Any, name: str, reuse: bool) -> Any:
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 2}),  # one trial at a time on 2 CPUs
        param_space={"k": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(reuse_actors=reuse),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    ).fit()


def _report_pid(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    tune.report({"pid": os.getpid(), "k": config["k"]})


def test_class_trials_reuse_one_actor_through_reset_config(
    ray_started: ModuleType, tmp_path: Any
) -> None:
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    resettable, _ = _trainable_classes(tune)
    grid = _fit(tune, resettable, tmp_path, "reuse", True)
    assert grid.num_errors == 0
    by_k = {r.config["k"]: r.metrics for r in grid}
    assert len({m["pid"] for m in by_k.values()}) == 1  # one actor ran all three
    assert sorted(m["resets"] for m in by_k.values()) == [0, 1, 2]
    fresh = _fit(tune, resettable, tmp_path, "fresh", False)
    assert len({r.metrics["pid"] for r in fresh}) == 3
    assert {r.metrics["resets"] for r in fresh} == {0}


def test_a_trainable_that_cannot_reset_fails_the_reusing_trial(
    ray_started: ModuleType, tmp_path: Any
) -> None:
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    _, not_resettable = _trainable_classes(tune)
    grid = _fit(tune, not_resettable, tmp_path, "noreset", True)
    errors = [r for r in grid if r.error is not None]
    # the trial that reuses the first actor fails; the one after gets a fresh actor (which
    # trial comes when is the controller's choice: Ray's order is not the grid's)
    assert len(errors) == 1
    assert all("reset_config" in str(r.error) for r in grid if r.error is not None)


def test_function_trials_reuse_one_actor(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    grid = tune.Tuner(
        tune.with_resources(_report_pid, {"cpu": 2}),
        param_space={"k": tune.grid_search([0, 1, 2]), "tune": tune.__name__},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="fnreuse", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0
    assert sorted(r.metrics["k"] for r in grid) == [0, 1, 2]
    assert len({r.metrics["pid"] for r in grid}) == 1
