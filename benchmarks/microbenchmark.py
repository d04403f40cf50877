"""Microbenchmark twinray's real mode against Ray, Dask and multiprocessing, like `ray microbenchmark`.

Run `python -m benchmarks.microbenchmark` (flags: `--systems`, `--quick`, `--smoke`,
`--repeat K`, `--num-cpus N`, `--json PATH`). The parent process runs each system in its own
subprocess (`--system NAME --json PATH`), one after another, `--repeat` rounds of them, and
prints one table of medians with `twinray/peer` ratios (>1 always means twinray is better).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.api_rows import collect as _collect_api_rows
from benchmarks.rowkit import HIGHER, LOWER, Result, Row, Unsupported

__all__ = ["ROWS", "SYSTEMS", "Params", "Row", "main", "run_system"]

GET_TIMEOUT = 300.0  # s: a get that waits longer than this is a hang, reported as an error
REPO_ROOT = Path(__file__).resolve().parent.parent


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


# --- task and actor bodies: module level, so every system pickles them by reference ----------


def noop(*args: Any) -> None:
    """A task that does nothing."""
    return None


def sleep_1ms() -> None:
    """A task that sleeps for 1 ms."""
    time.sleep(0.001)


def chain_step(prev: int) -> int:
    """One link of a dependency chain: the previous task's result plus one."""
    return prev + 1


class Pinger:
    """The benchmark actor: one no-op method."""

    def ping(self) -> None:
        """Do nothing."""
        return None


def nn_caller(system: str, actor: Any, budget: float, batch: int, timeout: float) -> int:
    """Drive `actor` with batches of `batch` async calls for `budget` s; return the call count.

    Runs inside a task (nested submission) or in a driver thread, for any system.
    """
    count = 0
    start = time.perf_counter()
    if system == "dask":
        while True:
            futures = [actor.ping() for _ in range(batch)]
            for future in futures:
                future.result(timeout=timeout)
            count += batch
            if time.perf_counter() - start >= budget:
                return count
    module = importlib.import_module("ray" if system == "ray" else "runtime")
    while True:
        module.get([actor.ping.remote() for _ in range(batch)], timeout=timeout)
        count += batch
        if time.perf_counter() - start >= budget:
            return count


# --- adapters: the same primitive operations over each system ----------------------------------


class System:
    """Primitive operations of one system; rows are written once on top of them."""

    name = ""
    module = ""  # imported in the init probe before the clock starts

    def version(self) -> str:
        """The system's version string."""
        return importlib.import_module(self.module).__version__

    def start(self, num_cpus: int) -> None:
        """Start the system with `num_cpus` workers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the system and release its processes and shared memory."""
        raise NotImplementedError

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit one task; return its reference."""
        raise NotImplementedError

    def get(self, ref: Any) -> Any:
        """The value of one reference."""
        raise NotImplementedError

    def get_many(self, refs: list[Any]) -> list[Any]:
        """The values of a list of references."""
        return [self.get(ref) for ref in refs]

    def put(self, value: Any) -> Any:
        """Store `value`; return its reference."""
        raise Unsupported("no store")

    def wait_all(self, refs: list[Any]) -> None:
        """Wait until every reference in `refs` is ready."""
        raise Unsupported("no refs")

    def chainable(self) -> bool:
        """Whether a task's reference can be an argument of another task."""
        return True

    def make_actor(self) -> Any:
        """Create one `Pinger` actor and return its handle, after one call reached it."""
        raise Unsupported("no actors")

    def call(self, actor: Any) -> Any:
        """Call `actor.ping` asynchronously; return the reference."""
        raise NotImplementedError

    def get_calls(self, refs: list[Any]) -> list[Any]:
        """The values of actor-call references."""
        return self.get_many(refs)

    def nested_ok(self, actor: Any) -> bool:
        """Whether a task can call an actor and wait for the result (nested submission)."""
        return False

    def nn_from_tasks(self, actors: list[Any], budget: float, batch: int) -> list[int]:
        """Run one `nn_caller` task per actor; return their call counts."""
        raise NotImplementedError


class RayLike(System):
    """twinray and Ray share an API (`import runtime as ray`)."""

    def __init__(self) -> None:
        self.api: Any = None
        self.remote_fns: dict[Callable[..., Any], Any] = {}

    def _init(self, num_cpus: int) -> None:
        raise NotImplementedError

    def start(self, num_cpus: int) -> None:
        """Initialize and wrap the task bodies with `remote`."""
        self.api = importlib.import_module(self.module)
        self._init(num_cpus)
        for fn in (noop, sleep_1ms, chain_step, nn_caller):
            self.remote_fns[fn] = self.api.remote(fn)

    def stop(self) -> None:
        """`shutdown()`."""
        if self.api is not None:
            self.api.shutdown()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn.remote(*args)`."""
        return self.remote_fns[fn].remote(*args)

    def get(self, ref: Any) -> Any:
        """`get(ref)`."""
        return self.api.get(ref, timeout=GET_TIMEOUT)

    def get_many(self, refs: list[Any]) -> list[Any]:
        """`get(refs)`."""
        return self.api.get(refs, timeout=GET_TIMEOUT)

    def put(self, value: Any) -> Any:
        """`put(value)`."""
        return self.api.put(value)

    def wait_all(self, refs: list[Any]) -> None:
        """`wait(refs, num_returns=len(refs))`."""
        ready, _ = self.api.wait(refs, num_returns=len(refs), timeout=GET_TIMEOUT)
        if len(ready) != len(refs):
            raise RuntimeError("wait() timed out")

    def make_actor(self) -> Any:
        """`remote(Pinger).remote()`; `Unsupported` when the actor API is missing."""
        if not hasattr(self.api, "remote"):
            raise Unsupported("unsupported")
        try:
            handle = self.api.remote(Pinger).remote()
            self.api.get(handle.ping.remote(), timeout=GET_TIMEOUT)
        except (AttributeError, NotImplementedError, ImportError) as e:
            raise Unsupported("unsupported") from e
        return handle

    def call(self, actor: Any) -> Any:
        """`actor.ping.remote()`."""
        return actor.ping.remote()

    def nested_ok(self, actor: Any) -> bool:
        """Probe: a task that calls the actor once (inner get bounded to 2 s, outer to 5 s)."""
        try:
            ref = self.submit(nn_caller, self.name, actor, 0.0, 1, 2.0)
            return self.api.get(ref, timeout=5.0) == 1
        except Exception:
            return False

    def nn_from_tasks(self, actors: list[Any], budget: float, batch: int) -> list[int]:
        """One caller task per actor."""
        refs = [self.submit(nn_caller, self.name, a, budget, batch, GET_TIMEOUT) for a in actors]
        return self.get_many(refs)


class Twinray(RayLike):
    """twinray's real mode: `runtime.init(num_cpus=N)`."""

    name = "twinray"
    module = "runtime"

    def version(self) -> str:
        """The installed distribution's version, or "dev" when run from the source tree."""
        try:
            from importlib.metadata import version

            return version("twinray")
        except Exception:
            return "dev"

    def _init(self, num_cpus: int) -> None:
        self.api.init(num_cpus=num_cpus)


class Ray(RayLike):
    """Ray: `ray.init(num_cpus=N, include_dashboard=False)`."""

    name = "ray"
    module = "ray"

    def __init__(self) -> None:
        super().__init__()
        self.session_dir = ""

    def _init(self, num_cpus: int) -> None:
        import logging

        self.api.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR)
        try:  # internal API, only to remove this run's logs afterwards
            self.session_dir = self.api._private.worker._global_node.get_session_dir_path()
        except Exception:
            self.session_dir = ""

    def stop(self) -> None:
        """`ray.shutdown()`, then remove this run's session directory (logs) under /tmp/ray."""
        super().stop()
        path = Path(self.session_dir) if self.session_dir else None
        if path is not None and path.name.startswith("session_") and path.is_dir():
            import shutil

            latest = path.parent / "session_latest"
            if latest.is_symlink() and latest.resolve() == path.resolve():
                latest.unlink()
            shutil.rmtree(path, ignore_errors=True)


class Dask(System):
    """dask.distributed: `LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`."""

    name = "dask"
    module = "distributed"

    def __init__(self) -> None:
        self.cluster: Any = None
        self.client: Any = None

    def start(self, num_cpus: int) -> None:
        """Start the cluster and a client."""
        import logging

        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=num_cpus,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)

    def stop(self) -> None:
        """Close the client and the cluster."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`client.submit(fn, *args, pure=False)`."""
        return self.client.submit(fn, *args, pure=False)

    def get(self, ref: Any) -> Any:
        """`future.result()`."""
        return ref.result(timeout=GET_TIMEOUT)

    def get_many(self, refs: list[Any]) -> list[Any]:
        """`client.gather(futures)`."""
        return self.client.gather(refs)

    def put(self, value: Any) -> Any:
        """`client.scatter(value, hash=False)`."""
        return self.client.scatter(value, hash=False)

    def wait_all(self, refs: list[Any]) -> None:
        """`distributed.wait(futures)`."""
        from distributed import wait

        wait(refs, timeout=GET_TIMEOUT)

    def make_actor(self) -> Any:
        """`client.submit(Pinger, actor=True).result()`."""
        actor = self.client.submit(Pinger, actor=True).result(timeout=GET_TIMEOUT)
        actor.ping().result(timeout=GET_TIMEOUT)
        return actor

    def call(self, actor: Any) -> Any:
        """`actor.ping()` (an ActorFuture)."""
        return actor.ping()

    def get_calls(self, refs: list[Any]) -> list[Any]:
        """`ActorFuture.result()` one by one (`gather` does not take ActorFutures)."""
        return [ref.result(timeout=GET_TIMEOUT) for ref in refs]

    def nested_ok(self, actor: Any) -> bool:
        """Probe: a task that calls the actor once."""
        try:
            future = self.submit(nn_caller, self.name, actor, 0.0, 1, 2.0)
            return future.result(timeout=5.0) == 1
        except Exception:
            return False

    def nn_from_tasks(self, actors: list[Any], budget: float, batch: int) -> list[int]:
        """One caller task per actor."""
        futures = [self.submit(nn_caller, self.name, a, budget, batch, GET_TIMEOUT) for a in actors]
        return self.get_many(futures)


class Multiprocessing(System):
    """`multiprocessing.Pool(N)` (fork): tasks via `apply_async`; no objects, refs or actors."""

    name = "multiprocessing"
    module = "multiprocessing"

    def __init__(self) -> None:
        self.pool: Any = None

    def version(self) -> str:
        """The Python version."""
        return sys.version.split()[0]

    def start(self, num_cpus: int) -> None:
        """Create the pool."""
        import multiprocessing

        self.pool = multiprocessing.get_context("fork").Pool(num_cpus)

    def stop(self) -> None:
        """Terminate and join the pool."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`pool.apply_async(fn, args)`."""
        return self.pool.apply_async(fn, args)

    def get(self, ref: Any) -> Any:
        """`AsyncResult.get()`."""
        return ref.get(GET_TIMEOUT)

    def chainable(self) -> bool:
        """An AsyncResult cannot be passed to another task."""
        return False


SYSTEMS: dict[str, type[System]] = {
    "twinray": Twinray,
    "ray": Ray,
    "dask": Dask,
    "multiprocessing": Multiprocessing,
}
PEER_MODULES = {"ray": "ray", "dask": "distributed"}
DISPLAY_NAMES = {"multiprocessing": "mp.Pool"}  # table headers


# --- rows ---------------------------------------------------------------------------------------


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


# --- one system, in this process -----------------------------------------------------------------


def _short(e: BaseException) -> str:
    """`error: <type>: <first line of the message>`, at most about 100 characters."""
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return "error: " + (text if len(text) <= 90 else text[:87] + "...")


def _cell(samples: list[Any], note: str) -> dict[str, Any]:
    """A row's JSON entry: the median of numeric samples, else the first n/a or error string."""
    numbers = [x for x in samples if isinstance(x, (int, float))]
    if numbers:
        failed = sum(1 for x in samples if isinstance(x, str) and x.startswith("error"))
        entry = {"value": statistics.median(numbers), "samples": samples, "note": note}
        return {**entry, "failed": failed} if failed else entry
    return {"value": samples[0] if samples else "error: not run", "samples": samples, "note": note}


def init_probe(name: str, num_cpus: int) -> float:
    """Milliseconds for `name`'s init in this (fresh) process, imports excluded; then stop."""
    system = SYSTEMS[name]()
    importlib.import_module(system.module)
    if name == "twinray":
        importlib.import_module("runtime.real.node")
    start = time.perf_counter()
    system.start(num_cpus)
    elapsed = time.perf_counter() - start
    system.stop()
    return elapsed * 1e3


def _run_init_probe(name: str, num_cpus: int, timeout: float) -> float:
    """Run `init_probe` in a fresh subprocess and return its milliseconds."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.microbenchmark", "--init-probe", name]
        + ["--num-cpus", str(num_cpus)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=_child_env(),
    )
    for line in out.stdout.splitlines():
        if line.startswith("INIT_MS "):
            return float(line.split()[1])
    tail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    raise RuntimeError(f"init probe failed: {tail}")


def run_system(name: str, num_cpus: int, p: Params, repeat: int = 1) -> dict[str, Any]:
    """Run every row on system `name` in this process, `repeat` times each; return the JSON dict."""
    system = SYSTEMS[name]()
    samples: dict[str, list[Any]] = {key: [] for key in ROW_KEYS}
    notes: dict[str, str] = {key: "" for key in ROW_KEYS}
    meta: dict[str, Any] = {"system": name, "num_cpus": num_cpus, "params": asdict(p)}
    try:
        meta["version"] = system.version()
    except Exception as e:
        meta["version"] = _short(e)
    try:
        system.start(num_cpus)
    except Exception as e:
        for key in ROW_KEYS:
            samples[key].append(_short(e))
        try:
            system.stop()
        except Exception:
            pass
        return {**meta, "rows": {key: _cell(samples[key], "") for key in ROW_KEYS}}
    try:
        for group, keys in ROW_GROUPS:
            for _ in range(repeat):
                try:
                    result = group(system, p, num_cpus)
                except Unsupported as e:
                    for key in keys:
                        samples[key].append(f"n/a ({e})" if str(e) else "n/a")
                    break
                except Exception as e:
                    for key in keys:
                        samples[key].append(_short(e))
                    continue
                for key, (value, note) in result.items():
                    samples[key].append(value)
                    notes[key] = note or notes[key]
    finally:
        system.stop()
    for _ in range(repeat):
        try:
            samples["init_ms"].append(_run_init_probe(name, num_cpus, 120.0))
        except Exception as e:
            samples["init_ms"].append(_short(e))
    return {**meta, "rows": {key: _cell(samples[key], notes[key]) for key in ROW_KEYS}}


# --- the parent: every system in its own subprocess, one table ----------------------------------


def _child_env() -> dict[str, str]:
    """The environment of a child: the repo root importable (Ray workers inherit it too)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def _all_rows(value: str, name: str, num_cpus: int, p: Params) -> dict[str, Any]:
    """A system's JSON dict with the same string in every row."""
    rows = {key: {"value": value, "samples": [value], "note": ""} for key in ROW_KEYS}
    return {"system": name, "num_cpus": num_cpus, "params": asdict(p), "rows": rows}


def _run_child(name: str, num_cpus: int, p: Params) -> dict[str, Any]:
    """Run `--system name` in a subprocess (its own session, killed on timeout); its JSON."""
    with tempfile.TemporaryDirectory(prefix="twinray-bench-") as tmp:
        out_path = Path(tmp) / "result.json"
        log_path = Path(tmp) / "stderr.log"
        cmd = [sys.executable, "-m", "benchmarks.microbenchmark", "--system", name]
        cmd += ["--num-cpus", str(num_cpus), "--mode", p.mode, "--json", str(out_path)]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=_child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=p.child_timeout)
            except BaseException as e:  # a timeout, or Ctrl-C in the parent: end the child
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if not isinstance(e, subprocess.TimeoutExpired):
                    raise
                return _all_rows(
                    f"error: timed out after {p.child_timeout:.0f} s", name, num_cpus, p
                )
        if proc.returncode != 0 or not out_path.exists():
            lines = log_path.read_text(errors="replace").strip().splitlines()
            tail = lines[-1][:80] if lines else ""
            return _all_rows(f"error: exit {proc.returncode}: {tail}", name, num_cpus, p)
        return json.loads(out_path.read_text())


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge one system's per-round JSON dicts: the median of every row's samples."""
    merged = dict(rounds[-1])
    rows: dict[str, Any] = {}
    for key in ROW_KEYS:
        entries = [r["rows"].get(key, {"value": "error: missing", "samples": []}) for r in rounds]
        samples = [x for e in entries for x in (e.get("samples") or [e["value"]])]
        note = next((e["note"] for e in reversed(entries) if e.get("note")), "")
        rows[key] = _cell(samples, note)
    merged["rows"] = rows
    return merged


def _fmt(value: Any) -> str:
    """A figure with a sensible number of digits, or the string itself."""
    if not isinstance(value, (int, float)):
        return str(value)
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(row: Row, ours: Any, peer: Any) -> str:
    """twinray/peer for rate-like rows and peer/twinray for time-like ones (>1: twinray better)."""
    if not isinstance(ours, (int, float)) or not isinstance(peer, (int, float)):
        return "-"
    if ours <= 0 or peer <= 0:
        return "-"
    ratio = ours / peer if row.better == HIGHER else peer / ours
    return f"{ratio:.2f}x" if ratio < 100 else f"{ratio:,.0f}x"


def render_table(results: dict[str, dict[str, Any]], p: Params, num_cpus: int, repeat: int) -> str:
    """The table: rows x systems, with a twinray/peer ratio column after each peer."""
    names = list(results)
    header = ["metric", "unit"]
    for name in names:
        header.append(DISPLAY_NAMES.get(name, name))
        if name != "twinray" and "twinray" in results:
            header.append(f"vs {DISPLAY_NAMES.get(name, name)}")
    lines: list[list[str]] = []
    failures = False
    for row in ROWS:
        unit = row.unit + (" (lower=better)" if row.better == LOWER else "")
        line = [row.label.format(**asdict(p)), unit]
        ours = results.get("twinray", {}).get("rows", {}).get(row.key, {}).get("value")
        for name in names:
            entry = results[name]["rows"].get(row.key, {"value": "error: missing", "note": ""})
            cell = _fmt(entry["value"])
            if entry.get("note") and isinstance(entry["value"], (int, float)):
                cell += f" ({entry['note']})"
            if entry.get("failed"):
                cell += f" [{entry['failed']} failed]"
                failures = True
            line.append(cell)
            if name != "twinray" and "twinray" in results:
                line.append(_ratio(row, ours, entry["value"]))
        lines.append(line)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt_line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [
            c.rjust(w) if i != 0 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells[1:], widths[1:]))
        ]
        return " | ".join([first, *rest])

    versions = ", ".join(f"{n} {results[n].get('version', '?')}" for n in names)
    title = [
        f"twinray microbenchmark: num_cpus={num_cpus}, mode={p.mode}, median of {repeat} round(s)",
        f"systems: {versions}",
        "'vs <peer>' = how many times better twinray is: twinray/peer for rates, "
        "peer/twinray for time-like rows (lower=better); >1 always means twinray is better.",
    ]
    rule = "-+-".join("-" * w for w in widths)
    footer = (
        ["", "[k failed]: k samples of that cell were errors (see the JSON)"] if failures else []
    )
    return "\n".join(title + ["", fmt_line(header), rule] + [fmt_line(r) for r in lines] + footer)


def _default_systems() -> list[str]:
    """twinray and multiprocessing, plus each peer that is importable."""
    peers = [n for n, m in PEER_MODULES.items() if importlib.util.find_spec(m) is not None]
    return ["twinray", *peers, "multiprocessing"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="twinray-microbenchmark",
        description="Microbenchmark twinray's real mode against Ray, Dask and multiprocessing.",
    )
    parser.add_argument("--systems", help="comma-separated: twinray,ray,dask,multiprocessing")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a run < 60 s)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: a correctness check")
    parser.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write all results (no PATH: stdout)"
    )
    parser.add_argument("--system", choices=sorted(SYSTEMS), help="run one system in-process")
    parser.add_argument("--init-probe", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.num_cpus < 1:
        parser.error("--repeat and --num-cpus must be at least 1")
    return args


def _write_json(path: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.microbenchmark` / `twinray-microbenchmark`."""
    args = _parse(argv)
    mode = args.mode or ("smoke" if args.smoke else "quick" if args.quick else "full")
    p = MODES[mode]
    if args.init_probe:
        print(f"INIT_MS {init_probe(args.init_probe, args.num_cpus)}", flush=True)
        return 0
    if args.system:
        result = run_system(args.system, args.num_cpus, p, args.repeat)
        if args.json:
            _write_json(args.json, result)
        else:
            print(render_table({args.system: result}, p, args.num_cpus, args.repeat))
        return 0

    names = args.systems.split(",") if args.systems else _default_systems()
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        print(f"unknown system(s): {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
        return 2
    load_before = os.getloadavg()
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(args.repeat):
        for name in names:
            module = PEER_MODULES.get(name)
            if module and importlib.util.find_spec(module) is None:
                rounds[name].append(_all_rows("n/a (not installed)", name, args.num_cpus, p))
                continue
            print(f"[{i + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            rounds[name].append(_run_child(name, args.num_cpus, p))
    results = {name: _merge(r) for name, r in rounds.items()}
    load_after = os.getloadavg()
    print(render_table(results, p, args.num_cpus, args.repeat))
    print(
        f"\nload average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}"
    )
    if args.json:
        _write_json(
            args.json,
            {
                "num_cpus": args.num_cpus,
                "mode": mode,
                "repeat": args.repeat,
                "params": asdict(p),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "systems": results,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
