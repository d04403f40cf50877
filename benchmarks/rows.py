"""The microbenchmark's rows: the table's entries, the sizes of a run, and the code that measures each row.

A row group is a function ``(system, params, num_cpus) -> Result`` measuring one or more
rows (keys of `ROWS`) with a `benchmarks.systems.System`'s primitive operations;
`ROW_GROUPS` lists them in execution order (with the wider-API rows of `benchmarks.api_rows`).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.api_rows import collect as _collect_api_rows
from benchmarks.rowkit import HIGHER, LOWER, Result, Row, Unsupported
from benchmarks.systems import GET_TIMEOUT, System, chain_step, nn_caller, noop, sleep_1ms

__all__ = ["MODES", "ROWS", "ROW_GROUPS", "ROW_KEYS", "Params"]


ROWS: tuple[Row, ...] = (
    Row("tasks_sync", "single-client tasks sync", "tasks/s", HIGHER),
    Row("tasks_async", "single-client tasks async (batches of {batch})", "tasks/s", HIGHER),
    Row("task_latency_p50", "single-task latency p50 (sync round trip)", "us", LOWER),
    Row("actor_sync", "1:1 actor calls sync", "calls/s", HIGHER),
    Row("actor_async", "1:1 actor calls async ({batch} in flight)", "calls/s", HIGHER),
    Row("actor_nn_async", "n:n actor calls async (n = num_cpus)", "calls/s", HIGHER),
    Row("put_small", "put small objects", "ops/s", HIGHER),
    Row("get_small", "get small objects", "ops/s", HIGHER),
    Row("put_large", "put {large_mib} MiB numpy array", "GB/s", HIGHER),
    Row("get_large", "get {large_mib} MiB numpy array", "GB/s", HIGHER),
    Row("get_large_ms", "get {large_mib} MiB numpy array (time)", "ms", LOWER),
    Row("wait_refs", "wait on {wait_refs} ready refs", "ms", LOWER),
    Row("chain", "{chain}-task dependency chain", "tasks/s", HIGHER),
    Row("sleep_wall", "{sleep_tasks} 1-ms tasks on all cores: wall", "s", LOWER),
    Row("sleep_efficiency", "{sleep_tasks} 1-ms tasks: efficiency vs ideal", "%", HIGHER),
    Row("init_ms", "init() in a fresh process", "ms", LOWER),
)
_API_ROWS, _API_GROUPS = _collect_api_rows()
ROWS = ROWS[:-1] + _API_ROWS + ROWS[-1:]  # init_ms stays last
ROW_KEYS = tuple(row.key for row in ROWS)


@dataclass(frozen=True)
class Params:
    """Sizes of one run; time-bounded rows loop until `budget` s and `min_ops` ops have passed."""

    mode: str
    budget: float
    min_ops: int
    batch: int
    chain: int
    wait_refs: int
    sleep_tasks: int
    large_mib: int
    max_large_reps: int
    child_timeout: float


MODES: dict[str, Params] = {
    "full": Params("full", 1.5, 50, 1000, 1000, 1000, 10_000, 100, 5, 1200.0),
    "quick": Params("quick", 0.25, 20, 1000, 1000, 1000, 1000, 100, 2, 300.0),
    "smoke": Params("smoke", 0.0, 20, 20, 20, 20, 20, 1, 1, 120.0),
}


def _until(p: Params, min_reps: int, step: Callable[[], Any]) -> tuple[int, float]:
    """Call `step` until `min_reps` calls and `p.budget` s have passed; return (calls, seconds)."""
    reps = 0
    start = time.perf_counter()
    while True:
        step()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= min_reps and elapsed >= p.budget:
            return reps, elapsed


def row_tasks_sync(s: System, p: Params, n: int) -> Result:
    """Rows 1 and 3: submit + get one no-op task at a time; rate and p50 round trip."""
    for _ in range(5):
        s.get(s.submit(noop))
    latencies: list[float] = []

    def step() -> None:
        t = time.perf_counter()
        s.get(s.submit(noop))
        latencies.append(time.perf_counter() - t)

    reps, elapsed = _until(p, p.min_ops, step)
    return {
        "tasks_sync": (reps / elapsed, ""),
        "task_latency_p50": (statistics.median(latencies) * 1e6, ""),
    }


def row_tasks_async(s: System, p: Params, n: int) -> Result:
    """Row 2: submit `batch` no-op tasks, get them all; repeat."""
    s.get_many([s.submit(noop) for _ in range(min(p.batch, 100))])
    reps, elapsed = _until(p, 1, lambda: s.get_many([s.submit(noop) for _ in range(p.batch)]))
    return {"tasks_async": (reps * p.batch / elapsed, "")}


def row_actor(s: System, p: Params, n: int) -> Result:
    """Rows 4 and 5: calls on one actor, one at a time and `batch` in flight."""
    actor = s.make_actor()
    for _ in range(5):
        s.get_calls([s.call(actor)])
    sync_reps, sync_elapsed = _until(p, p.min_ops, lambda: s.get_calls([s.call(actor)]))
    async_reps, async_elapsed = _until(
        p, 1, lambda: s.get_calls([s.call(actor) for _ in range(p.batch)])
    )
    return {
        "actor_sync": (sync_reps / sync_elapsed, ""),
        "actor_async": (async_reps * p.batch / async_elapsed, ""),
    }


def row_actor_nn(s: System, p: Params, n: int) -> Result:
    """Row 6: n callers, each driving its own actor; from tasks when nested calls work."""
    actors = [s.make_actor() for _ in range(n)]
    if s.nested_ok(actors[0]):
        mode = "tasks"
        start = time.perf_counter()
        counts = s.nn_from_tasks(actors, p.budget, p.batch)
    else:
        mode = "threads"
        counts = [0] * n
        errors: list[BaseException] = []

        def drive(i: int) -> None:
            try:
                counts[i] = nn_caller(s.name, actors[i], p.budget, p.batch, GET_TIMEOUT)
            except BaseException as e:  # re-raised in the driver below
                errors.append(e)

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(n)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    elapsed = time.perf_counter() - start
    return {"actor_nn_async": (sum(counts) / elapsed, mode)}


def row_small_objects(s: System, p: Params, n: int) -> Result:
    """Row 7: put a 100-byte object (dropped at once); get one stored small object."""
    value = b"x" * 100
    s.put(value)
    put_reps, put_elapsed = _until(p, p.min_ops, lambda: s.put(value))
    ref = s.put(value)
    if s.get(ref) != value:
        raise RuntimeError("get returned a different value")
    get_reps, get_elapsed = _until(p, p.min_ops, lambda: s.get(ref))
    return {
        "put_small": (put_reps / put_elapsed, ""),
        "get_small": (get_reps / get_elapsed, ""),
    }


def row_large_object(s: System, p: Params, n: int) -> Result:
    """Row 8: put and get of a numpy array (after one warm-up); a read-only get is zero-copy."""
    import numpy as np

    array = np.ones((p.large_mib << 20) // 8)
    ref = s.put(array)
    value = s.get(ref)
    del value, ref
    put_times: list[float] = []
    get_times: list[float] = []
    read_only = True
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        ref = s.put(array)
        put_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        value = s.get(ref)
        get_times.append(time.perf_counter() - t)
        if value.shape != array.shape or value[-1] != 1.0:
            raise RuntimeError("get returned a different array")
        read_only = read_only and not value.flags.writeable
        del value, ref
        if len(put_times) >= p.max_large_reps or time.perf_counter() - start >= p.budget:
            break
    get_s = statistics.median(get_times)
    note = "zero-copy" if read_only else "copy"
    return {
        "put_large": (array.nbytes / statistics.median(put_times) / 1e9, ""),
        "get_large": (array.nbytes / get_s / 1e9, note),
        "get_large_ms": (get_s * 1e3, note),
    }


def row_wait(s: System, p: Params, n: int) -> Result:
    """Row 9: wait on `wait_refs` refs of finished no-op tasks (the cost of wait itself)."""
    refs = [s.submit(noop) for _ in range(p.wait_refs)]
    s.wait_all(refs)
    s.get_many(refs)
    times: list[float] = []

    def step() -> None:
        t = time.perf_counter()
        s.wait_all(refs)
        times.append(time.perf_counter() - t)

    _until(p, 3, step)
    return {"wait_refs": (statistics.median(times) * 1e3, "")}


def row_chain(s: System, p: Params, n: int) -> Result:
    """Row 10: a chain of tasks, each taking the previous task's reference."""
    if not s.chainable():
        raise Unsupported("no refs")

    def run(length: int) -> None:
        ref = s.submit(chain_step, 0)
        for _ in range(length - 1):
            ref = s.submit(chain_step, ref)
        if s.get(ref) != length:
            raise RuntimeError("chain returned a wrong count")

    run(5)
    start = time.perf_counter()
    run(p.chain)
    return {"chain": (p.chain / (time.perf_counter() - start), "")}


def row_sleep(s: System, p: Params, n: int) -> Result:
    """Row 11: `sleep_tasks` 1-ms tasks on all cores; efficiency = ideal wall / wall."""
    s.get_many([s.submit(sleep_1ms) for _ in range(2 * n)])
    start = time.perf_counter()
    s.get_many([s.submit(sleep_1ms) for _ in range(p.sleep_tasks)])
    wall = time.perf_counter() - start
    ideal = p.sleep_tasks * 0.001 / n
    return {"sleep_wall": (wall, ""), "sleep_efficiency": (100.0 * ideal / wall, "")}


# In execution order; n:n runs last because a failed nested-call probe may leave a worker busy.
ROW_GROUPS: tuple[tuple[Callable[[System, Params, int], Result], tuple[str, ...]], ...] = (
    (row_tasks_sync, ("tasks_sync", "task_latency_p50")),
    (row_tasks_async, ("tasks_async",)),
    (row_actor, ("actor_sync", "actor_async")),
    (row_small_objects, ("put_small", "get_small")),
    (row_large_object, ("put_large", "get_large", "get_large_ms")),
    (row_wait, ("wait_refs",)),
    (row_chain, ("chain",)),
    (row_sleep, ("sleep_wall", "sleep_efficiency")),
    (row_actor_nn, ("actor_nn_async",)),
    *_API_GROUPS,
)
