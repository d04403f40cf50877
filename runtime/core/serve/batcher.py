"""``@serve.batch``'s rule as a pure object: which waiting items form a batch, and when it starts.

API (``now`` in seconds, from the host's clock)::

    b = Batcher(max_batch_size=8, batch_wait_timeout_s=0.01, max_concurrent_batches=1)
    started = b.add(item, now)     # -> [Batch]: batches to run now (often empty)
    started = b.poll(now)          # at (or after) b.next_deadline(): batches due by timeout
    started = b.finished(batch_id, now)   # a batch's call returned -> [Batch] that may start
    b.next_deadline()              # -> float | None: when to call poll next
    b.waiting                      # items not yet in a started batch

The rule is Ray Serve's ``_BatchQueue``: a batch opens when its first item arrives and closes
when it holds ``max_batch_size`` items or ``batch_wait_timeout_s`` has passed since that first
item, whichever is first. A closed batch starts when fewer than ``max_concurrent_batches``
batches are running (Ray's semaphore); closed batches wait in order otherwise, and the open
one keeps filling meanwhile. Items keep their arrival order within and across batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from runtime.core.serve.errors import ServeConfigError


@dataclass(slots=True)
class Batch:
    """Items run together by one call of the batched function; ``opened`` is its first arrival."""

    batch_id: int
    opened: float
    items: list[Any] = field(default_factory=list)


class Batcher:
    """Forms batches from arriving items by ``max_batch_size`` and ``batch_wait_timeout_s``."""

    def __init__(
        self,
        max_batch_size: int = 10,
        batch_wait_timeout_s: float = 0.01,
        max_concurrent_batches: int = 1,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise ServeConfigError(f"max_batch_size must be an int, got {max_batch_size!r}")
        if max_batch_size < 1:
            raise ServeConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if isinstance(batch_wait_timeout_s, bool) or not isinstance(
            batch_wait_timeout_s, (int, float)
        ):
            raise ServeConfigError(
                f"batch_wait_timeout_s must be a number, got {batch_wait_timeout_s!r}"
            )
        if batch_wait_timeout_s < 0:
            raise ServeConfigError(f"batch_wait_timeout_s must be >= 0, got {batch_wait_timeout_s}")
        if isinstance(max_concurrent_batches, bool) or not isinstance(max_concurrent_batches, int):
            raise ServeConfigError(
                f"max_concurrent_batches must be an int, got {max_concurrent_batches!r}"
            )
        if max_concurrent_batches < 1:
            raise ServeConfigError(
                f"max_concurrent_batches must be >= 1, got {max_concurrent_batches}"
            )
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = float(batch_wait_timeout_s)
        self.max_concurrent_batches = max_concurrent_batches
        self._open: Batch | None = None
        self._closed: deque[Batch] = deque()
        self._running: set[int] = set()
        self._next_id = 0

    @property
    def waiting(self) -> int:
        """Items that are not yet in a started batch."""
        n = sum(len(b.items) for b in self._closed)
        return n + (len(self._open.items) if self._open is not None else 0)

    @property
    def running(self) -> int:
        """Batches started and not yet finished."""
        return len(self._running)

    def add(self, item: Any, now: float) -> list[Batch]:
        """An item arrives at ``now``; returns the batches that start now."""
        batch = self._open
        if batch is None:
            batch = self._open = Batch(self._next_id, now)
            self._next_id += 1
        batch.items.append(item)
        if len(batch.items) >= self.max_batch_size or self.batch_wait_timeout_s == 0:
            self._close()
        return self._start()

    def poll(self, now: float) -> list[Batch]:
        """Close the open batch if its wait is over at ``now``; returns the batches that start."""
        batch = self._open
        if batch is not None and now - batch.opened >= self.batch_wait_timeout_s:
            self._close()
        return self._start()

    def finished(self, batch_id: int, now: float) -> list[Batch]:
        """Batch ``batch_id``'s call returned (or raised); returns the batches that start now."""
        self._running.discard(batch_id)
        return self.poll(now)

    def next_deadline(self) -> float | None:
        """When the open batch's wait ends (call ``poll`` then); None when there is none."""
        if self._open is None:
            return None
        return self._open.opened + self.batch_wait_timeout_s

    def _close(self) -> None:
        assert self._open is not None
        self._closed.append(self._open)
        self._open = None

    def _start(self) -> list[Batch]:
        started: list[Batch] = []
        while self._closed and len(self._running) < self.max_concurrent_batches:
            batch = self._closed.popleft()
            self._running.add(batch.batch_id)
            started.append(batch)
        return started
