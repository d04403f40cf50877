"""Placement groups end to end in real mode: reservations, removal, nested creation, fate sharing."""

from __future__ import annotations

import time

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.util import (
    get_current_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from runtime.util.scheduling_strategies import PlacementGroupSchedulingStrategy

PATIENCE = 60.0


def _until(predicate, timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def node():
    ray.init(num_cpus=2)
    yield _current_node()
    ray.shutdown()


@ray.remote(num_cpus=1)
def hold(seconds):
    time.sleep(seconds)
    return "done"


@ray.remote(num_cpus=0)
def make_group():
    pg = placement_group([{"CPU": 1}], name="nested")
    ray.get(pg.ready(), timeout=PATIENCE)
    return pg.id.hex(), placement_group_table(pg)["state"]


@ray.remote(num_cpus=0)
class Creator:
    def create(self, detached):
        self.pg = placement_group([{"CPU": 0.5}], lifetime="detached" if detached else None)
        return self.pg.wait(PATIENCE)


def test_group_waits_for_busy_resources_then_is_created(node) -> None:
    busy = [hold.remote(1.0) for _ in range(2)]
    time.sleep(0.2)
    pg = placement_group([{"CPU": 2}], strategy="STRICT_PACK")
    assert pg.wait(0.1) is False
    reason = placement_group_table(pg)["stats"]["reason"]
    assert reason.startswith("waiting for resources")
    assert ray.get(busy, timeout=PATIENCE) == ["done", "done"]
    assert pg.wait(PATIENCE) is True
    assert _current_node().raylet.available["CPU"] == 0.0


def test_infeasible_group_explains_itself(node) -> None:
    pg = placement_group([{"CPU": 1}, {"GPU": 1}])
    assert pg.wait(0.2) is False
    table = placement_group_table(pg)
    assert table["state"] == "PENDING"
    assert table["stats"]["scheduling_state"] == "INFEASIBLE"
    assert "bundle 1 {GPU: 1} fits no node" in table["stats"]["reason"]
    remove_placement_group(pg)
    with pytest.raises(ray.RayError, match="does not exist"):
        pg.wait(1)


def test_remove_kills_a_running_task(node) -> None:
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(PATIENCE)
    ref = hold.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(300)
    assert _until(lambda: len(_current_node().raylet.running) == 1)
    remove_placement_group(pg)
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(ref, timeout=PATIENCE)
    assert _until(lambda: ray.available_resources() == {"CPU": 2.0})
    assert ray.get(hold.remote(0), timeout=PATIENCE) == "done"  # the pool still works


def test_a_task_creates_a_group_and_the_driver_sees_it(node) -> None:
    hex_id, state = ray.get(make_group.remote(), timeout=PATIENCE)
    assert state == "CREATED"
    table = placement_group_table()
    assert hex_id in table and table[hex_id]["name"] == "nested"
    assert ray.util.get_placement_group("nested").id.hex() == hex_id
    assert get_current_placement_group() is None


def test_groups_fate_share_with_their_creating_actor(node) -> None:
    for detached in (False, True):
        creator = Creator.remote()
        assert ray.get(creator.create.remote(detached), timeout=PATIENCE)
        table = placement_group_table()
        (row,) = [r for r in table.values() if r["state"] == "CREATED"]
        ray.kill(creator)
        actors = _current_node().gcs.actors
        assert _until(lambda a=creator.actor_id, t=actors: t[a].state == "DEAD")
        expected = "CREATED" if detached else "REMOVED"
        assert placement_group_table()[row["placement_group_id"]]["state"] == expected
        if detached:
            remove_placement_group(ray.util.PlacementGroup(_pg_id(row)))


def _pg_id(row):
    from runtime.util.placement_group import PlacementGroupID

    return PlacementGroupID(int(row["placement_group_id"], 16))


def test_deprecated_placement_group_options(node) -> None:
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(PATIENCE)

    @ray.remote
    def current():
        found = get_current_placement_group()
        return None if found is None else found.id.hex()

    ref = current.options(placement_group=pg, placement_group_bundle_index=0).remote()
    assert ray.get(ref, timeout=PATIENCE) == pg.id.hex()
    with pytest.raises(ValueError, match="deprecated"):
        current.options(
            placement_group=pg, scheduling_strategy=PlacementGroupSchedulingStrategy(pg)
        ).remote()
    with pytest.raises(ValueError, match="bundle index must be -1"):
        current.options(placement_group_bundle_index=0).remote()


def test_a_group_is_visible_to_a_query_queued_in_the_same_step(node) -> None:
    """Regression: a rows query drained in the same loop step as the create read the GCS
    before the create's message was delivered, and said the group did not exist."""
    import threading

    results: list[object] = []

    def create_and_query() -> None:
        pg = placement_group([{"CPU": 1}])
        results.append(placement_group_table(pg)["state"])

    assert node._core_lock.acquire(timeout=PATIENCE)  # hold the loop: both ops queue up
    try:
        thread = threading.Thread(target=create_and_query)
        thread.start()
        assert _until(lambda: len(node._ops) >= 2)
    finally:
        node._core_lock.release()
    node._wake()
    thread.join(PATIENCE)
    assert results and results[0] in ("PENDING", "CREATED")
