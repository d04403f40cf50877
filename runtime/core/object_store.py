"""A node's object store accounting: which objects it holds, their sizes, pins and eviction order.

The store tracks bytes against a capacity; it holds no data (the real world keeps the
bytes in a shared-memory arena, the simulator keeps none). Primary copies (a task's
output or a ``put`` on this node) stay until their owner frees them; secondary copies
(pulled for a task's arguments) can be evicted, least recently used first, when space
is needed and no running task pins them.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.core.ids import ObjectId


@dataclass(slots=True)
class StoredObject:
    """One object held by a node's store."""

    size: int
    primary: bool
    pins: int = 0


class ObjectStore:
    """Per-node object store accounting with LRU eviction of unpinned secondary copies."""

    __slots__ = ("capacity", "used", "objects", "evictions")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"store capacity must be > 0 bytes, got {capacity}")
        self.capacity = capacity
        self.used = 0
        self.objects: dict[ObjectId, StoredObject] = {}
        self.evictions = 0

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
        self.used -= entry.size
        return True

    def touch(self, oid: ObjectId) -> None:
        """Mark ``oid`` most recently used."""
        entry = self.objects.pop(oid)
        self.objects[oid] = entry

    def pin(self, oid: ObjectId) -> None:
        """Keep ``oid`` from eviction while a task uses it."""
        self.objects[oid].pins += 1

    def unpin(self, oid: ObjectId) -> None:
        """Undo one ``pin`` (a no-op if the object is already gone)."""
        entry = self.objects.get(oid)
        if entry is not None and entry.pins > 0:
            entry.pins -= 1

    def _evict(self, needed: int) -> list[ObjectId]:
        evicted: list[ObjectId] = []
        freed = 0
        for oid, entry in self.objects.items():
            if freed >= needed:
                break
            if not entry.primary and entry.pins == 0:
                evicted.append(oid)
                freed += entry.size
        for oid in evicted:
            self.remove(oid)
        self.evictions += len(evicted)
        return evicted
