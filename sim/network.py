"""Network model: a networkx topology and per-message latency + size/bandwidth delays."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from sim.scenario import NetworkSpec

SWITCH = "switch"
"""Graph node name of the single switch of a star topology."""

LOCAL_BANDWIDTH_BPS = 10e9
"""Default memory bandwidth (bytes/s) for messages between components on one node."""


def _star(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """A single switch with one link to each of nodes 0..nodes-1."""
    graph = nx.Graph()
    latency_s = spec.link_latency_us * 1e-6
    bandwidth = spec.link_bandwidth_gbps * 1e9 / 8.0
    graph.add_node(SWITCH)
    for node in range(nodes):
        graph.add_edge(node, SWITCH, latency_s=latency_s, bandwidth_Bps=bandwidth)
    return graph


_TOPOLOGIES: dict[str, Callable[[NetworkSpec, int], nx.Graph]] = {"star": _star}


def build_graph(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """Build the topology graph; edges carry `latency_s` and `bandwidth_Bps` attributes."""
    return _TOPOLOGIES[spec.topology](spec, nodes)


class Network:
    """Delay of a message between two cluster nodes: path latency + size / bottleneck bandwidth.

    Paths are the minimum-latency paths of the topology graph, computed with networkx on
    first use from each source node (one single-source search) and cached per pair. Messages between components on the same
    node cost `local_latency_us` plus size over `local_bandwidth_Bps`.

    Not modelled yet: link sharing. Concurrent transfers on a link do not slow each other
    down, so bandwidth contention (and hence incast) is underestimated.
    """

    __slots__ = ("graph", "_local_latency_s", "_local_inv_bw", "_paths")

    def __init__(
        self, spec: NetworkSpec, nodes: int, local_bandwidth_Bps: float = LOCAL_BANDWIDTH_BPS
    ) -> None:
        """Build the graph for `nodes` cluster nodes from the scenario's network section."""
        self.graph = build_graph(spec, nodes)
        self._local_latency_s = spec.local_latency_us * 1e-6
        self._local_inv_bw = 1.0 / local_bandwidth_Bps
        self._paths: dict[tuple[int, int], tuple[float, float]] = {}

    def path(self, src_node: int, dst_node: int) -> tuple[float, float]:
        """(latency seconds, 1 / bottleneck bandwidth in s/byte) between two nodes, cached.

        The first lookup from a source computes its paths to every node at once (one
        single-source Dijkstra), so a cluster costs at most one search per node.
        """
        cached = self._paths.get((src_node, dst_node))
        if cached is None:
            self._add_source(src_node)
            cached = self._paths[(src_node, dst_node)]
        return cached

    def _add_source(self, src: int) -> None:
        """Cache the path parameters from `src` to every cluster node."""
        graph = self.graph
        paths = nx.single_source_dijkstra_path(graph, src, weight="latency_s")
        for dst, hops in paths.items():
            if dst == SWITCH:
                continue
            if dst == src:
                self._paths[(src, dst)] = (self._local_latency_s, self._local_inv_bw)
                continue
            edges = [graph.edges[a, b] for a, b in zip(hops, hops[1:])]
            latency = sum(e["latency_s"] for e in edges)
            bottleneck = min(e["bandwidth_Bps"] for e in edges)
            self._paths[(src, dst)] = (latency, 1.0 / bottleneck)

    def delay(self, src_node: int, dst_node: int, nbytes: int) -> float:
        """Seconds for an `nbytes` message from `src_node` to `dst_node`."""
        cached = self._paths.get((src_node, dst_node))
        if cached is None:
            cached = self.path(src_node, dst_node)
        return cached[0] + nbytes * cached[1]
