"""Tests for the star topology graph and message delay arithmetic."""

from __future__ import annotations

import math

from sim.network import LOCAL_BANDWIDTH_BPS, SWITCH, Network, build_graph
from sim.scenario import NetworkSpec

SPEC = NetworkSpec(link_latency_us=25, link_bandwidth_gbps=10, local_latency_us=2)


def test_star_graph_shape_and_attributes() -> None:
    graph = build_graph(SPEC, 5)
    assert graph.number_of_nodes() == 6
    assert graph.number_of_edges() == 5
    assert all(graph.has_edge(n, SWITCH) for n in range(5))
    edge = graph.edges[0, SWITCH]
    assert math.isclose(edge["latency_s"], 25e-6)
    assert math.isclose(edge["bandwidth_Bps"], 10e9 / 8)


def test_remote_delay_is_two_links_plus_size_over_bandwidth() -> None:
    net = Network(SPEC, 4)
    assert math.isclose(net.delay(0, 3, 0), 50e-6)
    assert math.isclose(net.delay(0, 3, 1_250_000), 50e-6 + 1_250_000 / 1.25e9)
    assert net.delay(3, 0, 1000) == net.delay(0, 3, 1000)


def test_local_delay_uses_local_latency_and_memory_bandwidth() -> None:
    net = Network(SPEC, 4)
    assert math.isclose(net.delay(2, 2, 0), 2e-6)
    assert math.isclose(net.delay(2, 2, 10_000), 2e-6 + 10_000 / LOCAL_BANDWIDTH_BPS)
    custom = Network(SPEC, 4, local_bandwidth_Bps=1e6)
    assert math.isclose(custom.delay(1, 1, 1000), 2e-6 + 1e-3)


def test_paths_are_cached_lazily_per_source() -> None:
    net = Network(SPEC, 10)
    assert net._paths == {}
    net.delay(0, 1, 10)
    assert set(net._paths) == {(0, d) for d in range(10)}
    net.delay(0, 1, 20)
    net.delay(5, 5, 20)
    assert len(net._paths) == 20
