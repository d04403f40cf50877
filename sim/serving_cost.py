"""A serving deployment's batch costs, light enough to travel to replica processes (no imports)."""

from __future__ import annotations

from collections.abc import Callable


class ModelCost:
    """One deployment's batch costs: the k-th `draw` is the k-th batch's (fixed, per item) ms.

    Built by `sim.serving_program.ServingProgram.model_cost` from the deployment's stream;
    a copy (pickled with its generator's state) draws the same sequence in another process.
    """

    def __init__(self, fixed_ms: Callable[[], float], per_item_ms: Callable[[], float]) -> None:
        """Costs drawn by the two samplers (sharing the deployment's generator)."""
        self.fixed_ms = fixed_ms
        self.per_item_ms = per_item_ms
        self.drawn = 0
        """Batches costed so far."""

    def draw(self) -> tuple[int, float, float]:
        """The next batch's number (from 0), fixed and per-item model time in ms."""
        k = self.drawn
        self.drawn = k + 1
        return k, self.fixed_ms(), self.per_item_ms()


def batch_seconds(fixed_ms: float, per_item_ms: float, n: int) -> float:
    """The model time of a batch of `n` requests, in seconds (every engine's formula)."""
    return (fixed_ms + n * per_item_ms) * 1e-3
