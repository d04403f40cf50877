"""The serving workload described once: every engine's arrivals, routing targets and model costs.

A serving scenario's randomness is drawn here, from the scenario's seed, and nowhere else:

- ``{seed}:workload:0``: the arrival times (Poisson gaps; bursts and traces draw nothing);
- ``{seed}:serve:pick``: which deployment each request is for (only with several);
- ``{seed}:serve:<deployment>``: each batch's model cost, ``latency_fixed_ms`` then
  ``latency_per_item_ms``, one pair per batch in the order the deployment's batches start
  (over all its replicas), a batch of n costing ``fixed + n * per_item`` ms;
- ``{seed}:serve:proxy``: the simulated proxy's per-request overheads (the simulator's cost
  model; a real engine has a real proxy).

The simulator (`sim.serving.ServingDriver`), twinray's Serve and Ray Serve
(`twin.real_serving`) all read their requests and costs from a `ServingProgram`, so they
send the same requests at the same offsets to the same deployments and cost their batches
from the same draws. The router's own stream (``serve:<deployment>:router``) is the
simulator's: real engines route with their own router.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sim.distributions import Sampler, make_sampler
from sim.scenario import (
    BurstArrivals,
    ConstantDist,
    PoissonArrivals,
    ServeDeploymentSpec,
    ServingWorkload,
    TraceArrivals,
    read_arrival_trace,
)
from sim.serving_cost import ModelCost, batch_seconds


def stream(seed: int, name: str) -> random.Random:
    """The named stream of draws derived from the scenario's seed (as `sim.runner._rng`)."""
    return random.Random(f"{seed}:{name}")


def arrival_offsets(spec: ServingWorkload, rng: random.Random) -> Iterator[float]:
    """The workload's arrival times in seconds from the first request's time (0)."""
    arrivals, n = spec.arrivals, spec.requests
    if isinstance(arrivals, PoissonArrivals):
        t = 0.0
        for _ in range(n):
            yield t
            t += rng.expovariate(arrivals.rate_rps)
    elif isinstance(arrivals, BurstArrivals):
        for i in range(n):
            yield (i // arrivals.burst_size) * arrivals.interval_s
    else:
        assert isinstance(arrivals, TraceArrivals)
        times = read_arrival_trace(Path(arrivals.file))[:n]
        for t in times:
            yield t - times[0]


def constant_costs(spec: ServeDeploymentSpec) -> bool:
    """Whether the deployment's batch costs draw nothing (both constants)."""
    return isinstance(spec.latency_fixed_ms, ConstantDist) and isinstance(
        spec.latency_per_item_ms, ConstantDist
    )


@dataclass(frozen=True, slots=True)
class Request:
    """One request of the workload: its number, arrival offset (s) and deployment index."""

    index: int
    offset: float
    deployment: int


class ServingProgram:
    """The serving workload of a scenario: its requests and each deployment's model costs."""

    def __init__(self, spec: ServingWorkload, seed: int) -> None:
        """The workload `spec` drawn from the scenario's `seed`."""
        self.spec = spec
        self.seed = seed
        self.weights = [d.weight for d in spec.deployments]

    def requests(self) -> Iterator[Request]:
        """Every request in arrival order (drawn lazily: O(1) memory for long runs)."""
        offsets = arrival_offsets(self.spec, stream(self.seed, "workload:0"))
        n = len(self.weights)
        if n == 1:
            for i, offset in enumerate(offsets):
                yield Request(i, offset, 0)
            return
        pick, choices, weights = stream(self.seed, "serve:pick"), range(n), self.weights
        for i, offset in enumerate(offsets):
            yield Request(i, offset, pick.choices(choices, weights)[0])

    def model_cost(self, deployment: int) -> ModelCost:
        """A fresh cost stream of deployment number `deployment` (its first batch first)."""
        spec = self.spec.deployments[deployment]
        rng = stream(self.seed, f"serve:{spec.name}")
        fixed = make_sampler(spec.latency_fixed_ms, rng)
        return ModelCost(fixed, make_sampler(spec.latency_per_item_ms, rng))

    def proxy_costs(self) -> tuple[Sampler, Sampler]:
        """The simulated proxy's per-request overhead samplers (ms): inbound, outbound."""
        rng = stream(self.seed, "serve:proxy")
        spec = self.spec
        return make_sampler(spec.proxy_overhead_ms, rng), make_sampler(
            spec.response_overhead_ms, rng
        )


__all__ = [
    "ModelCost",
    "Request",
    "ServingProgram",
    "arrival_offsets",
    "batch_seconds",
    "constant_costs",
    "stream",
]
