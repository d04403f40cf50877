"""Generator rows: how fast one task's yielded items reach the driver (streaming generators)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.api_rows import ray_api
from benchmarks.rowkit import HIGHER, Result, Row

ROWS = (
    Row(
        "generator_items",
        "generator items/s (one task yields {batch} small items, driver gets each)",
        "items/s",
        HIGHER,
    ),
)


def small_items(n: int) -> Any:
    """A generator task body: `n` small items, as fast as it can yield them."""
    for i in range(n):  # noqa: UP028 (Ray's executor cannot run `yield from range`)
        yield i


def row_generator_items(system: Any, params: Any, num_cpus: int) -> Result:
    """Items per second from one streaming task to a driver that gets every item's value."""
    api = ray_api(system)
    gen_fn = api.remote(small_items)
    n = params.batch
    assert sum(api.get(ref) for ref in gen_fn.remote(10)) == 45  # warm: worker and function
    items = 0
    start = time.perf_counter()
    runs = 0
    while True:
        total = 0
        for ref in gen_fn.remote(n):
            total += api.get(ref)
        assert total == n * (n - 1) // 2
        items += n
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= params.budget and runs >= 1:
            break
    return {"generator_items": (items / elapsed, f"{runs} task(s) of {n} items")}


GROUPS = ((row_generator_items, ("generator_items",)),)
