"""The ``puts`` workload described once: what a driver puts, one object after another, for every engine.

A driver puts `puts` objects of `object_bytes`, each after the previous one is stored, and
drops each reference at once; one put counts as one task. Nothing is drawn. The simulator
(`sim.store.PutDriver`) prices each put with its store model (`put_seconds`, on the
program's clock) and registers it with the owner; the real engines
(`twin.real_workloads.run_puts`) call ``put`` and time it.
"""

from __future__ import annotations

from sim.scenario import PutsWorkload


class PutsProgram:
    """One driver's puts: `next_put` hands out each object's size until all are put."""

    def __init__(self, spec: PutsWorkload, puts: int) -> None:
        """`puts` objects of ``spec.object_bytes``."""
        self.object_bytes = spec.object_bytes
        self.remaining = puts
        """Puts not started yet."""

    def next_put(self) -> int | None:
        """The size in bytes of the next object to put; None once all were put."""
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return self.object_bytes


__all__ = ["PutsProgram"]
