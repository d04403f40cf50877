"""The systems the microbenchmark compares: one adapter per system over the same primitive operations.

Each `System` (twinray, Ray, Dask, `multiprocessing.Pool`) starts and stops its runtime and
offers submit/get/put/wait/actor calls; the rows (`benchmarks.rows`) are written once on top
of them. The task and actor bodies live here, at module level, so every system pickles them
by reference.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.rowkit import Unsupported

__all__ = ["DISPLAY_NAMES", "GET_TIMEOUT", "PEER_MODULES", "SYSTEMS", "System"]

GET_TIMEOUT = 300.0  # s: a get that waits longer than this is a hang, reported as an error


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
