"""The serving workload: decisions are the core router's and batcher's, metrics, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.core.serve import ASSIGNED, Batcher, PowerOfTwoChoicesRouter
from sim.runner import _rng, build
from sim.scenario import ScenarioError, load_scenario, validate_scenario
from sim.serving import ServingDriver

ROOT = Path(__file__).resolve().parents[2]


def _scenario(**workload: Any) -> dict[str, Any]:
    wl: dict[str, Any] = {
        "kind": "serving",
        "requests": 300,
        "arrivals": {"process": "poisson", "rate_rps": 800},
        "proxy_overhead_ms": 0.1,
        "deployments": [
            {
                "name": "M",
                "num_replicas": 3,
                "max_ongoing_requests": 4,
                "max_queued_requests": 20,
                "max_batch_size": 4,
                "batch_wait_timeout_s": 0.002,
                "latency_fixed_ms": 2,
                "latency_per_item_ms": {"dist": "exponential", "mean": 0.5},
            }
        ],
    }
    wl.update(workload)
    return {"name": "t", "seed": 3, "cluster": {"nodes": 2, "cpus_per_node": 4}, "workload": wl}


def _run(raw: dict[str, Any], record: bool = False) -> tuple[dict[str, Any], ServingDriver]:
    sim = build(validate_scenario(raw))
    driver = sim.drivers[0]
    assert isinstance(driver, ServingDriver)
    driver.record = record
    return sim.run(), driver


def _replay(raw: dict[str, Any], decisions: list[tuple[Any, ...]]) -> None:
    """Feed the recorded arrivals, completions and timer polls to fresh core objects."""
    dep = raw["workload"]["deployments"][0]
    router = PowerOfTwoChoicesRouter(
        _rng(raw["seed"], f"serve:{dep['name']}:router"),
        dep["max_ongoing_requests"],
        dep["max_queued_requests"],
    )
    names = [f"{dep['name']}#{i}" for i in range(dep["num_replicas"])]
    router.update_replicas(names)
    batchers = {n: Batcher(dep["max_batch_size"], dep["batch_wait_timeout_s"], 1) for n in names}
    started: dict[str, list[tuple[int, list[Any]]]] = {n: [] for n in names}
    assigned: list[tuple[Any, str]] = []
    items: dict[tuple[str, int], list[Any]] = {}

    def add(replica: str, request: Any, t: float) -> None:
        started[replica] += [(b.batch_id, list(b.items)) for b in batchers[replica].add(request, t)]

    for event in decisions:
        kind, t = event[0], event[1]
        if kind == "route":
            _, _, request, _, outcome, replica = event
            d = router.route(request)
            assert (d.outcome, d.replica_id) == (outcome, replica)
            if d.outcome == ASSIGNED:
                add(replica, request, t)
        elif kind == "assign":
            _, _, request, _, replica = event
            assert assigned.pop(0) == (request, replica)
            add(replica, request, t)
        elif kind == "batch":
            _, _, replica, batch_id, reqs = event
            if not started[replica]:  # started by the batch timer
                started[replica] += [(b.batch_id, list(b.items)) for b in batchers[replica].poll(t)]
            assert started[replica].pop(0) == (batch_id, reqs)
            items[(replica, batch_id)] = reqs
        else:
            _, _, replica, batch_id = event
            fin = batchers[replica].finished(batch_id, t)
            started[replica] += [(b.batch_id, list(b.items)) for b in fin]
            for _ in items.pop((replica, batch_id)):
                assigned += [(a.request_id, a.replica_id) for a in router.release(replica)]
    assert not assigned and not any(started.values())


def test_decisions_equal_the_core_router_and_batcher_on_the_same_arrivals() -> None:
    raw = _scenario(arrivals={"process": "poisson", "rate_rps": 4000})
    metrics, driver = _run(raw, record=True)
    kinds = {e[0] for e in driver.decisions}
    assert kinds == {"route", "assign", "batch", "done"}, "the run exercises queueing too"
    _replay(raw, driver.decisions)
    assert metrics["serving"]["completed"] + metrics["serving"]["rejected"] == 300


def test_metrics_shape_and_accounting() -> None:
    metrics, _ = _run(_scenario())
    s = metrics["serving"]
    assert set(s) >= {
        "requests",
        "completed",
        "rejected",
        "throughput_rps",
        "latency_s",
        "batch_size_histogram",
        "deployments",
    }
    assert set(s["latency_s"]) == {"mean", "p50", "p95", "p99", "max"}
    assert s["latency_s"]["p50"] <= s["latency_s"]["p95"] <= s["latency_s"]["p99"]
    dep = s["deployments"]["M"]
    assert len(dep["replica_utilization"]) == 3
    assert all(0 < u <= 1 for u in dep["replica_utilization"])
    sizes = {int(k): v for k, v in s["batch_size_histogram"].items()}
    assert max(sizes) <= 4
    assert sum(k * v for k, v in sizes.items()) == s["completed"]
    assert metrics["tasks"] == s["completed"]


def test_the_proxy_queue_bound_rejects_with_503s() -> None:
    raw = _scenario(arrivals={"process": "bursts", "burst_size": 60, "interval_s": 0.5})
    raw["workload"].update(requests=120, proxy_overhead_ms=0)
    s = _run(raw)[0]["serving"]
    # each burst, routed at one instant: 3 replicas x 4 ongoing placed, 20 queued, the other 28 rejected
    assert s["rejected"] == 2 * (60 - 12 - 20)
    assert s["completed"] == 120 - s["rejected"]


def test_batches_wait_for_the_timeout_then_start() -> None:
    raw = _scenario(arrivals={"process": "bursts", "burst_size": 3, "interval_s": 0.1})
    dep = raw["workload"]["deployments"][0]
    dep.update(num_replicas=1, max_batch_size=8, batch_wait_timeout_s=0.01, latency_per_item_ms=0)
    raw["workload"].update(requests=30, proxy_overhead_ms=0)
    s = _run(raw)[0]["serving"]
    assert s["batch_size_histogram"] == {"3": 10}
    # 10 ms batch wait + 2 ms model time, plus the owner's call overheads
    assert 0.012 <= s["latency_s"]["p50"] < 0.013


def test_trace_arrivals_and_gpu_replicas(tmp_path: Path) -> None:
    trace = tmp_path / "arrivals.txt"
    trace.write_text("# seconds\n" + "\n".join(str(0.001 * i) for i in range(50)) + "\n")
    raw = _scenario(arrivals={"process": "trace", "file": str(trace)})
    raw["workload"]["requests"] = 50
    raw["workload"]["deployments"][0].update(num_cpus=0, num_gpus=1, num_replicas=2)
    raw["cluster"] = {
        "groups": [
            {"name": "cpu", "count": 1, "cpus": 4},
            {"name": "gpu", "count": 1, "cpus": 4, "gpus": 2},
        ]
    }
    sim = build(validate_scenario(raw))
    s = sim.run()["serving"]
    assert s["completed"] == 50
    assert s["duration_s"] >= 0.049


def test_same_seed_same_metrics() -> None:
    a = json.dumps(_run(_scenario())[0], sort_keys=True)
    b = json.dumps(_run(_scenario())[0], sort_keys=True)
    assert a == b


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drivers": 2}, "one proxy"),
        ({"arrivals": {"process": "trace", "file": "/nonexistent/trace.txt"}}, "arrivals.file"),
        ({"arrivals": {"process": "poisson", "rate_rps": 0}}, "rate_rps"),
    ],
)
def test_bad_serving_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(_scenario(**change))


def test_shipped_serving_scenarios_load() -> None:
    for name in ("serving.yaml", "serving_scaling.yaml"):
        scenario = load_scenario(ROOT / "scenarios" / name)
        assert scenario.workload.kind == "serving"
