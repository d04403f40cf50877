"""Ring allreduce over actors (the ``allreduce`` workload; the paper's Fig. 12): its call count.

The workload itself is `sim.programs.AllreduceProgram`, written once for every engine.
"""

from __future__ import annotations


def ring_calls(actors: int, chunks: int) -> int:
    """Method calls of one ring allreduce: a first send and 2 x (n - 1) steps per piece."""
    return actors * chunks * (1 + 2 * (actors - 1))
