"""The streaming-generator workload described once: its window and every draw, for every engine.

A driver of a ``stream`` workload keeps `window` producers in flight, each a generator
task yielding `items` items, and runs one consumer task per item as it arrives. What it
draws, from the driver's stream (``{seed}:workload:{i}``) and in this order, is decided
here: per producer the sizes of its items, then its duration; per consumer (in the order
items arrive, which is each engine's timing) its duration. The simulator
(`sim.streams.StreamDriver`: ``ItemReady`` and ``StreamEnded`` events) and the real
engines (`twin.real_workloads.run_stream`: generator ObjectRefs) carry the producers and
consumers out; neither draws anything itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sim.distributions import make_sampler
from sim.programs import task_samplers
from sim.scenario import StreamWorkload


@dataclass(frozen=True, slots=True)
class Producer:
    """One producer to start: its run time (s) and the size of each item it yields."""

    duration_s: float
    item_sizes: tuple[int, ...]


class StreamProgram:
    """One driver's producers and consumers of a ``stream`` workload (see the module)."""

    def __init__(self, spec: StreamWorkload, rng: random.Random, producers: int) -> None:
        """`producers` of the workload's producers, drawing from the driver's `rng`."""
        self.duration_ms, self.output_bytes = task_samplers(spec, rng)
        self.item_bytes = make_sampler(spec.item_bytes, rng)
        self.consumer_ms = make_sampler(spec.consumer_duration_ms, rng)
        self.items = spec.items
        self.window = spec.window
        self.remaining = producers
        """Producers not started yet."""

    def first(self) -> int:
        """How many producers start at once (the window, or fewer)."""
        return min(self.window, self.remaining)

    def next_producer(self) -> Producer | None:
        """The next producer to start (its draws: item sizes, then duration); None: all ran."""
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        sizes = tuple(int(self.item_bytes()) for _ in range(self.items))
        return Producer(self.duration_ms() * 1e-3, sizes)

    def consumer_duration(self) -> float:
        """The run time (s) of the consumer of the item that just arrived."""
        return self.consumer_ms() * 1e-3


__all__ = ["Producer", "StreamProgram"]
