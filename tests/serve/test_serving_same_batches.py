"""The simulated serving workload and real `@serve.batch` form the same batches from the same arrivals."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from runtime import serve
from sim.runner import build
from sim.scenario import validate_scenario
from sim.serving import ServingDriver
from sim.serving_program import arrival_offsets

# Bursts far apart and a batch timeout much longer than scheduling noise on a loaded
# machine: the batches depend on the arrivals and the rule, not on timing luck.
WORKLOAD: dict[str, Any] = {
    "kind": "serving",
    "requests": 14,
    "arrivals": {"process": "bursts", "burst_size": 5, "interval_s": 0.4},
    "deployments": [
        {
            "name": "M",
            "num_replicas": 1,
            "max_ongoing_requests": 100,
            "max_batch_size": 3,
            "batch_wait_timeout_s": 0.1,
            "latency_fixed_ms": 20,
        }
    ],
}


def _simulated_batches() -> list[list[int]]:
    scenario = validate_scenario(
        {"name": "b", "seed": 1, "cluster": {"nodes": 1, "cpus_per_node": 2}, "workload": WORKLOAD}
    )
    sim = build(scenario)
    driver = sim.drivers[0]
    assert isinstance(driver, ServingDriver)
    driver.record = True
    sim.run()
    return [list(e[4]) for e in driver.decisions if e[0] == "batch"]


async def _real_batches() -> list[list[int]]:
    batches: list[list[int]] = []

    @serve.batch(max_batch_size=3, batch_wait_timeout_s=0.1)
    async def model(requests: list[int]) -> list[int]:
        batches.append(list(requests))
        await asyncio.sleep(0.02)
        return requests

    scenario = validate_scenario({"name": "b", "workload": WORKLOAD})
    offsets = list(arrival_offsets(scenario.workload, random.Random(0)))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    calls = []
    for i, offset in enumerate(offsets):
        await asyncio.sleep(max(0.0, t0 + offset - loop.time()))
        calls.append(asyncio.ensure_future(model(i)))
    assert await asyncio.gather(*calls) == list(range(len(offsets)))
    return batches


def test_sim_and_real_serve_batch_the_same_arrivals_alike() -> None:
    simulated = _simulated_batches()
    # each burst of 5: a full batch at once, the other 2 when the timeout ends
    assert simulated == [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9], [10, 11, 12], [13]]
    assert asyncio.run(_real_batches()) == simulated
