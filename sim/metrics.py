"""Streaming, fixed-memory run metrics (histograms, counters, throughput) and JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

from runtime.core.placement import plain_name

SIGNIFICANT_DIGITS: Final = 9
"""Floats in summaries are rounded to this many significant digits (stable JSON)."""


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Round `x` to `digits` significant digits."""
    return float(f"{x:.{digits}g}")


class LogHistogram:
    """Log-bucketed histogram of non-negative values with bounded relative error.

    A value x > 0 falls in bucket i = ceil(log(x) / log(gamma)), gamma = (1+a)/(1-a),
    and is reported as 2 gamma^i / (gamma + 1), within relative error `a` of x (the
    DDSketch mapping). Values <= 0 share one bucket reported as 0. The counts of buckets
    ``lo`` .. ``lo + len - 1`` are a list (the span of the keys seen so far, grown at either
    end), so memory is bounded by the dynamic range: about 1,700 buckets span 1 ns to 10^6
    s at a = 1%. Exact count, sum, min and max are kept beside the buckets. Deterministic:
    no sampling.
    """

    __slots__ = (
        "count", "total", "min", "max", "_counts", "_lo", "_zeros", "_inv_log_gamma", "_gamma",
    )  # fmt: skip

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        """Create an empty histogram with the given relative accuracy (0 < a < 1)."""
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        self._counts: list[int] = []
        """Count of bucket ``_lo + i`` at index i (a list: cheaper than a dict per add)."""
        self._lo = 0
        self._zeros = 0
        """Values <= 0."""
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    @property
    def buckets(self) -> int:
        """How many bucket counters the histogram holds (its memory, in counters)."""
        return len(self._counts) + (1 if self._zeros else 0)

    def add(self, x: float) -> None:
        """Record one value, O(1) (amortised: the list grows when a new key is outside it)."""
        self.count += 1
        self.total += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if not x > 0.0:  # (a NaN too, as ever)
            self._zeros += 1
            return
        i = math.ceil(math.log(x) * self._inv_log_gamma) - self._lo
        counts = self._counts
        if 0 <= i < len(counts):
            counts[i] += 1
            return
        self._grow(i + self._lo)

    def _grow(self, key: int) -> None:
        """Count a value of bucket `key`, outside the span held: extend the span to it."""
        counts = self._counts
        if not counts:
            self._lo = key
            counts.append(1)
        elif key < self._lo:
            self._counts = [1] + [0] * (self._lo - key - 1) + counts
            self._lo = key
        else:
            counts.extend([0] * (key - self._lo - len(counts)))
            counts.append(1)

    @property
    def mean(self) -> float:
        """Exact arithmetic mean (nan when empty)."""
        return self.total / self.count if self.count else math.nan

    def _value(self, key: int) -> float:
        """Representative value of bucket `key` (> 0 values)."""
        return 2.0 * self._gamma**key / (self._gamma + 1.0)

    def percentile(self, p: float) -> float:
        """Approximate p-th percentile (0..100) of the recorded values (nan when empty).

        The value of rank round(p/100 * (count-1)) (0-based) in sorted order, within the
        relative accuracy, clamped to the exact [min, max]; ranks 0 and count-1 are exact.
        """
        if not self.count:
            return math.nan
        rank = round(p / 100.0 * (self.count - 1))
        if rank <= 0:
            return self.min
        if rank >= self.count - 1:
            return self.max
        seen = self._zeros
        if seen > rank:
            return min(max(0.0, self.min), self.max)
        for i, n in enumerate(self._counts):
            seen += n
            if seen > rank:
                return min(max(self._value(self._lo + i), self.min), self.max)
        return self.max

    def summary(self) -> dict[str, float | None]:
        """`{"mean", "p50", "p90", "p99", "max"}` rounded for stable JSON (None when empty)."""
        if not self.count:
            return dict.fromkeys(("mean", "p50", "p90", "p99", "max"))
        return {
            "mean": round_sig(self.mean),
            "p50": round_sig(self.percentile(50)),
            "p90": round_sig(self.percentile(90)),
            "p99": round_sig(self.percentile(99)),
            "max": round_sig(self.max),
        }


class ThroughputSeries:
    """Completions per fixed-width time bin; bins merge pairwise (width doubles) at the cap.

    Memory is `max_bins` counters whatever the makespan.
    """

    __slots__ = ("bin_s", "max_bins", "_counts", "_used")

    def __init__(self, bin_s: float = 1e-3, max_bins: int = 512) -> None:
        """Start with bins of `bin_s` seconds; keep at most `max_bins` (even, >= 2) bins."""
        if max_bins < 2 or max_bins % 2:
            raise ValueError("max_bins must be an even number >= 2")
        self.bin_s = bin_s
        self.max_bins = max_bins
        self._counts = [0] * max_bins
        self._used = 0

    def add(self, now: float, n: int = 1) -> None:
        """Count `n` completions at simulated time `now` (seconds, >= 0)."""
        index = int(now / self.bin_s)
        while index >= self.max_bins:
            self._merge()
            index = int(now / self.bin_s)
        self._counts[index] += n
        if index >= self._used:
            self._used = index + 1

    def _merge(self) -> None:
        """Double the bin width by summing neighbouring bins."""
        counts = self._counts
        half = self.max_bins // 2
        merged = [counts[2 * i] + counts[2 * i + 1] for i in range(half)]
        self._counts = merged + [0] * half
        self._used = (self._used + 1) // 2
        self.bin_s *= 2.0

    def summary(self) -> dict[str, Any]:
        """`{"bin_s", "counts"}` with trailing empty bins dropped."""
        return {"bin_s": round_sig(self.bin_s), "counts": self._counts[: self._used]}


class QueueSeries:
    """Control-plane queue lengths per fixed-width time bin, merged pairwise at the cap.

    Three series share one bin width: the largest backlog (messages waiting or in
    service) seen at the global scheduler and at the GCS in each bin, and the number of
    tasks queued across all raylets at the bin's last sample. Memory is fixed.
    """

    __slots__ = ("bin_s", "max_bins", "gs", "gcs", "raylet_tasks", "_used")

    def __init__(self, bin_s: float = 1e-3, max_bins: int = 512) -> None:
        """Start with bins of `bin_s` seconds; keep at most `max_bins` (even) bins."""
        self.bin_s = bin_s
        self.max_bins = max_bins
        self.gs = [0] * max_bins
        self.gcs = [0] * max_bins
        self.raylet_tasks = [0] * max_bins
        self._used = 0

    def _index(self, now: float) -> int:
        index = int(now / self.bin_s)
        while index >= self.max_bins:
            half = self.max_bins // 2
            for name in ("gs", "gcs"):
                old = getattr(self, name)
                merged = [max(old[2 * i], old[2 * i + 1]) for i in range(half)]
                setattr(self, name, merged + [0] * half)
            old = self.raylet_tasks
            self.raylet_tasks = [old[2 * i + 1] or old[2 * i] for i in range(half)] + [0] * half
            self._used = (self._used + 1) // 2
            self.bin_s *= 2.0
            index = int(now / self.bin_s)
        if index >= self._used:
            self._used = index + 1
        return index

    def backlog(self, gcs: bool, now: float, n: int) -> None:
        """The GCS's (else the global scheduler's) backlog was `n` messages at `now`."""
        index = int(now / self.bin_s)
        if index >= self._used:
            index = self._index(now)
        series = self.gcs if gcs else self.gs
        if n > series[index]:
            series[index] = n

    def sample_raylets(self, now: float, n: int) -> None:
        """`n` tasks were queued across all raylets at `now`."""
        index = self._index(now)  # may replace the lists (merge): index first
        self.raylet_tasks[index] = n

    def summary(self) -> dict[str, Any]:
        """`{"bin_s", "global_scheduler", "gcs", "raylet_tasks"}`."""
        used = self._used
        return {
            "bin_s": round_sig(self.bin_s),
            "global_scheduler": self.gs[:used],
            "gcs": self.gcs[:used],
            "raylet_tasks": self.raylet_tasks[:used],
        }


def recovery(
    series: ThroughputSeries, fault_s: float, start_s: float, threshold: float = 0.9
) -> dict[str, float | None]:
    """Throughput dip and recovery time after a fault at `fault_s`, from the series.

    The baseline is the mean rate of the whole bins between the workload's start and the
    fault; the dip is the lowest bin rate from the fault's bin until recovery; recovery
    is the start of the first bin after the fault's whose rate is back to `threshold` x
    baseline (None when it never is: the workload ended first).
    """
    width = series.bin_s
    counts = series._counts[: series._used]
    fault_bin = int(fault_s / width)
    first = int(math.ceil(start_s / width))
    before = counts[first:fault_bin]
    if before:
        baseline = sum(before) / (len(before) * width)
    else:
        baseline = sum(counts) / (max(1, len(counts)) * width)
    dip = math.inf
    recovered: float | None = None
    for i in range(fault_bin, len(counts)):
        rate = counts[i] / width
        if i > fault_bin and rate >= threshold * baseline:
            recovered = i * width - fault_s
            break
        dip = min(dip, rate)
    if dip is math.inf:
        dip = 0.0
    return {
        "baseline_tps": round_sig(baseline),
        "dip_throughput_tps": round_sig(dip),
        "recovery_s": None if recovered is None else round_sig(max(0.0, recovered)),
    }


class MetricsRecorder:
    """Collects per-event run metrics in O(1) time and fixed memory; see `summary`."""

    __slots__ = (
        "latency",
        "queue",
        "series",
        "started",
        "running",
        "peak_running",
        "busy_s",
        "spilled",
        "failed",
        "messages",
        "message_bytes",
        "transfers",
        "bytes_transferred",
        "node_busy",
        "last_shape",
        "last_cell",
        "queues",
        "bytes_series",
        "faults",
    )

    def __init__(self, relative_accuracy: float = 0.01, bin_s: float = 1e-3) -> None:
        """Create empty metrics; `bin_s` is the initial throughput bin width."""
        self.latency = LogHistogram(relative_accuracy)
        self.queue = LogHistogram(relative_accuracy)
        self.series = ThroughputSeries(bin_s)
        self.started = 0
        self.running = 0
        self.peak_running = 0
        self.busy_s = 0.0
        self.spilled = 0
        self.failed = 0
        self.messages = 0
        self.message_bytes = 0
        self.transfers = 0
        self.bytes_transferred = 0
        self.node_busy: list[dict[tuple[tuple[str, float], ...], list[float]]] = []
        """Per node: busy seconds of task bodies per resource shape, each in a one-item
        list (a cell the host adds to without hashing the shape; see `track_nodes`)."""
        self.last_shape: list[Any] = []
        """Per node: the shape last made busy there (the very tuple), and its cell in
        `last_cell`: a task of the same shape object adds to it with no dict lookup."""
        self.last_cell: list[list[float]] = []
        self.queues = QueueSeries(bin_s)
        self.bytes_series = ThroughputSeries(bin_s)
        self.faults: list[dict[str, Any]] = []

    def task_started(self, node: int, now: float) -> None:
        """A task began executing on `node` at `now`."""
        self.started += 1
        self.running += 1
        if self.running > self.peak_running:
            self.peak_running = self.running

    def task_finished(self, run_s: float, queue_s: float, node: int, now: float) -> None:
        """A task body ended on `node` at `now` after `run_s`, having waited `queue_s`."""
        self.running -= 1
        self.queue.add(queue_s)
        self.busy_s += run_s

    def task_done(self, latency_s: float, now: float) -> None:
        """The owner learned at `now` that a task succeeded, `latency_s` after submitting it."""
        self.latency.add(latency_s)
        self.series.add(now)

    def task_failed(self, now: float) -> None:
        """The owner learned at `now` that a task failed for good."""
        self.failed += 1

    def message(self, nbytes: int) -> None:
        """A control message of `nbytes` was sent."""
        self.messages += 1
        self.message_bytes += nbytes

    def transfer(self, nbytes: int, now: float = 0.0) -> None:
        """An object transfer of `nbytes` between nodes started at `now`."""
        self.transfers += 1
        self.bytes_transferred += nbytes
        if nbytes:
            self.bytes_series.add(now, nbytes)

    def track_nodes(self, nodes: int) -> None:
        """Record busy time on `nodes` nodes (0 .. nodes - 1), none so far."""
        self.node_busy = [{} for _ in range(nodes)]
        self.last_shape = [None] * nodes
        self.last_cell = [[0.0] for _ in range(nodes)]

    def busy(self, node: int, shape: tuple[tuple[str, float], ...], run_s: float) -> None:
        """A task body of resource `shape` kept `node` busy for `run_s` seconds."""
        if self.last_shape[node] is shape:
            cell = self.last_cell[node]
        else:
            cell = self.busy_cell(node, shape)
        cell[0] += run_s

    def busy_cell(self, node: int, shape: tuple[tuple[str, float], ...]) -> list[float]:
        """The cell of `node`'s busy seconds for `shape` (made at 0.0 the first time); it
        becomes the node's last one."""
        acc = self.node_busy[node]
        cell = acc.get(shape)
        if cell is None:
            cell = acc[shape] = [0.0]
        self.last_shape[node] = shape
        self.last_cell[node] = cell
        return cell

    def fault(self, now: float, kind: str, target: Any) -> None:
        """A fault was injected at `now`."""
        self.faults.append({"time_s": round_sig(now), "kind": kind, "target": target})

    def utilization(
        self, makespan_s: float, capacity: list[dict[str, float]]
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Cluster-wide and per-node busy fraction of each resource over the makespan.

        `capacity[node]` is the node's resources. Busy time counts task bodies (and actor
        method calls, against what their actor holds).
        """
        names = sorted({name for res in capacity for name in res})
        per_node: dict[str, list[float]] = {name: [] for name in names}
        busy_total = dict.fromkeys(names, 0.0)
        cap_total = dict.fromkeys(names, 0.0)
        for node, res in enumerate(capacity):
            acc = self.node_busy[node] if node < len(self.node_busy) else {}
            used = dict.fromkeys(names, 0.0)
            for shape in sorted(acc):
                for name, amount in shape:
                    if name not in used and "_group_" in name:
                        name = plain_name(name)  # a bundle's resource counts as its own
                    if name in used:
                        used[name] += amount * acc[shape][0]
            for name in names:
                cap = res.get(name, 0.0) * makespan_s
                busy_total[name] += used[name]
                cap_total[name] += cap
                per_node[name].append(round_sig(min(1.0, used[name] / cap)) if cap > 0 else 0.0)
        overall = {
            name: round_sig(min(1.0, busy_total[name] / cap_total[name]))
            if cap_total[name] > 0
            else 0.0
            for name in names
        }
        return overall, per_node

    def spill(self) -> None:
        """A task was spilled from its local scheduler to the global scheduler."""
        self.spilled += 1

    def summary(self, makespan_s: float, total_slots: int) -> dict[str, Any]:
        """The shared metrics schema, floats rounded for byte-stable JSON.

        `total_slots` is the number of CPU slots in the cluster; utilisation is busy slot
        time over `makespan_s * total_slots`.
        """
        tasks = self.latency.count
        capacity = makespan_s * total_slots
        return {
            "tasks": tasks,
            "makespan_s": round_sig(makespan_s),
            "throughput_tps": round_sig(tasks / makespan_s) if makespan_s > 0 else 0.0,
            "latency_s": self.latency.summary(),
            "queue_s": self.queue.summary(),
            "cpu_utilization": round_sig(self.busy_s / capacity) if capacity > 0 else 0.0,
            "spilled_tasks": self.spilled,
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "transfers": self.transfers,
            "bytes_transferred": self.bytes_transferred,
            "throughput_series": self.series.summary(),
            "queues": self.queues.summary(),
            "bytes_series": {
                "bin_s": round_sig(self.bytes_series.bin_s),
                "bytes": self.bytes_series.summary()["counts"],
            },
        }


def wait_summary(seconds: dict[str, float], tasks: int) -> dict[str, dict[str, float]]:
    """Per wait cause: total simulated seconds, share of all waiting, mean per finished task."""
    total = sum(seconds.values())
    return {
        cause: {
            "seconds": round_sig(value),
            "share": round_sig(value / total) if total > 0 else 0.0,
            "per_task_s": round_sig(value / tasks) if tasks else 0.0,
        }
        for cause, value in seconds.items()
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write `data` as sorted, indented JSON (parent directories created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return path
