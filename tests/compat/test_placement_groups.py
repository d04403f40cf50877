"""Placement groups and scheduling strategies: the same programs under twinray and Ray (one node)."""

from __future__ import annotations

import importlib
import time
from types import ModuleType

import pytest

PATIENCE = 60.0
"""Seconds a test waits for something that should happen (a loaded machine is slow)."""


def strategies(ray: ModuleType) -> ModuleType:
    """`<ray>.util.scheduling_strategies` of the implementation under test."""
    return importlib.import_module(f"{ray.__name__}.util.scheduling_strategies")


def _until(predicate, timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_packing_strategies_fit_on_one_node_and_reserve(ray_started) -> None:
    ray = ray_started
    from_util = ray.util.placement_group
    for strategy in ("PACK", "STRICT_PACK", "SPREAD"):
        pg = from_util([{"CPU": 0.5}, {"CPU": 0.5}], strategy=strategy)
        assert pg.wait(PATIENCE) is True
        assert ray.get(pg.ready(), timeout=PATIENCE) == pg
        assert pg.bundle_specs == [{"CPU": 0.5}, {"CPU": 0.5}]
        assert pg.bundle_count == 2
        table = ray.util.placement_group_table(pg)
        assert table["state"] == "CREATED" and table["strategy"] == strategy
        assert table["bundles"] == {0: {"CPU": 0.5}, 1: {"CPU": 0.5}}
        node = ray.get_runtime_context().get_node_id()
        assert table["bundles_to_node_id"] == {0: node, 1: node}
        # the reservation shows in the available resources, under Ray's names
        wildcard, first = f"CPU_group_{pg.id.hex()}", f"CPU_group_0_{pg.id.hex()}"
        assert _until(lambda: ray.available_resources().get("CPU") == 1.0)
        assert _until(lambda name=wildcard: name in ray.available_resources())
        assert ray.available_resources()[first] == 0.5
        assert ray.cluster_resources()[wildcard] == 1.0
        ray.util.remove_placement_group(pg)
        assert _until(lambda: ray.available_resources().get("CPU") == 2.0)
        assert ray.util.placement_group_table(pg)["state"] == "REMOVED"


def test_strict_spread_is_infeasible_on_one_node(ray_started) -> None:
    ray = ray_started
    pg = ray.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(1) is False
    ready, not_ready = ray.wait([pg.ready()], timeout=0.5)
    assert ready == [] and len(not_ready) == 1
    assert ray.util.placement_group_table(pg)["state"] == "PENDING"
    ray.util.remove_placement_group(pg)
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(pg.ready(), timeout=PATIENCE)


def test_tasks_and_actors_in_bundles(ray_started) -> None:
    ray = ray_started
    S = strategies(ray).PlacementGroupSchedulingStrategy
    pg = ray.util.placement_group([{"CPU": 1}, {"CPU": 0.5}], name="compat-pg")
    assert pg.wait(PATIENCE)
    assert ray.util.get_placement_group("compat-pg") == pg
    with pytest.raises(ValueError):
        ray.util.get_placement_group("no-such-group")
    with pytest.raises(ray.exceptions.RaySystemError, match="already exists"):
        ray.util.placement_group([{"CPU": 0.5}], name="compat-pg")

    @ray.remote
    def where():
        return ray.util.get_current_placement_group()

    assert ray.get(where.options(scheduling_strategy=S(pg)).remote(), timeout=PATIENCE) == pg
    assert ray.get(where.options(num_cpus=0.5).remote(), timeout=PATIENCE) is None
    assert ray.util.get_current_placement_group() is None
    # a request no bundle can hold, or a bundle that does not exist: ValueError at once
    with pytest.raises(ValueError):
        where.options(num_cpus=2, scheduling_strategy=S(pg)).remote()
    with pytest.raises(ValueError):
        where.options(scheduling_strategy=S(pg, placement_group_bundle_index=5)).remote()

    @ray.remote(num_cpus=1)
    class Pinger:
        def ping(self):
            return "pong"

        def group(self):
            return ray.util.get_current_placement_group().id.hex()

    actor = Pinger.options(scheduling_strategy=S(pg, 0)).remote()
    assert ray.get(actor.ping.remote(), timeout=PATIENCE) == "pong"
    assert ray.get(actor.group.remote(), timeout=PATIENCE) == pg.id.hex()

    @ray.remote(num_cpus=1)
    def stuck():
        time.sleep(300)

    queued = stuck.options(scheduling_strategy=S(pg, 0)).remote()  # bundle 0 is the actor's
    time.sleep(0.2)
    ray.util.remove_placement_group(pg)
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(queued, timeout=PATIENCE)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.ping.remote(), timeout=PATIENCE)
    assert _until(lambda: ray.available_resources().get("CPU") == 2.0)


def test_child_tasks_are_captured(ray_started) -> None:
    ray = ray_started
    S = strategies(ray).PlacementGroupSchedulingStrategy
    pg = ray.util.placement_group([{"CPU": 1}])
    assert pg.wait(PATIENCE)

    @ray.remote(num_cpus=1)
    def child():
        current = ray.util.get_current_placement_group()
        return None if current is None else current.id.hex()

    @ray.remote(num_cpus=0)
    def parent():
        return ray.get(child.remote())

    captured = parent.options(scheduling_strategy=S(pg, placement_group_capture_child_tasks=True))
    assert ray.get(captured.remote(), timeout=PATIENCE) == pg.id.hex()
    plain = parent.options(scheduling_strategy=S(pg))
    assert ray.get(plain.remote(), timeout=PATIENCE) is None


def test_spread_node_affinity_and_bad_input(ray_started) -> None:
    ray = ray_started
    strat = strategies(ray)

    @ray.remote
    def node():
        return ray.get_runtime_context().get_node_id()

    @ray.remote(scheduling_strategy="SPREAD")
    def spread_node():
        return ray.get_runtime_context().get_node_id()

    here = ray.get_runtime_context().get_node_id()
    assert ray.get(spread_node.remote(), timeout=PATIENCE) == here
    assert ray.get(node.options(scheduling_strategy="SPREAD").remote(), timeout=PATIENCE) == here
    assert ray.get(node.options(scheduling_strategy="DEFAULT").remote(), timeout=PATIENCE) == here
    hard = strat.NodeAffinitySchedulingStrategy(here, soft=False)
    assert ray.get(node.options(scheduling_strategy=hard).remote(), timeout=PATIENCE) == here
    with pytest.raises(ValueError):
        strat.NodeAffinitySchedulingStrategy("not-hex", soft=False)
    with pytest.raises(ValueError):
        node.options(scheduling_strategy="BOGUS").remote()
    with pytest.raises(ValueError):
        ray.util.placement_group([{"CPU": 1}], strategy="NOPE")
    with pytest.raises(ValueError):
        ray.util.placement_group([])
    with pytest.raises(ValueError):
        ray.util.placement_group([{"CPU": 0}])
    with pytest.raises(ValueError):
        ray.util.placement_group([{"CPU": 1}], lifetime="forever")
