"""Claims on prefetched tasks: whether the busy worker or an idle one runs it, decided once.

The host may queue a task behind the running task of a busy worker (prefetch), so the
worker starts it without waiting for the host. If the running task then takes long while
another worker sits idle, the host takes the queued task back and hands it to the idle
one. A REVOKE message cannot do that in time (the busy worker reads its socket only between
tasks), so the decision goes through shared memory: one int64 slot per worker id in the
arena holds the *ticket* of the task on offer (a number the host draws once per offer and
sends with the task, so a message left over from an earlier offer can never match again),
and a lock orders the two sides.

* host, before sending a prefetched task: ``offer(worker, ticket)`` (slot 0 -> ticket; if
  the slot still holds an earlier offer the worker has not reached, the host sends the task
  elsewhere: overwriting it would make the worker skip that earlier task);
* worker, before starting a prefetched task: ``take(worker, ticket)`` (slot == ticket -> 0,
  run it; anything else: the host took it back, skip it silently);
* host, stealing: ``steal(worker, ticket)`` (slot == ticket -> 0, it is the host's again;
  otherwise the worker has started it).

The lock is a POSIX record lock (``lockf``) on one byte of the arena's memfd, past its end:
the kernel arbitrates it between processes and drops it if its holder dies, so a worker
killed at the wrong moment cannot leave it held.
"""

from __future__ import annotations

import fcntl
from typing import Any

__all__ = ["Claims"]

_SLOT_BYTES = 8


class Claims:
    """Per-worker claim slots in the arena plus the lock that makes offer/take/steal atomic."""

    def __init__(self, arena: Any, slots: int, offset: int = -1) -> None:
        self.slots = slots
        if offset < 0:
            offset = arena.allocate(slots * _SLOT_BYTES)  # the host's; workers `attach` it
        self.offset = offset
        self._slots = arena.writable_view(self.offset, slots * _SLOT_BYTES).cast("q")
        """One aligned int64 per worker id: loads and stores of one are single instructions."""
        self._fd = arena.fd
        self._lock_at = arena.capacity + 1  # a byte past the data: locks there touch nothing

    @classmethod
    def attach(cls, arena: Any, slots: int, offset: int) -> Claims:
        """The claims another process allocated at `offset` of the shared `arena` (zygote side)."""
        return cls(arena, slots, offset)

    def _swap_if(self, worker_id: int, expect: int, new: int) -> bool:
        """Atomically: if the slot of `worker_id` holds `expect`, store `new`; say if it did."""
        fd, at = self._fd, self._lock_at
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, at, 0)
        try:
            i = worker_id % self.slots
            if expect >= 0 and self._slots[i] != expect:
                return False
            self._slots[i] = new
            return True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, at, 0)

    def offer(self, worker_id: int, ticket: int) -> bool:
        """Host: put the task of `ticket` on offer to `worker_id` (before sending it).

        False if an earlier offer to that worker is still undecided (the worker has not
        reached it yet): one slot holds one offer, so the task must go elsewhere.

        No lock: only the host stores a non-zero value, and the worker stores only over a
        non-zero one, so a slot read as 0 here cannot change before the store below.
        """
        slots, i = self._slots, worker_id % self.slots
        if slots[i] != 0:
            return False
        slots[i] = ticket
        return True

    def clear(self, worker_id: int) -> None:
        """Host: forget any offer to `worker_id` (it died; its slot may be reused)."""
        self._swap_if(worker_id, -1, 0)

    def take(self, worker_id: int, ticket: int) -> bool:
        """Worker: claim `ticket`'s task before starting it; False if the host took it back."""
        if self._slots[worker_id % self.slots] != ticket:
            return False  # decided already: tickets are never reused
        return self._swap_if(worker_id, ticket, 0)

    def steal(self, worker_id: int, ticket: int) -> bool:
        """Host: take `ticket`'s task back from `worker_id`; False if the worker started it."""
        return self._swap_if(worker_id, ticket, 0)
