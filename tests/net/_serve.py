"""A child process for the bulk tests: an `ObjectServer` over its own arena.

`python -m tests.net._serve SIZE...` (token in TWINRAY_AUTH_TOKEN) stores object i+1 of
SIZE[i] bytes (`payload(i + 1, size)`), prints the server's address, and serves until its
stdin closes.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from runtime.net.bulk import ObjectServer, arena_source
from runtime.real.arena import Arena

_BLOCK = (1 << 20) + 7  # a prime: a misplaced chunk of any power-of-two size shows


def payload(oid: int, size: int) -> bytes:
    """The deterministic bytes of test object `oid` (random; past 1 MiB, a random block of
    prime size repeated, which is cheap to make)."""
    block = np.random.default_rng(oid).bytes(min(size, _BLOCK))
    return block if size <= _BLOCK else (block * -(-size // _BLOCK))[:size]


def main(argv: list[str]) -> None:
    """Serve objects of the sizes in `argv` until stdin closes."""
    sizes = [int(a) for a in argv]
    arena = Arena(sum(s + 64 for s in sizes) + (1 << 20), prefault_bytes=0)
    where: dict[int, tuple[int, int]] = {}
    for i, size in enumerate(sizes):
        off = arena.allocate(size)
        arena.write(off, [payload(i + 1, size)])
        where[i + 1] = (off, size)

    def lookup(oid: int):
        if oid not in where:
            return None
        off, size = where[oid]
        return arena_source(arena, off, size)

    server = ObjectServer(lookup, os.environ["TWINRAY_AUTH_TOKEN"])
    print(server.address, flush=True)
    sys.stdin.read()
    server.close()
    arena.close()


if __name__ == "__main__":
    main(sys.argv[1:])
