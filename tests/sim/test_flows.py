"""Known-answer tests for the max-min fair flow model."""

from __future__ import annotations

import pytest

from sim.flows import FlowNetwork
from sim.topology import Routes, fat_tree, from_edges, star, two_tier

LAT = 10e-6
BW = 1e9  # bytes/s
MB = 1e6


def drive(net: FlowNetwork, starts: list[tuple[float, object, int, int, float]]) -> dict:
    """A minimal host: start flows at their times, wake at next_completion, record finishes."""
    finished: dict[object, float] = {}
    pending = sorted(starts, key=lambda s: s[0])
    while pending or net.next_completion() is not None:
        nxt = net.next_completion()
        if pending and (nxt is None or pending[0][0] <= nxt[0]):
            t, fid, src, dst, nbytes = pending.pop(0)
            net.start(fid, src, dst, nbytes, t)
            continue
        t = nxt[0]
        for fid in net.advance(t):
            finished[fid] = t
    return finished


def star_net(n: int = 4) -> FlowNetwork:
    """A flow network on a star whose node-to-node latency is LAT and NIC bandwidth BW."""
    return FlowNetwork(Routes(star(n, LAT / 2, BW)))


def test_lone_transfer_takes_latency_plus_size_over_bandwidth() -> None:
    net = star_net()
    net.start("a", 0, 1, 3 * MB, 1.0)
    assert net.rate("a") == BW
    assert net.next_completion() == (pytest.approx(1.0 + 3e-3), "a")  # last byte leaves
    assert drive(net, []) == {"a": pytest.approx(1.0 + 3e-3 + LAT, rel=1e-12)}
    assert len(net) == 0 and net.next_completion() is None


def test_two_flows_on_one_link_get_half_each() -> None:
    net = star_net()
    done = drive(net, [(0.0, 1, 0, 1, MB), (0.0, 2, 0, 2, MB)])  # share 0's uplink
    assert done == {1: pytest.approx(LAT + 2 * MB / BW), 2: pytest.approx(LAT + 2 * MB / BW)}


def test_opposite_directions_do_not_share() -> None:
    done = drive(star_net(), [(0.0, 1, 0, 1, MB), (0.0, 2, 1, 0, MB)])
    assert done == {1: pytest.approx(LAT + MB / BW), 2: pytest.approx(LAT + MB / BW)}


def chain() -> FlowNetwork:
    """0 --(1 GB/s, 10 us)-- 1 --(2 GB/s, 20 us)-- 2: the classic 3-flow, 2-link example."""
    graph = from_edges(
        3,
        [
            {"a": 0, "b": 1, "latency_us": 10, "bandwidth_gbps": 8},
            {"a": 1, "b": 2, "latency_us": 20, "bandwidth_gbps": 16},
        ],
    )
    return FlowNetwork(Routes(graph))


def test_max_min_leftover_goes_to_partially_sharing_flow() -> None:
    net = chain()
    net.start("A", 0, 2, 1e9, 0.0)  # both links
    net.start("B", 0, 1, 0.5e9, 0.0)  # link 0->1 only
    net.start("C", 1, 2, 3e9, 0.0)  # link 1->2 only
    # Link 0->1 (1e9) is the bottleneck: A = B = 0.5e9; C gets 2e9 - 0.5e9 = 1.5e9.
    assert [net.rate(f) for f in "ABC"] == [0.5e9, 0.5e9, 1.5e9]


def test_finishing_flows_free_bandwidth_exactly() -> None:
    net = chain()
    done = drive(net, [(0.0, "A", 0, 2, 1e9), (0.0, "B", 0, 1, 0.5e9), (0.0, "C", 1, 2, 3e9)])
    # t=1: B's last byte leaves (0.5e9 at 0.5e9/s); A has 0.5e9 left, C 1.5e9.
    # Then A and C share 1->2 at 1e9 each: A leaves at 1.5; C has 1e9 left at 2e9/s -> 2.0.
    assert done["B"] == pytest.approx(1.0 + 10e-6, rel=1e-12)
    assert done["A"] == pytest.approx(1.5 + 30e-6, rel=1e-12)
    assert done["C"] == pytest.approx(2.0 + 20e-6, rel=1e-12)
    stats = net.stats()
    routes = net.routes
    assert stats.bytes_per_link[routes.link_id(0, 1)] == pytest.approx(1.5e9)
    assert stats.bytes_per_link[routes.link_id(1, 2)] == pytest.approx(4e9)
    assert routes.link_id(1, 0) not in stats.bytes_per_link
    assert stats.max_concurrent_flows == 3 and stats.flows_finished == 3


def test_unequal_sizes_on_one_link() -> None:
    done = drive(star_net(), [(0.0, "s", 0, 1, MB), (0.0, "l", 0, 2, 2 * MB)])
    assert done["s"] == pytest.approx(LAT + 2 * MB / BW, rel=1e-12)
    assert done["l"] == pytest.approx(LAT + 3 * MB / BW, rel=1e-12)


def test_late_start_shares_from_its_start() -> None:
    # A alone for 1 ms (1 MB sent), then A and B at half rate: both have 1 MB left.
    done = drive(star_net(), [(0.0, "A", 0, 1, 2 * MB), (1e-3, "B", 0, 2, MB)])
    assert done == {"A": pytest.approx(3e-3 + LAT), "B": pytest.approx(3e-3 + LAT)}


def test_cancel_frees_bandwidth() -> None:
    net = star_net()
    net.start("A", 0, 1, 2 * MB, 0.0)
    net.start("B", 0, 2, 2 * MB, 0.0)
    assert net.cancel("B", 1e-3) is True  # A has sent 0.5 MB, 1.5 MB left at full rate
    assert net.cancel("B", 1e-3) is False
    assert drive(net, []) == {"A": pytest.approx(2.5e-3 + LAT)}
    assert net.stats().bytes_per_link[net.routes.link_id(0, "switch")] == pytest.approx(2.5 * MB)


def test_local_and_empty_transfers() -> None:
    net = FlowNetwork(Routes(star(2, LAT / 2, BW)), local_latency_s=1e-6, local_bandwidth_Bps=1e10)
    done = drive(net, [(0.0, "local", 1, 1, 1e4), (0.0, "empty", 0, 1, 0), (0.0, "big", 0, 1, MB)])
    assert done["local"] == pytest.approx(1e-6 + 1e-6)
    assert done["empty"] == pytest.approx(LAT)
    assert done["big"] == pytest.approx(LAT + MB / BW)  # the empty flow took no bandwidth
    assert net.stats().local_bytes == 1e4


def test_shuffle_on_star_is_limited_by_each_nic() -> None:
    n = 6
    flows = [(0.0, (s, d), s, d, MB) for s in range(n) for d in range(n) if s != d]
    net = star_net(n)
    done = drive(net, flows)
    assert len(done) == n * (n - 1)
    expected = LAT + (n - 1) * MB / BW
    assert all(t == pytest.approx(expected, rel=1e-9) for t in done.values())
    assert net.stats().max_sharing_flows == n * (n - 1)


def test_two_tier_oversubscription_slows_cross_rack_traffic() -> None:
    factor = 4.0
    graph = two_tier(8, 4, LAT, BW, LAT, factor)  # uplink = 4 * BW / 4 = BW
    cross = [(0.0, i, i, i + 4, MB) for i in range(4)]  # all 4 nodes of rack 0 -> rack 1
    inside = [(0.0, i, i, (i + 1) % 4, MB) for i in range(4)]  # a ring inside rack 0
    t_cross = drive(FlowNetwork(Routes(graph)), cross)
    t_inside = drive(FlowNetwork(Routes(graph)), inside)
    assert all(t == pytest.approx(4 * LAT + factor * MB / BW) for t in t_cross.values())
    assert all(t == pytest.approx(2 * LAT + MB / BW) for t in t_inside.values())
    nonblocking = drive(FlowNetwork(Routes(two_tier(8, 4, LAT, BW, LAT, 1.0))), cross)
    assert all(t == pytest.approx(4 * LAT + MB / BW) for t in nonblocking.values())


def test_fat_tree_k4_full_bisection() -> None:
    net = FlowNetwork(Routes(fat_tree(4, LAT, BW)))
    assert net.routes.n == 16
    for shift in (4, 8, 12):  # every host to the same slot of another pod
        flows = [(0.0, h, h, (h + shift) % 16, MB) for h in range(16)]
        for _, fid, src, dst, nbytes in flows:
            net.start((shift, fid), src, dst, nbytes, 0.0 if shift == 4 else net.now)
        assert all(net.rate((shift, h)) == BW for h in range(16))
        t0 = net.now
        done = drive(net, [])
        assert all(t == pytest.approx(t0 + 6 * LAT + MB / BW) for t in done.values())
        assert len(done) == 16


def test_deterministic_and_validation() -> None:
    flows = [(i * 1e-4, i, i % 5, (i * 3 + 1) % 5, (i % 7 + 1) * 1e5) for i in range(60)]
    first = drive(star_net(5), flows)
    second = drive(star_net(5), flows)
    assert list(first.items()) == list(second.items())
    net = star_net()
    net.start(1, 0, 1, MB, 1.0)
    with pytest.raises(ValueError, match="already in flight"):
        net.start(1, 0, 2, MB, 1.0)
    with pytest.raises(ValueError, match="backwards"):
        net.advance(0.5)
    with pytest.raises(KeyError):
        net.start(2, 0, 9, MB, 1.0)


def test_start_and_cancel_buffer_finishes_for_the_next_advance() -> None:
    net = star_net()
    net.start("a", 0, 1, MB, 0.0)
    net.start("b", 2, 3, MB, 1.0)  # "a" finished at 1e-3 + LAT, before this call
    assert net.advance(1.0) == ["a"]
    assert net.advance(1.0) == []


def test_starting_flows_together_equals_starting_them_one_by_one() -> None:
    starts = [(i, i % 3, 3 - i % 2, (i + 1) * MB) for i in range(6)]
    one = star_net()
    for fid, src, dst, nbytes in starts:
        one.start(fid, src, dst, nbytes, 0.5)
    many = star_net()
    many.start_many(starts, 0.5)
    assert many.stats().rate_recomputations == 1
    assert [many.rate(f) for f, *_ in starts] == [one.rate(f) for f, *_ in starts]
    assert drive(many, []) == drive(one, [])
