"""Tune trials' resources: placement-group factories that can never be placed, reuse settings."""

from __future__ import annotations

from typing import Any

import pytest

import runtime as ray
from runtime import tune


@pytest.fixture(scope="module")
def cluster():
    """A runtime with two CPUs on one node."""
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


def _noop(config: dict[str, Any]) -> None:
    tune.report({"x": 1})


@pytest.mark.parametrize(
    "factory, message",
    [
        (tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD"), "2 nodes"),
        (tune.PlacementGroupFactory([{"CPU": 3}]), "cluster has only"),
        (tune.PlacementGroupFactory([{"CPU": 1}, {"GPU": 1}]), "could never start"),
    ],
)
def test_unplaceable_factories_fail_at_fit(cluster, tmp_path, factory, message):
    with pytest.raises(tune.InfeasibleTrialError, match=message):
        tune.Tuner(
            tune.with_resources(_noop, factory),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        ).fit()


def test_bad_factories_and_settings_are_refused():
    with pytest.raises(tune.TuneError, match="strategy"):
        tune.PlacementGroupFactory([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(tune.TuneError, match="bundle 0"):
        tune.PlacementGroupFactory([{"CPU": -1}])
    with pytest.raises(tune.TuneError, match="reuse_actors"):
        tune.TuneConfig(reuse_actors="yes")
    with pytest.raises(tune.TuneError, match="tune.Callback"):
        tune.RunConfig(callbacks=[print])


def test_a_callback_that_raises_ends_the_experiment(cluster, tmp_path):
    class Broken(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        tune.Tuner(
            _noop,
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0, callbacks=[Broken()]),
        ).fit()
