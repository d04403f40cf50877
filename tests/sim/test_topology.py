"""Tests for topology builders, edge validation and deterministic routes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sim.topology import (
    STAR_SWITCH,
    Routes,
    TopologyError,
    fat_tree,
    from_edges,
    star,
    two_tier,
)

REPO = Path(__file__).resolve().parents[2]


def test_star_shape_and_route() -> None:
    graph = star(4, 25e-6, 1.25e9)
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 4
    assert graph.edges[3, STAR_SWITCH] == {"latency_s": 25e-6, "bandwidth_Bps": 1.25e9}
    routes = Routes(graph)
    assert routes.n == 4 and routes.num_links == 8
    links, latency = routes.route(0, 3)
    assert links == (routes.link_id(0, STAR_SWITCH), routes.link_id(STAR_SWITCH, 3))
    assert latency == pytest.approx(50e-6)
    assert routes.route(2, 2) == ((), 0.0)
    assert routes.path(1, 2) == [1, STAR_SWITCH, 2]


def test_link_ids_are_directed_and_canonical() -> None:
    routes = Routes(star(3, 1e-6, 1e9))
    # Canonical edges sorted ints first: (0, switch), (1, switch), (2, switch).
    assert routes.edge_id(STAR_SWITCH, 1) == routes.edge_id(1, STAR_SWITCH) == 1
    assert routes.link_id(1, STAR_SWITCH) == 2 and routes.link_id(STAR_SWITCH, 1) == 3
    assert routes.links[3] == (STAR_SWITCH, 1)
    there, _ = routes.route(0, 1)
    back, _ = routes.route(1, 0)
    assert set(there).isdisjoint(back)  # full duplex: opposite directions never share
    with pytest.raises(KeyError):
        routes.edge_id(0, 1)
    with pytest.raises(KeyError):
        routes.route(0, 3)


def test_routes_are_cached_per_pair() -> None:
    routes = Routes(star(3, 1e-6, 1e9))
    first = routes.route(0, 2)
    assert routes.route(0, 2) is first


def test_two_tier_shape_and_uplink_bandwidth() -> None:
    graph = two_tier(10, 4, 1e-6, 1e9, 5e-6, 2.0)
    tors = sorted(node for node in graph if isinstance(node, str) and node.startswith("tor"))
    assert tors == ["tor0", "tor1", "tor2"]
    assert graph.edges["tor0", "spine"]["bandwidth_Bps"] == pytest.approx(2e9)
    assert graph.edges["tor0", "spine"]["latency_s"] == 5e-6
    assert graph.has_edge(9, "tor2") and graph.has_edge(4, "tor1")
    routes = Routes(graph)
    assert routes.path(0, 5) == [0, "tor0", "spine", "tor1", 5]
    assert routes.path(0, 3) == [0, "tor0", 3]
    assert routes.route(0, 5)[1] == pytest.approx(12e-6)


def test_fat_tree_k4_shape() -> None:
    graph = fat_tree(4, 1e-6, 1e9)
    hosts = [node for node in graph if isinstance(node, int)]
    switches = [node for node in graph if isinstance(node, str)]
    assert sorted(hosts) == list(range(16))
    assert len(switches) == 4 + 8 + 8  # cores, aggregation, edge
    assert graph.number_of_edges() == 48  # 16 host links + 16 edge-agg + 16 agg-core
    assert all(graph.degree(s) == 4 for s in switches)
    routes = Routes(graph)
    assert len(routes.path(0, 1)) == 3  # same edge switch
    assert len(routes.path(0, 2)) == 5  # same pod
    assert len(routes.path(0, 15)) == 7  # across pods
    assert routes.route(0, 15)[1] == pytest.approx(6e-6)


def test_fat_tree_keeps_first_n_hosts_and_rejects_bad_k() -> None:
    graph = fat_tree(4, 1e-6, 1e9, n=10)
    assert sorted(node for node in graph if isinstance(node, int)) == list(range(10))
    assert Routes(graph).n == 10
    with pytest.raises(TopologyError, match="even k"):
        fat_tree(3, 1e-6, 1e9)
    with pytest.raises(TopologyError, match="16 hosts"):
        fat_tree(4, 1e-6, 1e9, n=17)


def test_from_edges_builds_graph_in_bytes_and_seconds() -> None:
    graph = from_edges(
        2,
        [
            {"a": 0, "b": "sw", "latency_us": 5, "bandwidth_gbps": 8},
            {"a": "sw", "b": 1, "latency_us": 7.5, "bandwidth_gbps": 16},
        ],
    )
    assert graph.edges[0, "sw"] == {"latency_s": 5e-6, "bandwidth_Bps": 1e9}
    assert Routes(graph).route(0, 1)[1] == pytest.approx(12.5e-6)


def _edge(a: object, b: object, lat: object = 1, bw: object = 10) -> dict[str, object]:
    """An edge description for from_edges."""
    return {"a": a, "b": b, "latency_us": lat, "bandwidth_gbps": bw}


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        (
            [_edge(0, "s"), {"a": 1, "b": "s", "latency_us": 1}],
            r"edge #1 .*missing keys \['bandwidth_gbps'\]",
        ),
        ([_edge(0, "s"), {**_edge(1, "s"), "color": "red"}], r"edge #1 .*unknown keys \['color'\]"),
        ([_edge(0, "s"), _edge(2, "s")], r"edge #1 .*compute node a=2 is outside 0\.\.1"),
        (
            [_edge(0, "s"), _edge(1, 2.5)],
            r"edge #1 .*'b' must be a compute node \(int\) or a switch",
        ),
        ([_edge(0, "s"), _edge(True, "s")], r"edge #1 .*'a' must be"),
        ([_edge(0, "s"), _edge("s", "s")], r"edge #1 .*self-loop on 's'"),
        ([_edge(0, "s"), _edge("s", 0)], r"edge #1 .*duplicate edge 's'-0"),
        (
            [_edge(0, "s"), _edge(1, "s", lat=-1)],
            r"edge #1 .*'latency_us' must be a finite number >= 0",
        ),
        (
            [_edge(0, "s"), _edge(1, "s", bw=0)],
            r"edge #1 .*'bandwidth_gbps' must be a finite number > 0",
        ),
        ([_edge(0, "s"), _edge(1, "s", bw="fast")], r"edge #1 .*'bandwidth_gbps'"),
        ([_edge(0, "s"), "0-s"], r"edge #1 '0-s': expected a mapping"),
        ([_edge(0, "s")], r"compute nodes without any edge: \[1\]"),
        ([_edge(0, "s"), _edge(1, "t")], r"not connected to node 0: \[1\]"),
    ],
)
def test_from_edges_errors_name_the_offending_edge(edges: list, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        from_edges(2, edges)


def test_equal_cost_paths_spread_by_destination_not_by_order() -> None:
    # Two equal-latency switches between nodes 0 and 1..4; D-mod-k picks by destination.
    edges = [_edge(0, "x")] + [_edge(0, "y")]
    edges += [_edge(d, s) for d in range(1, 5) for s in ("x", "y")]
    routes = Routes(from_edges(5, edges))
    assert [routes.path(0, d)[1] for d in range(1, 5)] == ["y", "x", "y", "x"]
    # Reversed edge list: identical routes.
    again = Routes(from_edges(5, list(reversed(edges))))
    assert [again.route(0, d) for d in range(1, 5)] == [routes.route(0, d) for d in range(1, 5)]
    # A lower-latency path wins over the spread; equal latency prefers fewer hops.
    edges[0] = _edge(0, "x", lat=0.5)
    assert Routes(from_edges(5, edges)).path(0, 2)[1] == "x"


_HASHSEED_SCRIPT = textwrap.dedent(
    """
    from sim.topology import Routes, from_edges
    switches = {f"sw-{name}" for name in ("alpha", "beta", "gamma", "delta", "eps", "zeta")}
    edges = []
    for s in switches:  # set order depends on PYTHONHASHSEED
        for node in range(8):
            edges.append({"a": node, "b": s, "latency_us": 2, "bandwidth_gbps": 10})
    routes = Routes(from_edges(8, edges))
    print(list(switches))
    print([routes.route(a, b) for a in range(8) for b in range(8)])
    print([routes.path(a, b) for a in range(8) for b in range(8)])
    """
)


def test_routes_identical_across_hash_seeds() -> None:
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-c", _HASHSEED_SCRIPT],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(result.stdout.splitlines())
    assert outputs[0][0] != outputs[1][0], "the seeds should give different set orders"
    assert outputs[0][1:] == outputs[1][1:]
