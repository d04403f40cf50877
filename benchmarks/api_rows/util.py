"""Microbenchmark rows for `ray.util`: ActorPool map throughput and Queue put+get round trips."""

from __future__ import annotations

import importlib
import time
from typing import Any

from benchmarks.api_rows import ray_api
from benchmarks.rowkit import HIGHER, Result, Row

__all__ = ["GROUPS", "ROWS"]

ROWS: tuple[Row, ...] = (
    Row("actor_pool_map", "ActorPool map ({batch} items, num_cpus actors)", "items/s", HIGHER),
    Row("queue_put_get", "Queue put+get (one item at a time)", "items/s", HIGHER),
)

_GET_TIMEOUT = 300.0


class PoolWorker:
    """The pool's actor: one cheap method."""

    def double(self, v: int) -> int:
        """Twice `v`."""
        return 2 * v


def _double(actor: Any, v: int) -> Any:
    return actor.double.remote(v)


def _until(budget: float, min_reps: int, step: Any) -> tuple[int, float]:
    """Call `step` until `min_reps` calls and `budget` s have passed; return (calls, seconds)."""
    reps = 0
    start = time.perf_counter()
    while True:
        step()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= min_reps and elapsed >= budget:
            return reps, elapsed


def row_actor_pool(system: Any, p: Any, num_cpus: int) -> Result:
    """`ActorPool(num_cpus actors).map(double, range(batch))`, consumed in full; repeat."""
    api = ray_api(system)
    pool_cls = importlib.import_module(f"{api.__name__}.util.actor_pool").ActorPool
    actors = [api.remote(PoolWorker).remote() for _ in range(max(1, num_cpus))]
    api.get([a.double.remote(0) for a in actors], timeout=_GET_TIMEOUT)
    pool = pool_cls(actors)
    items = list(range(p.batch))
    expected = 2 * sum(items)

    def step() -> None:
        if sum(pool.map(_double, items)) != expected:
            raise RuntimeError("ActorPool.map returned wrong results")

    step()  # warm-up
    reps, elapsed = _until(p.budget, 1, step)
    return {"actor_pool_map": (reps * len(items) / elapsed, "")}


def row_queue(system: Any, p: Any, num_cpus: int) -> Result:
    """`q.put(i); q.get()` from the driver on one Queue, one item at a time."""
    api = ray_api(system)
    queue_cls = importlib.import_module(f"{api.__name__}.util.queue").Queue
    q = queue_cls()
    try:
        for i in range(5):
            q.put(i)
            q.get(timeout=_GET_TIMEOUT)
        counter = iter(range(1 << 62))

        def step() -> None:
            i = next(counter)
            q.put(i)
            if q.get(timeout=_GET_TIMEOUT) != i:
                raise RuntimeError("Queue returned the wrong item")

        reps, elapsed = _until(p.budget, p.min_ops, step)
    finally:
        q.shutdown()
    return {"queue_put_get": (reps / elapsed, "")}


GROUPS = (
    (row_actor_pool, ("actor_pool_map",)),
    (row_queue, ("queue_put_get",)),
)
