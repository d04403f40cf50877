"""Network topologies (star, two-tier, fat-tree, explicit edges) and deterministic routes."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

Node = int | str
"""A graph node: an int 0..n-1 is a compute node, a string is a switch."""

Route = tuple[tuple[int, ...], float]
"""(directed link ids from source to destination, path latency in seconds)."""

STAR_SWITCH = "switch"
"""Name of the single switch of `star` (the same name as in `sim.network`)."""

_PS_PER_S = 10**12
_HOP_WEIGHT = 1 << 20
"""Integer path cost = latency in picoseconds * _HOP_WEIGHT + hops: latency first, then hops."""


class TopologyError(ValueError):
    """An invalid topology description (bad edge, unknown node, disconnected compute node)."""


def node_key(node: Node) -> tuple[int, int, str]:
    """Total order on mixed nodes: compute nodes (ints) first by number, then switches by name."""
    if isinstance(node, str):
        return (1, 0, node)
    return (0, node, "")


def _add_link(graph: nx.Graph, a: Node, b: Node, latency_s: float, bandwidth_Bps: float) -> None:
    """Add one edge carrying the two attributes every topology edge has."""
    graph.add_edge(a, b, latency_s=float(latency_s), bandwidth_Bps=float(bandwidth_Bps))


def _check_positive(**values: float) -> None:
    """Raise TopologyError unless every value is finite and positive (latencies may be 0)."""
    for name, value in values.items():
        low_ok = value >= 0 if "latency" in name else value > 0
        if not (math.isfinite(value) and low_ok):
            raise TopologyError(
                f"{name} must be a finite {'>= 0' if 'latency' in name else '> 0'} "
                f"number, got {value!r}"
            )


def star(n: int, link_latency_s: float, link_bandwidth_Bps: float) -> nx.Graph:
    """One switch (`STAR_SWITCH`) with one link to each compute node 0..n-1."""
    if n < 1:
        raise TopologyError(f"star needs at least one node, got n={n}")
    _check_positive(link_latency_s=link_latency_s, link_bandwidth_Bps=link_bandwidth_Bps)
    graph = nx.Graph(topology="star")
    graph.add_node(STAR_SWITCH)
    for node in range(n):
        _add_link(graph, node, STAR_SWITCH, link_latency_s, link_bandwidth_Bps)
    return graph


def two_tier(
    n: int,
    nodes_per_rack: int,
    link_latency_s: float,
    link_bandwidth_Bps: float,
    uplink_latency_s: float,
    oversubscription: float,
) -> nx.Graph:
    """Racks of `nodes_per_rack` nodes under ToR switches `tor<r>`, each ToR linked to `spine`.

    Node `i` sits in rack `i // nodes_per_rack`. Each uplink has bandwidth
    `nodes_per_rack * link_bandwidth_Bps / oversubscription` (1.0 = non-blocking).
    """
    if n < 1 or nodes_per_rack < 1:
        raise TopologyError(
            f"two_tier needs n >= 1 and nodes_per_rack >= 1, got {n}, {nodes_per_rack}"
        )
    _check_positive(
        link_latency_s=link_latency_s,
        link_bandwidth_Bps=link_bandwidth_Bps,
        uplink_latency_s=uplink_latency_s,
        oversubscription=oversubscription,
    )
    racks = -(-n // nodes_per_rack)
    width = len(str(racks - 1))
    uplink_bw = nodes_per_rack * link_bandwidth_Bps / oversubscription
    graph = nx.Graph(topology="two_tier", nodes_per_rack=nodes_per_rack)
    graph.add_node("spine")
    for rack in range(racks):
        tor = f"tor{rack:0{width}d}"
        _add_link(graph, tor, "spine", uplink_latency_s, uplink_bw)
        for node in range(rack * nodes_per_rack, min(n, (rack + 1) * nodes_per_rack)):
            _add_link(graph, node, tor, link_latency_s, link_bandwidth_Bps)
    return graph


def fat_tree(
    k: int, link_latency_s: float, link_bandwidth_Bps: float, n: int | None = None
) -> nx.Graph:
    """The standard k-ary fat-tree (k pods, (k/2)^2 cores, k^3/4 hosts), all links identical.

    Host `h` is host `h % (k/2)` of edge switch `(h // (k/2)) % (k/2)` of pod `h // (k/2)^2`.
    Switches are `core<j>`, `agg<pod>.<i>` and `edge<pod>.<i>`; core `j` connects to
    aggregation switch `j // (k/2)` of every pod. With `n` < k^3/4, only hosts 0..n-1 are kept
    (all switches stay).
    """
    if k < 2 or k % 2:
        raise TopologyError(f"fat_tree needs an even k >= 2, got k={k}")
    _check_positive(link_latency_s=link_latency_s, link_bandwidth_Bps=link_bandwidth_Bps)
    half = k // 2
    hosts = k * half * half
    if n is None:
        n = hosts
    if not 1 <= n <= hosts:
        raise TopologyError(f"fat_tree(k={k}) has {hosts} hosts; cannot keep n={n}")
    wk = len(str(k - 1))
    wh = len(str(half - 1))
    wc = len(str(half * half - 1))
    graph = nx.Graph(topology="fat_tree", k=k)
    for pod in range(k):
        for i in range(half):
            agg = f"agg{pod:0{wk}d}.{i:0{wh}d}"
            for j in range(half):
                core = f"core{i * half + j:0{wc}d}"
                _add_link(graph, agg, core, link_latency_s, link_bandwidth_Bps)
        for e in range(half):
            edge = f"edge{pod:0{wk}d}.{e:0{wh}d}"
            for i in range(half):
                _add_link(
                    graph, edge, f"agg{pod:0{wk}d}.{i:0{wh}d}", link_latency_s, link_bandwidth_Bps
                )
            for h in range(half):
                host = (pod * half + e) * half + h
                if host < n:
                    _add_link(graph, host, edge, link_latency_s, link_bandwidth_Bps)
    return graph


_EDGE_KEYS = ("a", "b", "latency_us", "bandwidth_gbps")


def _edge_end(index: int, edge: Mapping[str, Any], key: str, n: int) -> Node:
    """Validate one end of an edge description: an int in [0, n) or a non-empty string."""
    value = edge[key]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TopologyError(
            f"edge #{index} {dict(edge)!r}: '{key}' must be a compute node (int) or a switch "
            f"(str), got {type(value).__name__}"
        )
    if isinstance(value, int) and not 0 <= value < n:
        raise TopologyError(
            f"edge #{index} {dict(edge)!r}: compute node {key}={value} is outside 0..{n - 1}"
        )
    if isinstance(value, str) and not value:
        raise TopologyError(f"edge #{index} {dict(edge)!r}: switch name '{key}' is empty")
    return value


def _edge_number(index: int, edge: Mapping[str, Any], key: str, positive: bool) -> float:
    """Validate a numeric edge field: finite and >= 0 (latency) or > 0 (bandwidth)."""
    value = edge[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        need = "> 0" if positive else ">= 0"
        raise TopologyError(f"edge #{index} {dict(edge)!r}: '{key}' must be a finite number {need}")
    return float(value)


def from_edges(n: int, edges: Iterable[Mapping[str, Any]]) -> nx.Graph:
    """Build a graph from `{a, b, latency_us, bandwidth_gbps}` dicts; every node 0..n-1 connected.

    Ints are compute nodes, strings are switches. Errors name the offending edge by its index
    and content: missing/unknown keys, bad ends, self-loops, duplicates, non-positive bandwidth.
    """
    if n < 1:
        raise TopologyError(f"from_edges needs n >= 1, got n={n}")
    graph = nx.Graph(topology="edges")
    for index, edge in enumerate(edges):
        if not isinstance(edge, Mapping):
            raise TopologyError(
                f"edge #{index} {edge!r}: expected a mapping with keys {_EDGE_KEYS}"
            )
        missing = [key for key in _EDGE_KEYS if key not in edge]
        unknown = sorted(str(key) for key in edge if key not in _EDGE_KEYS)
        if missing or unknown:
            raise TopologyError(
                f"edge #{index} {dict(edge)!r}: missing keys {missing}, unknown keys {unknown}"
            )
        a = _edge_end(index, edge, "a", n)
        b = _edge_end(index, edge, "b", n)
        if a == b:
            raise TopologyError(f"edge #{index} {dict(edge)!r}: self-loop on {a!r}")
        if graph.has_edge(a, b):
            raise TopologyError(f"edge #{index} {dict(edge)!r}: duplicate edge {a!r}-{b!r}")
        latency_s = _edge_number(index, edge, "latency_us", positive=False) / 1e6
        bandwidth = _edge_number(index, edge, "bandwidth_gbps", positive=True) * 1e9 / 8.0
        _add_link(graph, a, b, latency_s, bandwidth)
    missing_nodes = [node for node in range(n) if node not in graph]
    if missing_nodes:
        raise TopologyError(f"compute nodes without any edge: {_short(missing_nodes)}")
    reached = nx.node_connected_component(graph, 0)
    unreached = [node for node in range(n) if node not in reached]
    if unreached:
        raise TopologyError(f"compute nodes not connected to node 0: {_short(unreached)}")
    return graph


def _short(items: list[int], limit: int = 10) -> str:
    """A list for an error message, truncated after `limit` items."""
    head = ", ".join(str(x) for x in items[:limit])
    return f"[{head}{', ...' if len(items) > limit else ''}] ({len(items)} in all)"


class Routes:
    """Deterministic minimum-latency routes between compute nodes, as tuples of link ids.

    Every undirected edge gets an edge id from the sorted table of canonical (min, max)
    edges (see `node_key`); it is two full-duplex directed links: `2*edge` for min->max and
    `2*edge + 1` for max->min, each with the edge's full bandwidth.

    Cost is latency (rounded to picoseconds, so float summation order cannot break ties),
    then hop count. Among equal-cost next hops, sorted by `node_key`, the route takes the
    D-mod-k choice used by InfiniBand fat-trees: at the j-th branching hop, candidate
    `(dst // m) % count` where m is the product of the earlier branch counts. This spreads
    equal-cost traffic by destination (full bisection for a fat-tree's shift permutations)
    and depends on the graph only, never on hash or insertion order.

    A route is computed on first query of a pair (one Dijkstra from the destination, whose
    distances are kept for up to `max_cached_trees` destinations) and then cached: O(1).
    """

    __slots__ = (
        "graph",
        "n",
        "links",
        "capacity",
        "link_latency",
        "_edge_ids",
        "_adj",
        "_trees",
        "_max_trees",
        "_routes",
    )

    def __init__(self, graph: nx.Graph, max_cached_trees: int = 1024) -> None:
        """Index the graph's edges; compute nodes must be exactly the ints 0..n-1."""
        ints = sorted(node for node in graph.nodes if not isinstance(node, str))
        if any(isinstance(node, bool) or not isinstance(node, int) for node in ints):
            raise TopologyError("graph nodes must be ints (compute nodes) or strings (switches)")
        if ints != list(range(len(ints))):
            raise TopologyError(f"compute nodes must be 0..n-1, got {_short(ints)}")
        self.graph = graph
        self.n = len(ints)
        canonical = []
        for a, b in graph.edges:
            lo, hi = (a, b) if node_key(a) <= node_key(b) else (b, a)
            canonical.append((node_key(lo), node_key(hi), lo, hi))
        canonical.sort()
        self._edge_ids: dict[tuple[Node, Node], int] = {}
        links: list[tuple[Node, Node]] = []
        capacity: list[float] = []
        latency: list[float] = []
        for edge_id, (_, _, lo, hi) in enumerate(canonical):
            self._edge_ids[(lo, hi)] = edge_id
            attrs = graph.edges[lo, hi]
            bandwidth = float(attrs["bandwidth_Bps"])
            lat = float(attrs["latency_s"])
            if not (math.isfinite(bandwidth) and bandwidth > 0 and math.isfinite(lat) and lat >= 0):
                raise TopologyError(f"edge {lo!r}-{hi!r}: bad latency_s/bandwidth_Bps {attrs!r}")
            links += [(lo, hi), (hi, lo)]
            capacity += [bandwidth, bandwidth]
            latency += [lat, lat]
        self.links: tuple[tuple[Node, Node], ...] = tuple(links)
        """Directed link id -> (from, to)."""
        self.capacity: tuple[float, ...] = tuple(capacity)
        """Directed link id -> bandwidth in bytes/s."""
        self.link_latency: tuple[float, ...] = tuple(latency)
        """Directed link id -> latency in seconds."""
        # Adjacency sorted by node_key, with integer edge costs: independent of insertion order.
        self._adj: dict[Node, list[tuple[Node, int]]] = {}
        for node in graph.nodes:
            nbrs = sorted(graph.adj[node], key=node_key)
            self._adj[node] = [
                (nb, round(graph.edges[node, nb]["latency_s"] * _PS_PER_S) * _HOP_WEIGHT + 1)
                for nb in nbrs
            ]
        self._trees: dict[int, dict[Node, int]] = {}
        self._max_trees = max(1, max_cached_trees)
        self._routes: dict[tuple[int, int], Route] = {}

    @property
    def num_links(self) -> int:
        """Number of directed links (twice the number of edges)."""
        return len(self.links)

    def edge_id(self, a: Node, b: Node) -> int:
        """Id of the undirected edge a-b (index in the sorted canonical edge table)."""
        key = (a, b) if node_key(a) <= node_key(b) else (b, a)
        try:
            return self._edge_ids[key]
        except KeyError:
            raise KeyError(f"no edge {a!r}-{b!r}") from None

    def link_id(self, src: Node, dst: Node) -> int:
        """Id of the directed link src->dst."""
        edge = self.edge_id(src, dst)
        return 2 * edge + (0 if node_key(src) <= node_key(dst) else 1)

    def route(self, src: int, dst: int) -> Route:
        """(link ids along the path src->dst, path latency in s); ((), 0.0) when src == dst."""
        key = (src, dst)
        cached = self._routes.get(key)
        if cached is None:
            cached = self._compute(src, dst)
            self._routes[key] = cached
        return cached

    def path(self, src: int, dst: int) -> list[Node]:
        """The nodes visited by `route(src, dst)`, for debugging and reports."""
        links, _ = self.route(src, dst)
        return [src] + [self.links[link][1] for link in links]

    def _tree(self, dst: int) -> dict[Node, int]:
        """Integer cost of the best path from every node to `dst` (Dijkstra), LRU-cached."""
        tree = self._trees.pop(dst, None)
        if tree is None:
            tree = {}
            heap: list[tuple[int, tuple[int, int, str], Node]] = [(0, node_key(dst), dst)]
            while heap:
                cost, _, node = heapq.heappop(heap)
                if node in tree:
                    continue
                tree[node] = cost
                for nb, weight in self._adj[node]:
                    if nb not in tree:
                        heapq.heappush(heap, (cost + weight, node_key(nb), nb))
            if len(self._trees) >= self._max_trees:
                del self._trees[next(iter(self._trees))]
        self._trees[dst] = tree
        return tree

    def _compute(self, src: int, dst: int) -> Route:
        """Walk from src along equal-cost next hops chosen by D-mod-k; see the class doc."""
        for node in (src, dst):
            if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < self.n:
                raise KeyError(f"unknown compute node {node!r} (nodes are 0..{self.n - 1})")
        if src == dst:
            return ((), 0.0)
        tree = self._tree(dst)
        if src not in tree:
            raise TopologyError(f"no path from node {src} to node {dst}")
        links: list[int] = []
        latency = 0.0
        node: Node = src
        radix = 1
        while node != dst:
            here = tree[node]
            candidates = [nb for nb, w in self._adj[node] if tree.get(nb, -1) + w == here]
            if len(candidates) == 1:
                nxt = candidates[0]
            else:
                nxt = candidates[(dst // radix) % len(candidates)]
                radix *= len(candidates)
            link = self.link_id(node, nxt)
            links.append(link)
            latency += self.link_latency[link]
            node = nxt
        return (tuple(links), latency)
