"""The simulator against known answers: M/M/c queueing, transfer times, link sharing, scaling."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from runtime.core.messages import Transfer, TransferDone
from sim.flows import FlowNetwork
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.network import Network
from sim.runner import run_scenario
from sim.scenario import NetworkSpec, load_scenario, validate_scenario
from sim.topology import Routes

ROOT = Path(__file__).resolve().parents[2]


def erlang_c_wait(c: int, arrival: float, service: float) -> float:
    """Mean wait in queue of an M/M/c queue (Erlang C)."""
    a = arrival / service
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail) / (c * service - arrival)


def test_mmc_mean_wait_matches_erlang_c() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "mmc.yaml")
    work = scenario.workload
    c = scenario.cluster.cpus_per_node
    expected = erlang_c_wait(c, work.poisson_rate_tps, 1e3 / work.duration_ms.mean)
    metrics = run_scenario(scenario)
    assert metrics["tasks"] == work.tasks
    assert metrics["queue_s"]["mean"] == pytest.approx(expected, rel=0.03)


class Recorder:
    """A stand-in raylet that records when transfers arrive."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, Any]] = []

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.arrivals.append((now, msg))


LAT_US, GBPS = 25.0, 8.0  # 1 GB/s links
BW = GBPS * 1e9 / 8


def transfer_host(nodes: int = 3) -> tuple[Host, Recorder]:
    """A host on a star with flows, a recording raylet on every node, free service."""
    spec = NetworkSpec(link_latency_us=LAT_US, link_bandwidth_gbps=GBPS)
    network = Network(spec, nodes)
    host = Host(network, MetricsRecorder(), random.Random(1))
    host.flows = FlowNetwork(Routes(network.graph))
    recorder = Recorder()
    host.add(0, Recorder(), 0, 0.0)  # stands in for the GCS (hears NodeDied)
    for node in range(nodes):
        host.add_raylet(10 + node, recorder, node, 0.0)
    return host, recorder


def run_transfers(host: Host, recorder: Recorder, moves: list[tuple[int, int, int]]) -> list[float]:
    """Issue Transfer(src, dst, nbytes) at t=0; return arrival times in issue order."""
    out: list[Any] = [Transfer(i + 1, s, d, n) for i, (s, d, n) in enumerate(moves)]
    host._execute(out, 10, 0.0)
    host.run_while(lambda: len(recorder.arrivals) < len(moves))
    assert all(isinstance(m, TransferDone) for _, m in recorder.arrivals)
    by_oid = {m.oid: t for t, m in recorder.arrivals}
    return [by_oid[i + 1] for i in range(len(moves))]


def test_a_lone_transfer_takes_latency_plus_size_over_bandwidth() -> None:
    host, recorder = transfer_host()
    (t,) = run_transfers(host, recorder, [(0, 1, 10_000_000)])
    assert t == pytest.approx(2 * LAT_US * 1e-6 + 10_000_000 / BW, rel=1e-9)


def test_two_transfers_into_one_link_each_get_half() -> None:
    host, recorder = transfer_host()
    size = 10_000_000
    times = run_transfers(host, recorder, [(0, 2, size), (1, 2, size)])
    expected = 2 * LAT_US * 1e-6 + 2 * size / BW  # node 2's downlink is shared
    assert times == [pytest.approx(expected, rel=1e-9)] * 2
    lone = 2 * LAT_US * 1e-6 + size / BW
    assert min(times) > 1.9 * (lone - 2 * LAT_US * 1e-6)


def scaling_throughput(policy: str, nodes: int) -> float:
    """Throughput of 1 ms tasks, one driver per node, a slow (100 us) global scheduler."""
    raw = {
        "name": "scale",
        "seed": 5,
        "cluster": {"nodes": nodes, "cpus_per_node": 8},
        "control_plane": {"global_scheduler_us": 100},
        "scheduler": {"policy": policy, "spillback_threshold": 64, "report_interval_ms": 10},
        "workload": {
            "kind": "independent",
            "tasks": 1500 * nodes,
            "drivers": nodes,
            "window": 12,
            "duration_ms": 1,
        },
        "output": {"progress": False},
    }
    return run_scenario(validate_scenario(raw))["throughput_tps"]


def test_bottom_up_scales_linearly_while_centralized_saturates() -> None:
    up = [scaling_throughput("bottom_up", n) for n in (2, 4, 8)]
    central = [scaling_throughput("centralized", n) for n in (2, 4, 8)]
    assert up[1] / up[0] == pytest.approx(2, rel=0.1)
    assert up[2] / up[0] == pytest.approx(4, rel=0.1)
    gs_rate = 1 / 100e-6  # one placement per global-scheduler service time
    assert central[2] <= 1.05 * gs_rate
    assert central[2] / central[0] < 1.5  # saturated: more nodes do not help
    assert up[2] > 3 * central[2]


def test_a_transfer_across_a_partition_starts_when_it_heals() -> None:
    host, recorder = transfer_host()
    host.partition(frozenset({1}), 0.5)
    (t,) = run_transfers(host, recorder, [(0, 1, 10_000_000)])
    assert t == pytest.approx(0.5 + 2 * LAT_US * 1e-6 + 10_000_000 / BW, rel=1e-9)


def test_a_transfer_from_a_node_that_dies_fails() -> None:
    from runtime.core.messages import TransferFailed

    host, recorder = transfer_host()
    out: list[Any] = [Transfer(1, 0, 1, 10_000_000)]
    host._execute(out, 10, 0.0)
    host.call_at(0.001, lambda: host.kill_node(0))
    host.run_while(lambda: not recorder.arrivals)
    ((t, msg),) = recorder.arrivals
    assert isinstance(msg, TransferFailed) and t == pytest.approx(0.001)
