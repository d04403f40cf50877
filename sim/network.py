"""Network model: a networkx topology and per-message latency + size/bandwidth delays."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import networkx as nx

from sim import topology

if TYPE_CHECKING:  # annotations only: the scenario checks build graphs with this module
    from sim.scenario import NetworkSpec

SWITCH = topology.STAR_SWITCH
"""Graph node name of the single switch of a star topology."""

LOCAL_BANDWIDTH_BPS = 10e9
"""Default memory bandwidth (bytes/s) for messages between components on one node."""


def _star(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """A single switch with one link to each of nodes 0..nodes-1."""
    return topology.star(nodes, spec.link_latency_us * 1e-6, spec.link_bandwidth_gbps * 1e9 / 8)


def _two_tier(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """Racks under top-of-rack switches and one spine, with oversubscribed uplinks."""
    return topology.two_tier(
        nodes,
        spec.nodes_per_rack,
        spec.link_latency_us * 1e-6,
        spec.link_bandwidth_gbps * 1e9 / 8,
        spec.uplink_latency_us * 1e-6,
        spec.oversubscription,
    )


def fat_tree_k(spec: NetworkSpec, nodes: int) -> int:
    """The scenario's k, or the smallest even k whose fat-tree has room for `nodes` hosts."""
    if spec.fat_tree_k is not None:
        return spec.fat_tree_k
    k = 2
    while k**3 // 4 < nodes:
        k += 2
    return k


def _fat_tree(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """A k-ary fat-tree keeping hosts 0..nodes-1."""
    k = fat_tree_k(spec, nodes)
    return topology.fat_tree(
        k, spec.link_latency_us * 1e-6, spec.link_bandwidth_gbps * 1e9 / 8, nodes
    )


def _edges(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """An explicit edge list."""
    return topology.from_edges(nodes, [e.model_dump() for e in spec.edges])


_TOPOLOGIES: dict[str, Callable[[NetworkSpec, int], nx.Graph]] = {
    "star": _star,
    "two_tier": _two_tier,
    "fat_tree": _fat_tree,
    "edges": _edges,
}


def build_graph(spec: NetworkSpec, nodes: int) -> nx.Graph:
    """Build the topology graph; edges carry `latency_s` and `bandwidth_Bps` attributes."""
    return _TOPOLOGIES[spec.topology](spec, nodes)


class Network:
    """Delay of a message between two cluster nodes: path latency + size / bottleneck bandwidth.

    Paths are the minimum-latency paths of the topology graph, computed with networkx on
    first use from each source node (one single-source search) and cached per pair. Messages between components on the same
    node cost `local_latency_us` plus size over `local_bandwidth_Bps`.

    This latency model serves control messages (small, so they are not slowed by object
    traffic); object transfers share links max-min fairly in `sim.flows` (see the host).
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
            if isinstance(dst, str):
                continue  # a switch
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
