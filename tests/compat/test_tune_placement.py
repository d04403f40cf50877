"""tune.PlacementGroupFactory: a trial's trainable runs in bundle 0 of its own placement group."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest


def _in_group(config: dict[str, Any]) -> None:
    ray = importlib.import_module(config["ray"])
    tune = importlib.import_module(config["ray"] + ".tune")
    util = importlib.import_module(config["ray"] + ".util")
    group = util.get_current_placement_group()

    @ray.remote(num_cpus=1)
    def child() -> bool:
        return util.get_current_placement_group() is not None

    tune.report(
        {
            "in_group": group is not None,
            "bundles": [dict(b) for b in group.bundle_specs] if group is not None else None,
            "child_in_group": ray.get(child.remote()),  # captured: runs in bundle 1
        }
    )


def test_trials_get_a_placement_group_each(ray_started: ModuleType, tmp_path: Any) -> None:
    tune = importlib.import_module(ray_started.__name__ + ".tune")
    factory = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}])
    assert factory.required_resources == {"CPU": 2.0} and factory.head_cpus == 1.0
    grid = tune.Tuner(
        tune.with_resources(_in_group, factory),
        param_space={"k": tune.grid_search([0, 1]), "ray": ray_started.__name__},
        run_config=tune.RunConfig(name="pgf", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 2
    for result in grid:
        assert result.metrics["in_group"] and result.metrics["child_in_group"]
        assert result.metrics["bundles"] == [{"CPU": 1.0}, {"CPU": 1.0}]


def test_placement_group_factory_checks_its_bundles(ray: ModuleType) -> None:
    tune = importlib.import_module(ray.__name__ + ".tune")
    with pytest.raises(ValueError):
        tune.PlacementGroupFactory([])
    with pytest.raises(ValueError):
        tune.PlacementGroupFactory([{}])  # an empty head and no worker bundles
    empty_head = tune.PlacementGroupFactory([{}, {"CPU": 2}])
    assert empty_head.head_bundle_is_empty and empty_head.head_cpus == 0
    assert empty_head.required_resources == {"CPU": 2.0}
    assert tune.PlacementGroupFactory([{"CPU": 1}]) == tune.PlacementGroupFactory([{"CPU": 1.0}])
