"""The one wiring: address layout, what gets built, and its refusals."""

from __future__ import annotations

import random

import pytest

from runtime.core.cluster import (
    GCS_ADDR,
    GS_ADDR,
    AddressMap,
    NodeCapacity,
    build_control_plane,
)
from runtime.core.config import CoreConfig


def _plane(nodes: int = 3, drivers: int = 2, shards: int = 1):
    caps = [NodeCapacity({"CPU": float(n + 1)}, 1 << 20) for n in range(nodes)]
    return build_control_plane(CoreConfig(), random.Random(0), caps, drivers, gcs_shards=shards)


def test_layout_is_gcs_gs_raylets_owners_then_shards() -> None:
    plane = _plane(nodes=3, drivers=2, shards=3)
    assert plane.gcs.addr == GCS_ADDR and plane.global_scheduler.addr == GS_ADDR
    assert [r.addr for r in plane.raylets] == [2, 3, 4]
    assert [o.addr for o in plane.owners] == [5, 6]
    assert [g.addr for g in plane.shards] == [GCS_ADDR, 7, 8]
    assert plane.addresses.first_free == 9
    assert sorted(plane.components()) == list(range(9))


def test_each_raylet_gets_its_node_capacity_and_owners_their_node() -> None:
    plane = _plane()
    assert [r.node for r in plane.raylets] == [0, 1, 2]
    assert [r.total["CPU"] for r in plane.raylets] == [1.0, 2.0, 3.0]
    assert [(o.node, o.raylet_addr) for o in plane.owners] == [(0, 2), (1, 3)]


def test_bases_keep_a_host_layout_and_extra_parts_follow_the_map() -> None:
    addresses = AddressMap(nodes=2, drivers=2, raylet_base=100, owner_base=1000)
    assert (addresses.raylet(1), addresses.owner(1)) == (101, 1001)
    plane = build_control_plane(
        CoreConfig(),
        random.Random(0),
        [NodeCapacity({"CPU": 1.0}, 1 << 20)] * 2,
        2,
        raylet_base=100,
        owner_base=1000,
    )
    restarted = plane.new_raylet(1, NodeCapacity({"CPU": 4.0}, 1 << 20))
    assert restarted.addr == 101 and restarted.total["CPU"] == 4.0
    nested = plane.new_owner(150, 1, 7)
    assert (nested.addr, nested.raylet_addr, nested.gcs_addr) == (150, 101, GCS_ADDR)


@pytest.mark.parametrize(("drivers", "shards", "match"), [(4, 1, "drivers"), (1, 0, "gcs_shards")])
def test_refuses_an_impossible_wiring(drivers: int, shards: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _plane(nodes=3, drivers=drivers, shards=shards)
