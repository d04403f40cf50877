"""The node's object table: the entries program threads read, arena ranges, pins and the spill file, under one lock."""

from __future__ import annotations

import threading
from collections import deque

from runtime.exceptions import ObjectStoreFullError
from runtime.real.arena import Arena
from runtime.real.futures import FAILED, PENDING, ObjectEntry
from runtime.real.spill import SpillFile

__all__ = ["ObjectTable"]


class ObjectTable:
    """Where the driver's objects are and who holds their arena ranges (any thread, under `lock`).

    Program threads read entries and map arena ranges here; the loop thread records
    results, frees, spills and restores. Methods named ``*_locked`` expect `lock` held;
    the others take it themselves.
    """

    def __init__(self, arena: Arena, spill: SpillFile) -> None:
        self.lock = threading.Lock()
        """Guards everything below (program threads and the loop thread share it)."""
        self.entries: dict[int, ObjectEntry] = {}
        """The driver's objects as program threads see them: state, value or error, waiters."""
        self.arena = arena
        self.arena_objects: dict[int, tuple[int, int]] = {}
        """Objects in the arena: oid -> (offset, size)."""
        self.spilled: dict[int, tuple[int, int]] = {}
        """Objects on disk: oid -> (offset in the spill file, size)."""
        self.spill = spill
        """The spill file (`runtime.real.spill.SpillFile`)."""
        self.arg_pins: dict[int, list[int]] = {}
        """Arena ranges handed to a running task as arguments (kept until it ends)."""
        self.pins: dict[int, int] = {}
        """Arena offset -> live aliases (values from ``get``, task arguments): not freed while > 0."""
        self.doomed: dict[int, tuple[int, int]] = {}
        """Pinned offset -> (oid, size) of a range whose object was freed or spilled: the
        range is released when its last pin goes (`ray memory` shows it PINNED_IN_MEMORY)."""
        self.unpins: deque[int] = deque()
        """Offsets whose alias was dropped (from any thread, no lock): applied on the next step."""
        self.extra_refs: dict[int, int] = {}
        """Objects with more than one live ObjectRef instance (refs unpickled from values)."""

    def free_locked(self, oid: int) -> None:
        """Free `oid`'s arena range (or spill-file range); a pinned range waits for its pins."""
        loc = self.arena_objects.pop(oid, None)
        if loc is None:
            spilled = self.spilled.pop(oid, None)
            if spilled is not None:
                self.spill.free(*spilled)
            return
        self.release_range_locked(loc[0], oid, loc[1])

    def release_range_locked(self, offset: int, oid: int, size: int) -> None:
        """Free `oid`'s arena range now, or when the last value aliasing it is dropped."""
        if self.pins.get(offset):
            self.doomed[offset] = (oid, size)  # a value from get() still aliases it
        else:
            self.arena.free(offset)

    def release_arg_pins(self, task_id: int) -> None:
        """A task ended: drop the pins its arena arguments held (loop thread)."""
        offsets = self.arg_pins.pop(task_id, None)
        if offsets:
            with self.lock:
                self.unpins.extend(offsets)
                self.apply_unpins_locked()

    def spilled_bytes_locked(self, oid: int) -> bytes:
        """The layout of spilled `oid`, read from disk (call with `lock` held)."""
        offset, size = self.spilled[oid]
        return self.spill.read(offset, size)

    def apply_unpins_locked(self) -> None:
        """Apply the queued unpins; free the doomed ranges whose last pin went."""
        unpins, pins = self.unpins, self.pins
        while unpins:
            offset = unpins.popleft()
            left = pins[offset] - 1
            if left:
                pins[offset] = left
                continue
            del pins[offset]
            if self.doomed.pop(offset, None) is not None:
                self.arena.free(offset)

    def allocate_now(self, nbytes: int) -> int:
        """Reserve an arena range (any thread); retry once after applying pending unpins."""
        with self.lock:
            try:
                return self.arena.allocate(nbytes)
            except ObjectStoreFullError:
                self.apply_unpins_locked()
                return self.arena.allocate(nbytes)

    def spill_object(self, oid: int) -> bool:
        """Write `oid` from the arena to the spill file and free its range (synchronously)."""
        with self.lock:
            loc = self.arena_objects.get(oid)
            if loc is None:
                return False
            offset, size = loc
            try:
                file_offset = self.spill.write(self.arena.view(offset, size))
            except OSError:
                return False
            del self.arena_objects[oid]
            self.spilled[oid] = (file_offset, size)
            self.release_range_locked(offset, oid, size)
        return True

    def fail_all_pending(self, kind: str, detail: str) -> None:
        """Fail every pending entry with `kind` (shutdown, a crashed loop), waking its waiters."""
        with self.lock:
            for e in self.entries.values():
                if e.state == PENDING:
                    e.state, e.error_kind, e.error = FAILED, kind, detail
                    waiters, e.waiters = e.waiters, None
                    for fut in waiters or ():
                        fut.hit()
