"""The GCS memory model: task-table bytes, a capacity that stalls the GCS, flushing to disk.

What is evicted from the in-memory task table is the core GCS's decision
(``runtime.core.gcs``: with a bounded table it evicts the least recently updated
records); this model only prices it: ``record_bytes`` per record held, evicted records
stay in memory until written to disk at ``flush_mbps``, and while memory exceeds the
capacity the GCS (every shard) serves nothing.

The host runs a component's handler when a message arrives (dated when its service
would end), so the core's table also holds the records of task events still waiting
for a stalled GCS; the model reports memory up to the capacity and the rest as
``waiting_records`` (task events queued for the GCS, not in its memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.metrics import round_sig
from sim.scenario import GcsMemorySpec


@dataclass
class GcsMemoryModel:
    """Samples the GCS task table every ``sample_ms`` and applies the memory model."""

    spec: GcsMemorySpec
    host: Any
    shards: list[Any]
    started_at: float = 0.0
    pending_records: float = 0.0
    """Evicted records not yet written to disk (still in memory)."""
    written_records: float = 0.0
    stalled_s: float = 0.0
    full_at: float | None = None
    """When memory first exceeded the capacity (seconds after the workload's start)."""
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(time s after start, memory MB, records waiting for the stalled GCS)."""
    _evicted_seen: int = 0
    _last: float = 0.0

    def start(self, at: float) -> None:
        """Take the first sample at `at` (the workload's start)."""
        self.started_at = self._last = at
        self.host.call_at(at, self._sample)

    def memory_bytes(self) -> float:
        """Bytes the task table holds now, in the table and waiting to be flushed."""
        records = sum(len(g.tasks) for g in self.shards)
        return (records + self.pending_records) * self.spec.record_bytes

    def _sample(self) -> None:
        host, spec = self.host, self.spec
        now = host.now
        evicted = sum(g.tasks_dropped for g in self.shards)
        self.pending_records += evicted - self._evicted_seen
        self._evicted_seen = evicted
        rate = spec.flush_mbps * 1e6 / spec.record_bytes  # records written per second
        written = min(self.pending_records, rate * (now - self._last))
        self.pending_records -= written
        self.written_records += written
        self._last = now
        memory = self.memory_bytes()
        capacity = spec.capacity_mb * 1e6
        waiting = int(max(0.0, memory - capacity) / spec.record_bytes)
        self.samples.append((now - self.started_at, min(memory, capacity) / 1e6, waiting))
        step = spec.sample_ms * 1e-3
        if memory > capacity:
            if self.full_at is None:
                self.full_at = now - self.started_at
            for shard in self.shards:
                host.stall(shard.addr, step)
            self.stalled_s += step
        if not host.stopped:
            host.call_at(now + step, self._sample)

    def summary(self) -> dict[str, Any]:
        """The model's results for ``metrics["gcs_memory"]``."""
        peak = max((m for _, m, _ in self.samples), default=0.0)
        return {
            "flush": self.spec.flush,
            "capacity_mb": self.spec.capacity_mb,
            "peak_mb": round_sig(peak),
            "full_at_s": None if self.full_at is None else round_sig(self.full_at),
            "stalled_s": round_sig(self.stalled_s),
            "records_flushed": int(self.written_records),
            "series": {
                "time_s": [round_sig(t) for t, _, _ in self.samples],
                "memory_mb": [round_sig(m) for _, m, _ in self.samples],
                "waiting_records": [w for _, _, w in self.samples],
            },
        }
