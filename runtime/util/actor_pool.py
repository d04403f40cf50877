"""`ActorPool`: spread calls over a fixed set of actors, with Ray's `ray.util.ActorPool` semantics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from runtime import api
from runtime.exceptions import ActorDiedError
from runtime.object_ref import ObjectRef

__all__ = ["ActorPool"]

_TIMEOUT_MSG = "Timed out waiting for result"


class ActorPool:
    """Run `fn(actor, value)` calls on a fixed pool of actors, one call per actor at a time.

    `fn` takes an idle actor and a value and returns the ObjectRef (or list of ObjectRefs)
    of the call it made; the actor is busy until that result is returned by `get_next` /
    `get_next_unordered`. Values submitted while every actor is busy wait in the pool and
    are started, in submission order, as actors come back. An error raised by a call
    surfaces at the `get_next` that returns it and the actor goes back to the pool; an
    actor whose call failed with `ActorDiedError` is dropped from the pool.
    """

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        # key of a pending call's result (a ref, or a tuple of refs) -> (index, actor)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}
        # submission index -> the result `fn` returned, for the ordered `get_next`
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list[tuple[Callable[[Any, Any], Any], Any]] = []

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Submit `fn(actor, v)` for every value; iterate over the results in value order.

        Results of earlier submissions that were not retrieved are discarded first (as in
        Ray). The calls run whether or not the iterator is consumed; the iterator yields
        each result as it becomes available, raising a call's error at its position.
        """
        self._discard_pending(ordered=True)
        for v in values:
            self.submit(fn, v)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next()

        return results()

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Like `map`, but yield results in the order they finish."""
        self._discard_pending(ordered=False)
        for v in values:
            self.submit(fn, v)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next_unordered()

        return results()

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Start `fn(actor, value)` on an idle actor, or queue it until one is free."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """True while a started call's result has not been returned yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return the next result in submission order, waiting up to `timeout` seconds.

        Raises `StopIteration` when nothing is pending, `TimeoutError` when the result is not
        ready in time (with `ignore_if_timedout=True` that call is dropped first: its actor
        returns to the pool and the next `get_next` moves on to the following result), and
        `ValueError` when a `get_next_unordered` already returned a later result.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = timeout is not None and not _ready(future, timeout)
        if timed_out and not ignore_if_timedout:
            raise TimeoutError(_TIMEOUT_MSG)
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Return whichever pending result is ready first, waiting up to `timeout` seconds.

        Raises `StopIteration` when nothing is pending and `TimeoutError` when no result is
        ready in time. With `ignore_if_timedout=True` the oldest pending call is dropped
        before raising (its actor returns to the pool). Ray 2.60 fails there with an
        `UnboundLocalError`; dropping the oldest call is what its documentation describes.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        future = _first_ready(list(self._index_to_future.values()), timeout)
        timed_out = future is None
        if timed_out:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT_MSG)
            future = self._index_to_future[min(self._index_to_future)]
        index, actor = self._future_to_actor.pop(_key(future))
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def has_free(self) -> bool:
        """True when an actor is idle and no submitted value is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any:
        """Remove an idle actor from the pool and return it; None when `has_free()` is false."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor: Any) -> None:
        """Add `actor` to the pool (it starts a waiting value at once, if any).

        Raises `ValueError` when the actor already belongs to this pool.
        """
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    # -- internals ---------------------------------------------------------------------

    def _discard_pending(self, ordered: bool) -> None:
        """Drop the results of earlier submissions (what `map` does before it starts)."""
        while self.has_next():
            if not ordered:
                # Ray spins on get_next_unordered(timeout=0) until each is done: block instead
                self.get_next_unordered()
                continue
            try:
                self.get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def _get_result(self, future: Any, actor: Any) -> Any:
        alive = True
        try:
            return api.get(future)
        except ActorDiedError:
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))


def _key(future: Any) -> Any:
    """A hashable key for what `fn` returned: a ref, or a tuple of a list of refs."""
    return tuple(future) if isinstance(future, list) else future


def _refs(future: Any) -> list[ObjectRef]:
    return list(future) if isinstance(future, (list, tuple)) else [future]


def _ready(future: Any, timeout: float) -> bool:
    """Wait up to `timeout` s for every ref of `future`; True when all are ready."""
    refs = _refs(future)
    ready, _ = api.wait(refs, num_returns=len(refs), timeout=timeout)
    return len(ready) == len(refs)


def _is_ready_now(future: Any) -> bool:
    return _ready(future, 0)


def _first_ready(futures: list[Any], timeout: float | None) -> Any:
    """The first of `futures` whose refs are all ready within `timeout`; None on timeout."""
    singles = [f for f in futures if not isinstance(f, (list, tuple))]
    if len(singles) == len(futures):
        ready, _ = api.wait(futures, num_returns=1, timeout=timeout)
        return ready[0] if ready else None
    # some calls return several refs: wait for any ref, then check whole calls
    deadline = None if timeout is None else time.monotonic() + timeout
    owner = {r: f for f in futures for r in _refs(f)}
    pending = list(owner)
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, pending = api.wait(pending, num_returns=1, timeout=left)
        if not ready:
            return None
        for r in ready:
            if _is_ready_now(owner[r]):
                return owner[r]
    return None
