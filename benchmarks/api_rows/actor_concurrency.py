"""Microbenchmark rows of concurrent actors: an async actor's awaits and a threaded actor's calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.api_rows import ray_api
from benchmarks.rowkit import HIGHER, Result, Row

THREADS = 4
"""``max_concurrency`` of the threaded actor."""

ROWS = (
    Row(
        "actor_async_awaits",
        "async actor calls (many concurrent awaits, {batch} in flight)",
        "calls/s",
        HIGHER,
    ),
    Row(
        "actor_threaded",
        f"threaded actor calls (max_concurrency={THREADS}, {{batch}} in flight)",
        "calls/s",
        HIGHER,
    ),
)


class AsyncEcho:
    """An async actor: each call awaits once (yields to the loop) and echoes its argument."""

    async def echo(self, x: Any) -> Any:
        await asyncio.sleep(0)
        return x


class ThreadedEcho:
    """A sync actor run with ``max_concurrency`` threads: each call echoes its argument."""

    def echo(self, x: Any) -> Any:
        return x


def _rate(api: Any, actor: Any, p: Any) -> float:
    """Calls per second: `p.batch` calls in flight, all fetched, until the time budget."""
    api.get([actor.echo.remote(i) for i in range(min(p.batch, 100))], timeout=300)  # warm up
    reps = 0
    start = time.perf_counter()
    while True:
        api.get([actor.echo.remote(i) for i in range(p.batch)], timeout=300)
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= p.budget:
            return reps * p.batch / elapsed


def row_concurrent_actors(system: Any, p: Any, num_cpus: int) -> Result:
    """Both rows: `batch` calls in flight on one async actor, then on one threaded actor."""
    api = ray_api(system)
    async_actor = api.remote(AsyncEcho).remote()
    threaded = api.remote(max_concurrency=THREADS)(ThreadedEcho).remote()
    result: Result = {
        "actor_async_awaits": (_rate(api, async_actor, p), ""),
        "actor_threaded": (_rate(api, threaded, p), ""),
    }
    api.kill(async_actor)
    api.kill(threaded)
    return result


GROUPS = ((row_concurrent_actors, ("actor_async_awaits", "actor_threaded")),)
