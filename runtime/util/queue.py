"""`Queue`: a FIFO queue shared by the driver, tasks and actors, kept by an async actor (Ray's `ray.util.queue`)."""

from __future__ import annotations

import asyncio
import functools
import queue
from collections.abc import Iterable
from typing import Any

from runtime import api

__all__ = ["Empty", "Full", "Queue"]


class Empty(queue.Empty):
    """Raised by `Queue.get` and friends when no item is available (in time)."""


class Full(queue.Full):
    """Raised by `Queue.put` and friends when the queue has no room (in time)."""


class Queue:
    """A first-in, first-out queue whose items live in an actor, so any process can use it.

    `maxsize` bounds the number of items (0: unbounded); a full queue makes `put` wait (or
    raise `Full`), an empty one makes `get` wait (or raise `Empty`). The actor is an async
    actor around an `asyncio.Queue`: a waiting `put`/`get` is a suspended coroutine there,
    costing no CPU and no polling, while other calls go on. Like any default actor it needs
    a CPU to be placed and holds none while alive; `actor_options` are passed to
    `.options(...)` of the actor class (resources, a name, ...).

    A `Queue` can be passed to tasks and actors: it pickles as its `maxsize` and actor
    handle. Errors raised by the actor (`Full`, `Empty`) reach the caller as `RayTaskError`s
    that are also instances of `Full` / `Empty`, as in Ray.
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"'maxsize' must be an int, got {type(maxsize).__name__}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(
                f"'actor_options' must be a dict of actor options, got {type(actor_options).__name__}"
            )
        self.maxsize = maxsize
        actor_class = _queue_actor_class()
        if actor_options:
            actor_class = actor_class.options(**actor_options)
        self.actor: Any = actor_class.remote(self.maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return api.get(self._actor().qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue (same as `size`)."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue holds no item."""
        return api.get(self._actor().empty.remote())

    def full(self) -> bool:
        """Whether the queue holds `maxsize` items (never, for an unbounded queue)."""
        return api.get(self._actor().full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add `item` at the end, waiting up to `timeout` s (None: forever) for room.

        With `block=False` raise `Full` at once when there is no room; a blocking put that
        times out raises `Full` too. A negative `timeout` raises `ValueError`.
        """
        actor = self._actor()
        if not block:
            if not api.get(actor.put_nowait.remote(item)):
                raise Full
            return
        api.get(actor.put.remote(item, _check_timeout(timeout)))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the first item, waiting up to `timeout` s (None: forever).

        With `block=False` raise `Empty` at once when there is none; a blocking get that
        times out raises `Empty` too. A negative `timeout` raises `ValueError`.
        """
        actor = self._actor()
        if not block:
            found, item = api.get(actor.get_nowait.remote())
            if not found:
                raise Empty
            return item
        return api.get(actor.get.remote(_check_timeout(timeout)))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """`put` for coroutines: awaits the actor instead of blocking the thread."""
        actor = self._actor()
        if not block:
            ref = actor.put_nowait.remote(item)  # held while awaited: a dropped ref is freed
            if not await ref:
                raise Full
            return
        ref = actor.put.remote(item, _check_timeout(timeout))
        await ref

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """`get` for coroutines: awaits the actor instead of blocking the thread."""
        actor = self._actor()
        if not block:
            ref = actor.get_nowait.remote()  # held while awaited: a dropped ref is freed
            found, item = await ref
            if not found:
                raise Empty
            return item
        ref = actor.get.remote(_check_timeout(timeout))
        return await ref

    def put_nowait(self, item: Any) -> None:
        """`put(item, block=False)`: raise `Full` when there is no room."""
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all `items`, in order, in one call; raise `Full` (adding none) if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        api.get(self._actor().put_nowait_batch.remote(list(items)))

    def get_nowait(self) -> Any:
        """`get(block=False)`: raise `Empty` when there is no item."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return the first `num_items` items; raise `Empty` (taking none) if fewer."""
        if not isinstance(num_items, int) or isinstance(num_items, bool):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return api.get(self._actor().get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Terminate the queue's actor; its items are dropped and its resources released.

        `force=True` kills the actor at once (calls still waiting fail with
        `ActorDiedError`). Otherwise the actor is asked to finish first: calls already
        waiting for an item or for room end with `Empty` / `Full`, as in Ray; if that takes
        longer than `grace_period_s` seconds the actor is killed anyway. Using the queue
        afterwards raises `AttributeError` (as in Ray, where the actor handle is None).
        """
        actor = self.actor
        if actor is not None:
            if not force:
                done = actor.close.remote()
                api.wait([done], timeout=grace_period_s)
            api.kill(actor, no_restart=True)
        self.actor = None

    def _actor(self) -> Any:
        actor = self.actor
        if actor is None:
            raise AttributeError("this Queue was shut down: it has no actor any more")
        return actor


@functools.cache
def _queue_actor_class() -> Any:
    """The remote class of queue actors, made once per process (it pickles once per session)."""
    return api.remote(_QueueActor)


def _check_timeout(timeout: float | None) -> float | None:
    """`timeout`, checked: None or a non-negative number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"'timeout' must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


class _QueueActor:
    """The actor behind a `Queue`: an `asyncio.Queue` whose waiting calls are coroutines."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.waiting: set[asyncio.Future[Any]] = set()
        """The puts and gets now waiting (each an `asyncio.Queue` call wrapped in a task)."""
        self.idle = asyncio.Event()
        """Set while nothing waits (`close` waits for it)."""
        self.idle.set()
        self.closing = False

    def qsize(self) -> int:
        """The number of items."""
        return self.queue.qsize()

    def waiting_calls(self) -> int:
        """How many `put`/`get` calls are waiting now (for room or for an item)."""
        return len(self.waiting)

    def empty(self) -> bool:
        """Whether there is no item."""
        return self.queue.empty()

    def full(self) -> bool:
        """Whether there is no room."""
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> None:
        """Add `item`, waiting up to `timeout` s for room; `Full` on timeout or `close`."""
        if not self.queue.full():
            self.queue.put_nowait(item)
            return
        if not await self._wait(self.queue.put(item), timeout):
            raise Full

    async def get(self, timeout: float | None = None) -> Any:
        """Remove the first item, waiting up to `timeout` s for one; `Empty` on timeout or `close`."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        task = asyncio.ensure_future(self.queue.get())
        if not await self._wait(task, timeout):
            raise Empty
        return task.result()

    async def _wait(self, awaitable: Any, timeout: float | None) -> bool:
        """Run `awaitable` for up to `timeout` s; False when it timed out or `close` ended it."""
        task = asyncio.ensure_future(awaitable)
        if self.closing:
            task.cancel()
        self.waiting.add(task)
        self.idle.clear()
        try:
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        finally:
            self.waiting.discard(task)
            if not self.waiting:
                self.idle.set()
        # asyncio.Queue leaves an item that reached a cancelled get in the queue
        return not task.cancelled()

    def put_nowait(self, item: Any) -> bool:
        """Add `item` if there is room; whether it was added."""
        if self.queue.full():
            return False
        self.queue.put_nowait(item)
        return True

    def put_nowait_batch(self, items: list[Any]) -> None:
        """Add all `items` or, when they do not fit, none (`Full`)."""
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(
                f"Cannot add {len(items)} items to queue of size "
                f"{self.queue.qsize()} and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait(self) -> tuple[bool, Any]:
        """`(True, first item)`, removed, or `(False, None)` when empty."""
        if self.queue.empty():
            return False, None
        return True, self.queue.get_nowait()

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """The first `num_items` items, removed; `Empty` (taking none) when there are fewer."""
        if num_items > self.queue.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.queue.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]

    async def close(self) -> None:
        """End every waiting `put`/`get` (they raise `Full` / `Empty`) and refuse to wait again.

        Returns once they have all answered, so their answers leave before this one.
        """
        self.closing = True
        for task in list(self.waiting):
            task.cancel()
        while self.waiting:
            await self.idle.wait()
