"""A node's object store accounting: which objects it holds, their sizes, pins and eviction order.

The store tracks bytes against a capacity; it holds no data (the real world keeps the
bytes in a shared-memory arena, the simulator keeps none). Primary copies (a task's
output or a ``put`` on this node) stay until their owner frees them; secondary copies
(pulled for a task's arguments) can be evicted, least recently used first, when space
is needed and no running task pins them.

Spilling: when the world's memory is short, the raylet picks primary copies not pinned by
a running task, least recently used first (``spill_candidates``), and asks its host to
write them to disk. A copy being written is *spilling* (still counted in memory); once
written it is *spilled*: still on this node (``oid in store``), but its bytes no longer
count in ``used``, until it is restored (``mark_restored``) or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from runtime.core.ids import ObjectId


@dataclass(slots=True)
class StoredObject:
    """One object held by a node's store."""

    size: int
    primary: bool
    pins: int = 0
    where: int = 0
    """``IN_MEMORY``, ``SPILLING`` (being written to disk) or ``SPILLED`` (on disk only)."""


IN_MEMORY: Final = 0
SPILLING: Final = 1
SPILLED: Final = 2


class ObjectStore:
    """Per-node object store accounting with LRU eviction of unpinned secondary copies."""

    __slots__ = (
        "capacity",
        "used",
        "objects",
        "evictions",
        "spills",
        "restores",
        "spilled_bytes",
        "pinned",
    )

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"store capacity must be > 0 bytes, got {capacity}")
        self.capacity = capacity
        self.used = 0
        self.objects: dict[ObjectId, StoredObject] = {}
        self.evictions = 0
        self.spills = 0
        self.restores = 0
        self.spilled_bytes = 0
        """Bytes of the objects currently spilled to disk (not counted in ``used``)."""
        self.pinned = 0
        """Bytes of the objects a task pins: in memory, and neither evictable nor spillable."""

    def __contains__(self, oid: ObjectId) -> bool:
        return oid in self.objects

    def __len__(self) -> int:
        return len(self.objects)

    def add(self, oid: ObjectId, size: int, primary: bool, force: bool = False) -> list[ObjectId]:
        """Account for a new copy of ``oid``; return the ids evicted to make room.

        Raises ``MemoryError`` when the object cannot fit even after evicting every
        evictable copy (the caller turns it into its world's store-full error), unless
        ``force``: the bytes are already in place (the world's own allocator accepted
        them), so the store records them even beyond its capacity. Adding an object
        already present only refreshes its LRU position (and upgrades it to primary).
        """
        entry = self.objects.get(oid)
        if entry is not None:
            entry.primary = entry.primary or primary
            self.touch(oid)
            return []
        evicted: list[ObjectId] = []
        if self.used + size > self.capacity:
            evicted = self._evict(self.used + size - self.capacity)
            if self.used + size > self.capacity and not force:
                raise MemoryError(
                    f"object of {size} bytes does not fit: {self.used} of {self.capacity} "
                    f"bytes used by {len(self.objects)} objects that cannot be evicted"
                )
        self.objects[oid] = StoredObject(size, primary)
        self.used += size
        return evicted

    def remove(self, oid: ObjectId) -> bool:
        """Drop ``oid`` if present; return whether it was."""
        entry = self.objects.pop(oid, None)
        if entry is None:
            return False
        if entry.where == SPILLED:
            self.spilled_bytes -= entry.size
        else:
            self.used -= entry.size
        if entry.pins:
            self.pinned -= entry.size
        return True

    def touch(self, oid: ObjectId) -> None:
        """Mark ``oid`` most recently used."""
        entry = self.objects.pop(oid)
        self.objects[oid] = entry

    def pin(self, oid: ObjectId) -> None:
        """Keep ``oid`` from eviction while a task uses it."""
        entry = self.objects[oid]
        if not entry.pins:
            self.pinned += entry.size
        entry.pins += 1

    def unpin(self, oid: ObjectId) -> None:
        """Undo one ``pin`` (a no-op if the object is already gone)."""
        entry = self.objects.get(oid)
        if entry is not None and entry.pins > 0:
            entry.pins -= 1
            if not entry.pins:
                self.pinned -= entry.size

    def _evict(self, needed: int) -> list[ObjectId]:
        evicted: list[ObjectId] = []
        freed = 0
        for oid, entry in self.objects.items():
            if freed >= needed:
                break
            if not entry.primary and entry.pins == 0 and entry.where == IN_MEMORY:
                evicted.append(oid)
                freed += entry.size
        for oid in evicted:
            self.remove(oid)
        self.evictions += len(evicted)
        return evicted

    # -- spilling ---------------------------------------------------------------------------

    def in_memory(self, oid: ObjectId) -> bool:
        """True if ``oid`` is here and its bytes are in memory (not spilling or spilled)."""
        entry = self.objects.get(oid)
        return entry is not None and entry.where == IN_MEMORY

    def spill_candidates(self, needed: int) -> list[ObjectId]:
        """Primary in-memory copies no task pins, LRU first, freeing at least ``needed`` bytes.

        Returns at least one candidate when any exists (``needed`` may be met already and
        the world still short of a contiguous range). Marks them ``SPILLING``.
        """
        chosen: list[ObjectId] = []
        freed = 0
        for oid, entry in self.objects.items():
            if chosen and freed >= needed:
                break
            if entry.primary and entry.pins == 0 and entry.where == IN_MEMORY:
                entry.where = SPILLING
                chosen.append(oid)
                freed += entry.size
        return chosen

    def mark_spilled(self, oid: ObjectId) -> bool:
        """The bytes of ``oid`` are on disk now; return False if it is no longer spilling."""
        entry = self.objects.get(oid)
        if entry is None or entry.where != SPILLING:
            return False
        entry.where = SPILLED
        self.used -= entry.size
        self.spilled_bytes += entry.size
        self.spills += 1
        return True

    def spill_failed(self, oid: ObjectId) -> None:
        """The host could not spill ``oid``: it stays in memory."""
        entry = self.objects.get(oid)
        if entry is not None and entry.where == SPILLING:
            entry.where = IN_MEMORY

    def mark_restored(self, oid: ObjectId) -> bool:
        """The bytes of ``oid`` are back in memory (most recently used); False if not spilled."""
        entry = self.objects.get(oid)
        if entry is None or entry.where == IN_MEMORY:
            return False
        if entry.where == SPILLED:
            self.spilled_bytes -= entry.size
            self.used += entry.size
        entry.where = IN_MEMORY
        self.restores += 1
        self.touch(oid)
        return True
