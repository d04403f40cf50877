"""Tests for streaming histograms, throughput series, recorder summary and JSON output."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from sim.metrics import LogHistogram, MetricsRecorder, ThroughputSeries, round_sig, write_json


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_percentiles_match_numpy_within_precision(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-7.0, 1.5) for _ in range(20_000)]
    hist = LogHistogram(0.01)
    for v in values:
        hist.add(v)
    assert hist.count == len(values)
    assert math.isclose(hist.mean, float(np.mean(values)), rel_tol=1e-9)
    assert hist.min == min(values) and hist.max == max(values)
    for p in (1, 10, 50, 90, 99, 99.9):
        assert math.isclose(hist.percentile(p), float(np.percentile(values, p)), rel_tol=0.02)
    assert hist.percentile(100) == max(values)
    assert hist.percentile(0) == min(values)


def test_histogram_handles_zero_and_empty() -> None:
    hist = LogHistogram()
    assert math.isnan(hist.percentile(50))
    assert hist.summary()["p50"] is None
    for v in (0.0, 0.0, 0.0, 5.0):
        hist.add(v)
    assert hist.percentile(50) == 0.0
    assert math.isclose(hist.percentile(100), 5.0)


def test_histogram_memory_is_bounded_by_dynamic_range() -> None:
    hist = LogHistogram(0.01)
    rng = random.Random(0)
    for _ in range(50_000):
        hist.add(rng.uniform(1e-3, 1e-2))
    assert hist.buckets < 130  # ln(10) / ln(1.0202) ~ 115


def test_histogram_percentiles_match_a_sorted_reference_across_decades() -> None:
    """Keys arrive below, inside and above the span held (the list grows at both ends):
    every percentile is the bucket value of the exact order statistic, clamped."""
    hist = LogHistogram(0.01)
    rng = random.Random(7)
    values = [0.0] * 5 + [10 ** rng.uniform(-6, 3) for _ in range(5_000)]
    rng.shuffle(values)
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    gamma = (1.0 + 0.01) / (1.0 - 0.01)
    for p in (1, 10, 50, 90, 99, 99.9):
        exact = ordered[round(p / 100 * (len(values) - 1))]
        key = math.ceil(math.log(exact) * (1.0 / math.log(gamma))) if exact > 0 else None
        want = 0.0 if key is None else 2 * gamma**key / (gamma + 1)
        assert math.isclose(hist.percentile(p), min(max(want, ordered[0]), ordered[-1]))
    assert hist.count == len(values) and hist.buckets <= 1 + math.ceil(9 / math.log10(gamma)) + 1


def test_throughput_series_merges_bins_at_cap() -> None:
    series = ThroughputSeries(bin_s=1.0, max_bins=4)
    for t in (0.5, 1.5, 2.5, 3.5):
        series.add(t)
    assert series.summary() == {"bin_s": 1.0, "counts": [1, 1, 1, 1]}
    series.add(4.5)
    assert series.summary() == {"bin_s": 2.0, "counts": [2, 2, 1]}
    series.add(100.0)
    summary = series.summary()
    assert summary["bin_s"] == 32.0
    assert sum(summary["counts"]) == 6
    assert len(series._counts) == 4


def test_recorder_summary_schema_and_values() -> None:
    rec = MetricsRecorder()
    for i in range(10):
        rec.task_started(node=i % 2, now=i * 0.1)
        rec.task_finished(run_s=0.01, queue_s=0.001, node=i % 2, now=i * 0.1)
        rec.task_done(latency_s=0.02, now=i * 0.1)
    rec.task_failed(now=1.0)
    rec.message(100)
    rec.message(50)
    rec.transfer(1000)
    rec.spill()
    summary = rec.summary(makespan_s=1.0, total_slots=2)
    assert set(summary) == {
        "tasks",
        "makespan_s",
        "throughput_tps",
        "latency_s",
        "queue_s",
        "cpu_utilization",
        "spilled_tasks",
        "messages",
        "message_bytes",
        "transfers",
        "bytes_transferred",
        "throughput_series",
        "queues",
        "bytes_series",
    }
    assert summary["tasks"] == 10
    assert summary["throughput_tps"] == 10.0
    assert set(summary["latency_s"]) == {"mean", "p50", "p90", "p99", "max"}
    assert math.isclose(summary["latency_s"]["p50"], 0.02, rel_tol=0.01)
    assert summary["cpu_utilization"] == 0.05
    assert (summary["messages"], summary["message_bytes"]) == (2, 150)
    assert (summary["transfers"], summary["bytes_transferred"]) == (1, 1000)
    assert summary["spilled_tasks"] == 1
    assert sum(summary["throughput_series"]["counts"]) == 10
    assert rec.peak_running == 1
    assert rec.running == 0
    assert rec.failed == 1


def test_round_sig() -> None:
    assert round_sig(1.23456789012345) == 1.23456789
    assert round_sig(0.1 + 0.2) == 0.3


def test_write_json_is_sorted_and_stable(tmp_path: Path) -> None:
    data = {"b": 1, "a": {"y": 2.5, "x": [1, 2]}}
    first = write_json(tmp_path / "out" / "m.json", data).read_bytes()
    second = write_json(tmp_path / "out" / "m2.json", dict(reversed(data.items()))).read_bytes()
    assert first == second
    assert json.loads(first) == data
    assert first.index(b'"a"') < first.index(b'"b"')


def test_queue_series_keeps_bin_maxima_and_merges_at_the_cap() -> None:
    from sim.metrics import QueueSeries

    q = QueueSeries(bin_s=1.0, max_bins=4)
    q.backlog(False, 0.5, 3)
    q.backlog(False, 0.7, 2)
    q.backlog(True, 1.5, 7)
    q.sample_raylets(1.9, 5)
    assert q.summary() == {
        "bin_s": 1.0,
        "global_scheduler": [3, 0],
        "gcs": [0, 7],
        "raylet_tasks": [0, 5],
    }
    q.sample_raylets(4.5, 9)  # beyond 4 bins: width doubles, maxima and last samples kept
    summary = q.summary()
    assert summary["bin_s"] == 2.0
    assert summary["global_scheduler"][0] == 3 and summary["gcs"][0] == 7
    assert summary["raylet_tasks"] == [5, 0, 9]


def test_recovery_measures_the_dip_and_the_time_back_to_baseline() -> None:
    from sim.metrics import recovery

    series = ThroughputSeries(bin_s=1.0, max_bins=16)
    for second, n in enumerate([10, 10, 10, 10, 2, 4, 9, 10, 10]):
        series.add(second + 0.5, n)
    result = recovery(series, fault_s=4.0, start_s=0.0)
    assert result == {"baseline_tps": 10.0, "dip_throughput_tps": 2.0, "recovery_s": 2.0}
    never = ThroughputSeries(bin_s=1.0, max_bins=16)
    for second, n in enumerate([10, 10, 1, 1]):
        never.add(second + 0.5, n)
    assert recovery(never, fault_s=2.0, start_s=0.0)["recovery_s"] is None


def test_utilization_per_resource_and_node() -> None:
    rec = MetricsRecorder()
    rec.track_nodes(2)
    rec.busy(0, (("CPU", 1.0),), 2.0)
    rec.busy(1, (("CPU", 2.0), ("GPU", 1.0)), 1.0)
    overall, per_node = rec.utilization(2.0, [{"CPU": 2.0}, {"CPU": 2.0, "GPU": 1.0}])
    assert overall == {"CPU": 0.5, "GPU": 0.5}
    assert per_node == {"CPU": [0.5, 0.5], "GPU": [0.0, 0.5]}
