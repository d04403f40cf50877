"""The object-store put cost model and the ``puts`` workload's driver (the paper's Fig. 9)."""

from __future__ import annotations

import random
from typing import Any

from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.puts_program import PutsProgram
from sim.scenario import ObjectStoreSpec, PutsWorkload
from sim.workloads import Completion, _DriverBase


def put_seconds(store: ObjectStoreSpec, nbytes: int, threads: int) -> float:
    """Seconds one put of `nbytes` takes on the program's side under the `store` model.

    The fixed overhead plus the copy: objects of at least ``threads_min_bytes`` are copied
    by `threads` threads (``copy_gbps`` each, at most ``memory_gbps`` together), smaller
    ones by one thread.
    """
    copiers = threads if nbytes >= store.threads_min_bytes else 1
    bandwidth = store.copy_gbps * 1e9 * copiers
    if store.memory_gbps > 0:
        bandwidth = min(bandwidth, store.memory_gbps * 1e9) if bandwidth > 0 else 0.0
    copy = nbytes / bandwidth if bandwidth > 0 else 0.0
    return store.put_overhead_us * 1e-6 + copy


class PutDriver(_DriverBase):
    """Puts `puts` objects one after the other, as one program thread calling ``ray.put``.

    Each put first costs ``put_seconds`` of the program's time (serialize, copy into the
    store), then one owner call registers the object (the store pins it) and drops the
    reference; the next put starts when that call is done. A put is recorded as a
    finished task at that moment, ``latency`` being the whole put. What is put is
    `sim.puts_program.PutsProgram`'s (the description every engine runs).
    """

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: PutsWorkload,
        rng: random.Random,
        puts: int,
        store: ObjectStoreSpec,
    ) -> None:
        """A driver putting `puts` objects of ``spec.object_bytes`` under the `store` model."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self.program = PutsProgram(spec, puts)
        self.size = spec.object_bytes
        self.put_s = put_seconds(store, spec.object_bytes, spec.threads)
        self._started = 0.0
        self._register_fn = self._register

    def start(self) -> None:
        """Begin the first put now."""
        self._next(self.host.now)

    def _next(self, at: float) -> None:
        size = self.program.next_put()
        if size is None:
            return
        self.size = size
        self._started = at
        self.host.call_at(at + self.put_s, self._copied)

    def _copied(self) -> None:
        done = self.host.serve_call(self.owner.addr, self._register_fn)
        self.metrics.task_done(done - self._started, done)
        self.completion.task_ended(done)
        self._next(done)

    def _register(self, now: float, out: list[Any]) -> None:
        owner = self.owner
        oid = owner.put(self.size, None, True, now, out)
        owner.remove_ref(oid, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        """Puts resolve no futures: nothing to do."""
