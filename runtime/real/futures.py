"""Futures and the host's object table entries: what user threads wait on, and the errors get raises."""

from __future__ import annotations

import _thread
from dataclasses import dataclass
from typing import Any

from runtime.core.task import (
    ERR_ACTOR_DIED,
    ERR_CANCELLED,
    ERR_NODE_DIED,
    ERR_OBJECT_LOST,
    ERR_PG_REMOVED,
    ERR_STORE_FULL,
    ERR_UNSCHEDULABLE,
    ERR_WORKER_DIED,
    ActorError,
)
from runtime.exceptions import (
    ActorDiedError,
    ObjectLostError,
    ObjectReconstructionFailedError,
    ObjectStoreFullError,
    RayError,
    TaskCancelledError,
    TaskPlacementGroupRemoved,
    TaskUnschedulableError,
    WorkerCrashedError,
)
from runtime.real import protocol as p

__all__ = ["FAILED", "PENDING", "READY", "Future", "ObjectEntry", "error_of"]

PENDING, READY, FAILED = 0, 1, 2
ERR_NO_WORKERS = "no_workers"
ERR_SHUTDOWN = "shutdown"

_ERROR_TYPES: dict[str, type[RayError]] = {
    ERR_UNSCHEDULABLE: TaskUnschedulableError,
    ERR_STORE_FULL: ObjectStoreFullError,
    ERR_WORKER_DIED: WorkerCrashedError,
    ERR_NO_WORKERS: WorkerCrashedError,
    ERR_NODE_DIED: ObjectLostError,
    ERR_OBJECT_LOST: ObjectReconstructionFailedError,
    ERR_CANCELLED: TaskCancelledError,
    ERR_ACTOR_DIED: ActorDiedError,
    ERR_PG_REMOVED: TaskPlacementGroupRemoved,
    ERR_SHUTDOWN: RayError,
}


class Future:
    """A countdown latch on `_thread.allocate_lock`: `wait` returns after `needed` hits."""

    __slots__ = ("_lock", "needed")

    def __init__(self, needed: int) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self.needed = needed

    def hit(self) -> None:
        """Count one resolved object (called with the node's table lock held)."""
        self.needed -= 1
        if self.needed == 0:
            self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """Block until released or `timeout` seconds passed; return whether released."""
        if timeout is None:
            return self._lock.acquire()
        return self._lock.acquire(True, max(0.0, timeout))


@dataclass(slots=True)
class ObjectEntry:
    """What the host knows of an object the program references: state, value, waiters."""

    state: int = PENDING
    payload: bytes | None = None
    stored: bool = False
    error_kind: str | None = None
    error: Any = None
    waiters: list[Future] | None = None


def error_of(kind: str | None, error: Any) -> BaseException:
    """The exception `get` raises for an object that failed with `kind`/`error`."""
    if isinstance(error, tuple) and len(error) == 5:
        return p.decode_error(error)
    if isinstance(error, ActorError):
        return _actor_error(error)
    cls = _ERROR_TYPES.get(kind or "", RayError)
    return cls(str(error))


def _actor_error(error: ActorError) -> ActorDiedError:
    """The ActorDiedError of an actor whose constructor raised: Ray's message, the cause."""
    cause = error.cause
    if isinstance(cause, tuple) and len(cause) == 5:
        task_error = p.decode_error(cause)
        message = f"The actor died because of an error raised in its creation task, {task_error}"
        return ActorDiedError(message, task_error)
    return ActorDiedError(str(error))
