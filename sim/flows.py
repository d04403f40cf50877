"""Max-min fair bandwidth sharing between concurrent transfers (a SimGrid/ESTEE-style flow model)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from sim.topology import Routes

FlowId = Hashable
"""Caller-chosen flow id; ids in flight at once must be mutually orderable (ints, tuples, ...)."""

DEFAULT_LOCAL_BANDWIDTH_BPS = 10e9
"""Default memory-copy bandwidth for same-node transfers (as in `sim.network`)."""

_MERGE_REL = 1e-12
"""Drains within this relative time of an event are processed with it (float-rounding twins)."""

_SENDING, _IN_FLIGHT = 0, 1
"""Flow phases: bytes still leaving the sender / last byte on its way (pure latency)."""


@dataclass(slots=True, eq=False)
class _Flow:
    """One transfer: its path, the bytes left at time `since`, and its current fair rate."""

    fid: FlowId
    seq: int
    src: int
    dst: int
    nbytes: float
    links: tuple[int, ...]
    latency: float
    start: float
    remaining: float
    since: float
    rate: float = 0.0
    drain_at: float = math.inf
    deliver_at: float = math.inf
    version: int = 0
    phase: int = _SENDING


@dataclass(slots=True)
class FlowStats:
    """Counters for reports: bytes per directed link, concurrency, recomputation work."""

    bytes_per_link: dict[int, float] = field(default_factory=dict)
    local_bytes: float = 0.0
    flows_started: int = 0
    flows_finished: int = 0
    flows_cancelled: int = 0
    max_concurrent_flows: int = 0
    max_sharing_flows: int = 0
    rate_recomputations: int = 0
    flows_rerated: int = 0


class FlowNetwork:
    """Transfers sharing directed links max-min fairly, recomputed when a flow starts or ends.

    A flow of `nbytes` from `src` to `dst` sends at its fair rate from `start` until its last
    byte has left (it then frees its links), and finishes `latency` later, latency being the
    path latency of `routes`. Alone on its path it finishes at start + latency + nbytes /
    bottleneck. Rates are computed by progressive filling over the connected component (of
    links and the flows crossing them) touched by the flow that started or drained; other
    components keep their rates. Same-node flows take `local_latency_s + nbytes /
    local_bandwidth_Bps`, use no link and share nothing.

    Time is explicit: every call takes `now`, which must never decrease. `start` and `cancel`
    first process the model's own events up to `now`; flows that finish there are returned
    by the next `advance`. The model has two kinds of events (a flow's last byte leaving,
    which changes others' rates, and a flow finishing); `next_completion` gives the earliest
    of either, so a host that calls `advance` at that time is exact (and may get `[]`).
    """

    __slots__ = (
        "routes",
        "capacity",
        "local_latency_s",
        "local_bandwidth_Bps",
        "_now",
        "_seq",
        "_flows",
        "_by_seq",
        "_link_flows",
        "_drains",
        "_deliveries",
        "_done",
        "_sharing",
        "_bytes",
        "_stats",
    )

    def __init__(
        self,
        routes: Routes,
        link_capacity: Sequence[float] | None = None,
        local_latency_s: float = 0.0,
        local_bandwidth_Bps: float = DEFAULT_LOCAL_BANDWIDTH_BPS,
    ) -> None:
        """Links are `routes`' directed links; capacity (bytes/s) per link id, default theirs."""
        capacity = tuple(
            float(c) for c in (routes.capacity if link_capacity is None else link_capacity)
        )
        if len(capacity) != routes.num_links:
            raise ValueError(
                f"link_capacity has {len(capacity)} entries, routes has {routes.num_links} links"
            )
        bad = [i for i, c in enumerate(capacity) if not (math.isfinite(c) and c > 0)]
        if bad:
            raise ValueError(f"link capacities must be finite and > 0; bad link ids {bad[:10]}")
        if not (local_latency_s >= 0 and local_bandwidth_Bps > 0):
            raise ValueError("local_latency_s must be >= 0 and local_bandwidth_Bps > 0")
        self.routes = routes
        self.capacity = capacity
        self.local_latency_s = float(local_latency_s)
        self.local_bandwidth_Bps = float(local_bandwidth_Bps)
        self._now = -math.inf
        self._seq = 0
        self._flows: dict[FlowId, _Flow] = {}
        self._by_seq: dict[int, _Flow] = {}
        self._link_flows: list[dict[int, _Flow]] = [{} for _ in capacity]
        self._drains: list[tuple[float, int, int]] = []  # (drain_at, seq, version)
        self._deliveries: list[tuple[float, int]] = []  # (deliver_at, seq)
        self._done: list[tuple[float, FlowId]] = []  # finished, not yet returned by advance
        self._sharing = 0
        self._bytes = [0.0] * len(capacity)
        self._stats = FlowStats()

    # -- public API ------------------------------------------------------------------------

    def start(self, flow_id: FlowId, src: int, dst: int, nbytes: float, now: float) -> None:
        """Start a transfer of `nbytes` from node `src` to node `dst` at time `now`."""
        self.start_many([(flow_id, src, dst, nbytes)], now)

    def start_many(self, flows: Sequence[tuple[FlowId, int, int, float]], now: float) -> None:
        """Start several `(flow_id, src, dst, nbytes)` transfers at `now`, rating them once.

        The same as starting them one by one at `now` (rates set and replaced at one
        instant move no bytes), but one max-min recomputation instead of one per flow.
        """
        self._run_until(now)
        stats = self._stats
        touched: dict[int, None] = {}
        for flow_id, src, dst, nbytes in flows:
            if flow_id in self._flows:
                raise ValueError(f"flow {flow_id!r} is already in flight")
            if not (nbytes >= 0 and math.isfinite(nbytes)):
                raise ValueError(
                    f"flow {flow_id!r}: nbytes must be finite and >= 0, got {nbytes!r}"
                )
            self._seq += 1
            if src == dst:
                self.routes.route(src, dst)  # validates the node
                links: tuple[int, ...] = ()
                latency = self.local_latency_s + nbytes / self.local_bandwidth_Bps
                stats.local_bytes += nbytes
            else:
                links, latency = self.routes.route(src, dst)
            flow = _Flow(
                flow_id, self._seq, src, dst, float(nbytes), links, latency, now, float(nbytes), now
            )
            self._flows[flow_id] = flow
            self._by_seq[flow.seq] = flow
            stats.flows_started += 1
            stats.max_concurrent_flows = max(stats.max_concurrent_flows, len(self._flows))
            if not links or nbytes == 0:
                flow.drain_at = now
                self._deliver_later(flow)
                continue
            for link in links:
                self._link_flows[link][flow.seq] = flow
                touched[link] = None
            self._sharing += 1
            stats.max_sharing_flows = max(stats.max_sharing_flows, self._sharing)
        if touched:
            self._rerate(tuple(touched), now)

    def cancel(self, flow_id: FlowId, now: float) -> bool:
        """Abort a flow at `now`, freeing its links; False if unknown or already finished."""
        self._run_until(now)
        flow = self._flows.pop(flow_id, None)
        if flow is None:
            return False
        del self._by_seq[flow.seq]
        self._stats.flows_cancelled += 1
        if flow.phase == _SENDING and flow.links:
            sent = flow.nbytes - max(0.0, flow.remaining - flow.rate * (now - flow.since))
            self._unlink(flow, sent)
            self._rerate(flow.links, now)
        return True

    def next_completion(self) -> tuple[float, FlowId] | None:
        """(time, flow id) of the model's next event at current rates, or None when idle.

        The event is a flow finishing or a flow's last byte leaving (which speeds up others);
        either way the host must call `advance(time)` then. Ties go to the smaller flow id.
        """
        best: tuple[float, FlowId] | None = None
        drain = self._peek_drain()
        if drain is not None:
            best = (drain.drain_at, drain.fid)
        deliveries = self._deliveries
        while deliveries and deliveries[0][1] not in self._by_seq:
            heapq.heappop(deliveries)
        if deliveries:
            at, seq = deliveries[0]
            fid = self._by_seq[seq].fid
            if best is None or at < best[0] or (at == best[0] and fid < best[1]):
                best = (at, fid)
        return best

    def advance(self, now: float) -> list[FlowId]:
        """Progress every flow to `now`; return the flows finished by then (by time, then id)."""
        self._run_until(now)
        done, self._done = self._done, []
        done.sort()
        return [fid for _, fid in done]

    def rate(self, flow_id: FlowId) -> float:
        """Current sending rate of a flow in bytes/s (0.0 once its last byte has left)."""
        flow = self._flows[flow_id]
        return flow.rate if flow.phase == _SENDING else 0.0

    @property
    def now(self) -> float:
        """The latest time the model was brought to (-inf before the first call)."""
        return self._now

    def __len__(self) -> int:
        """Number of flows in flight (started, not finished or cancelled)."""
        return len(self._flows)

    def stats(self) -> FlowStats:
        """A snapshot of the counters; bytes per link count bytes that left each link's sender."""
        snapshot = FlowStats(**{name: getattr(self._stats, name) for name in FlowStats.__slots__})
        snapshot.bytes_per_link = {link: b for link, b in enumerate(self._bytes) if b}
        return snapshot

    # -- internals -------------------------------------------------------------------------

    def _peek_drain(self) -> _Flow | None:
        """The sending flow with the earliest valid drain entry (stale entries discarded)."""
        drains = self._drains
        while drains:
            _, seq, version = drains[0]
            flow = self._by_seq.get(seq)
            if flow is not None and flow.phase == _SENDING and flow.version == version:
                return flow
            heapq.heappop(drains)
        return None

    def _run_until(self, now: float) -> None:
        """Process drains and deliveries up to `now` in time order; finished go to `_done`."""
        if now < self._now:
            raise ValueError(f"time went backwards: {now!r} < {self._now!r}")
        deliveries = self._deliveries
        while True:
            drain = self._peek_drain()
            t_drain = drain.drain_at if drain is not None else math.inf
            while deliveries and deliveries[0][1] not in self._by_seq:
                heapq.heappop(deliveries)
            t_deliver = deliveries[0][0] if deliveries else math.inf
            t = min(t_drain, t_deliver)
            if t > now:
                break
            if t_drain <= t_deliver:
                self._drain_at(t_drain)
            else:
                _, seq = heapq.heappop(deliveries)
                flow = self._by_seq.pop(seq)
                del self._flows[flow.fid]
                self._stats.flows_finished += 1
                self._done.append((flow.deliver_at, flow.fid))
        self._now = now

    def _drain_at(self, t: float) -> None:
        """Flows whose last byte leaves at `t` (or a rounding error after) free their links."""
        limit = t + abs(t) * _MERGE_REL
        touched: dict[int, None] = {}
        while True:
            flow = self._peek_drain()
            if flow is None or flow.drain_at > limit:
                break
            heapq.heappop(self._drains)
            self._unlink(flow, flow.nbytes)
            for link in flow.links:
                touched[link] = None
            self._deliver_later(flow)
        self._rerate(tuple(touched), t)

    def _unlink(self, flow: _Flow, sent: float) -> None:
        """Take a sending flow off its links, counting `sent` bytes on each."""
        for link in flow.links:
            del self._link_flows[link][flow.seq]
            self._bytes[link] += sent
        flow.phase = _IN_FLIGHT
        flow.rate = 0.0
        self._sharing -= 1

    def _deliver_later(self, flow: _Flow) -> None:
        """Schedule the flow's finish one path latency after its last byte left."""
        flow.phase = _IN_FLIGHT
        flow.remaining = 0.0
        flow.deliver_at = flow.drain_at + flow.latency
        heapq.heappush(self._deliveries, (flow.deliver_at, flow.seq))

    def _rerate(self, seed_links: Sequence[int], now: float) -> None:
        """Max-min fair rates (progressive filling) for the component reachable from seed_links."""
        link_flows = self._link_flows
        comp_links: dict[int, None] = {}
        comp_flows: dict[int, _Flow] = {}
        stack = list(seed_links)
        while stack:
            link = stack.pop()
            if link in comp_links:
                continue
            comp_links[link] = None
            for seq, flow in link_flows[link].items():
                if seq not in comp_flows:
                    comp_flows[seq] = flow
                    stack.extend(x for x in flow.links if x not in comp_links)
        if not comp_flows:
            return
        self._stats.rate_recomputations += 1
        capacity = self.capacity
        left: dict[int, float] = {}
        count: dict[int, int] = {}
        heap: list[tuple[float, int]] = []
        for link in sorted(comp_links):
            users = len(link_flows[link])
            if users:
                left[link] = capacity[link]
                count[link] = users
                heap.append((capacity[link] / users, link))
        heapq.heapify(heap)
        # Each link with unfrozen flows has one heap entry whose key is a lower bound of its
        # fair share (shares only grow as flows freeze): re-key lazily when popped.
        new_rate: dict[int, float] = {}
        while heap:
            share, link = heapq.heappop(heap)
            users = count[link]
            if users == 0:
                continue
            current = max(0.0, left[link]) / users
            if current > share:
                heapq.heappush(heap, (current, link))
                continue
            flows_here = link_flows[link]
            for seq in sorted(flows_here):
                if seq in new_rate:
                    continue
                new_rate[seq] = current
                for other in flows_here[seq].links:
                    left[other] -= current
                    count[other] -= 1
        rerated = 0
        for seq in sorted(comp_flows):
            flow = comp_flows[seq]
            rate = new_rate[seq]
            if rate == flow.rate:
                continue
            rerated += 1
            if flow.rate > 0.0:
                flow.remaining = max(0.0, flow.remaining - flow.rate * (now - flow.since))
            flow.since = now
            flow.rate = rate
            flow.version += 1
            flow.drain_at = now + flow.remaining / rate if rate > 0.0 else math.inf
            heapq.heappush(self._drains, (flow.drain_at, seq, flow.version))
        self._stats.flows_rerated += rerated
