"""Integer ids from counters: tasks, objects, nodes and component addresses.

Ids are plain ints so that they hash fast, sort deterministically and cost nothing to
copy. A task id carries the submitting owner's index in its high bits, so owners never
collide without coordinating; an object id is its creating task's id plus a return index.
"""

from __future__ import annotations

from typing import Final

OWNER_SHIFT: Final = 40
"""Bits of a task id below the owner index (about 10^12 tasks per owner)."""

RETURN_BITS: Final = 8
"""Bits of an object id below its task id: up to 255 returns per task (index 0 unused)."""

MAX_RETURNS: Final = (1 << RETURN_BITS) - 1

Address = int
"""A component's address (owner, raylet, global scheduler, GCS), chosen by the host."""

NodeId = int
TaskId = int
ObjectId = int


class TaskIdCounter:
    """Hands out task ids for one owner: ``owner_index << OWNER_SHIFT | n`` for n = 1, 2, ..."""

    __slots__ = ("_next", "_limit")

    def __init__(self, owner_index: int) -> None:
        if owner_index < 0:
            raise ValueError(f"owner_index must be >= 0, got {owner_index}")
        self._next = (owner_index << OWNER_SHIFT) + 1
        self._limit = (owner_index + 1) << OWNER_SHIFT

    def next(self) -> TaskId:
        """Return a fresh task id."""
        tid = self._next
        if tid >= self._limit:
            raise OverflowError("task id space of this owner is exhausted")
        self._next = tid + 1
        return tid


def object_id(task_id: TaskId, index: int) -> ObjectId:
    """The id of return value ``index`` (1-based) of task ``task_id``."""
    return (task_id << RETURN_BITS) | index


def task_of(oid: ObjectId) -> TaskId:
    """The id of the task that creates object ``oid``."""
    return oid >> RETURN_BITS


def return_index(oid: ObjectId) -> int:
    """Which return value of its task object ``oid`` is (1-based)."""
    return oid & MAX_RETURNS


ITEM_SHIFT: Final = RETURN_BITS + 64
"""Bits of a generator item's id below its item index (task ids stay below 2**64)."""


def generator_item_id(task_id: TaskId, index: int) -> ObjectId:
    """The id of item ``index`` (0-based) yielded by streaming generator task ``task_id``.

    Return index 0 is never a task's return value, so it marks an item; the item index
    sits above the task id. ``task_of`` of an item is a pseudo task id no task has.
    """
    return ((index + 1) << ITEM_SHIFT) | (task_id << RETURN_BITS)


def is_generator_item(oid: ObjectId) -> bool:
    """True when ``oid`` is an item of a streaming generator (see `generator_item_id`)."""
    return oid & MAX_RETURNS == 0 and oid >> ITEM_SHIFT > 0


def generator_item_task(oid: ObjectId) -> TaskId:
    """The generator task that yields item ``oid`` (see `generator_item_id`)."""
    return (oid >> RETURN_BITS) & ((1 << 64) - 1)


def owner_index_of(task_id: TaskId) -> int:
    """The index of the owner that submitted ``task_id``."""
    return task_id >> OWNER_SHIFT
