"""The randomness interface the core accepts: an injected, seeded generator, never the global one."""

from __future__ import annotations

from typing import Protocol


class Rng(Protocol):
    """What the core needs of a random generator (``random.Random(seed)`` satisfies it)."""

    def random(self) -> float:
        """A float uniformly drawn from [0, 1)."""
        ...
