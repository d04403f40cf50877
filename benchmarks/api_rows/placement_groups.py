"""Microbenchmark rows for placement groups: how fast a group is created, reserved and removed."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.api_rows import ray_api
from benchmarks.rowkit import HIGHER, Result, Row

__all__ = ["GROUPS", "ROWS"]

ROWS = (Row("pg_create_remove", "placement group create+remove", "per second", HIGHER),)

WAIT_S = 60.0
"""Seconds one group may take to be reserved before the row fails."""


def row_pg_create_remove(system: Any, p: Any, num_cpus: int) -> Result:
    """Create a one-bundle group, wait until it is reserved, remove it; groups per second.

    The next group waits for the previous one's resources to come back (its bundle takes
    every CPU), so each loop is a full reserve/release cycle of the control plane.
    """
    api = ray_api(system)
    util = api.util
    bundle = [{"CPU": float(num_cpus)}]

    def cycle() -> None:
        pg = util.placement_group(bundle, strategy="PACK")
        api.get(pg.ready(), timeout=WAIT_S)
        util.remove_placement_group(pg)

    for _ in range(3):  # warm up
        cycle()
    reps = 0
    start = time.perf_counter()
    while True:
        cycle()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= p.min_ops and elapsed >= p.budget:
            break
    return {"pg_create_remove": (reps / elapsed, f"{reps} groups of 1 bundle x {num_cpus} CPU")}


GROUPS = ((row_pg_create_remove, ("pg_create_remove",)),)
