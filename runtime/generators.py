"""Generator tasks, as in Ray: `ObjectRefGenerator` (streaming) and `DynamicObjectRefGenerator`.

A remote function or actor method that is a generator function returns an
`ObjectRefGenerator` by default (Ray's ``num_returns="streaming"``): each item the task
yields becomes an ObjectRef the moment the worker has produced it, so the caller can use
item 0 while the task still computes item 1. ``num_returns="dynamic"`` (deprecated in Ray)
returns one ObjectRef instead, whose value is a `DynamicObjectRefGenerator` of the items.

The node the generator belongs to (the driver's, or a worker's client) implements
``stream_next``, ``stream_ready``, ``stream_finished`` and ``drop_stream``.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from runtime.core.ids import task_of
from runtime.core.task import GEN_DYNAMIC, GEN_NONE, GEN_STREAMING

__all__ = [
    "DynamicObjectRefGenerator",
    "ObjectRefGenerator",
    "generator_mode",
]

STREAMING = "streaming"
DYNAMIC = "dynamic"


def generator_mode(num_returns: Any, is_generator: bool, what: str) -> tuple[int, int]:
    """``(num_returns, mode)`` for the core from a ``num_returns`` option (None: the default).

    A generator function defaults to streaming, anything else to one return, as in Ray;
    ``"streaming"`` on a function that does not ``yield`` is an error (``what`` names it).
    """
    if num_returns is None:
        return (1, GEN_STREAMING) if is_generator else (1, GEN_NONE)
    if num_returns == STREAMING:
        if not is_generator:
            raise ValueError(
                f"num_returns='streaming' can only be used with generator functions "
                f"(functions that use 'yield'); {what} is not a generator function"
            )
        return 1, GEN_STREAMING
    if num_returns == DYNAMIC:
        return 1, GEN_DYNAMIC
    return num_returns, GEN_NONE


def is_generator_function(fn: Any) -> bool:
    """True for a function (or bound method) whose body uses ``yield``."""
    return inspect.isgeneratorfunction(fn)


class ObjectRefGenerator:
    """The refs of a streaming generator task's items, available as the task yields them.

    ``next(gen)`` waits for the next item and returns its ObjectRef; at the end it raises
    ``StopIteration``. An exception raised by the task's body is the item at the point it
    was raised (``get`` on that ref raises it). If the task itself failed (its worker
    died past its retries, it was cancelled, an argument failed), the last item is the
    task's return ref ``completed()``, whose ``get`` raises the error. Not thread-safe,
    and it cannot be passed to other tasks (as in Ray). Items it has not handed out are
    freed when it is garbage collected.
    """

    __slots__ = ("_ref", "_node", "_index", "_raised", "__weakref__")

    def __init__(self, completion: Any, node: Any) -> None:
        self._ref = completion
        self._node = node
        self._index = 0
        """Items handed out so far."""
        self._raised = False
        """The task's own error was handed out as the last item already."""

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> Any:
        """Wait for the next item's ObjectRef (``StopIteration`` at the end)."""
        return self._node.stream_next(self, None)

    def _next_sync(self, timeout_s: float | None = None) -> Any:
        """Like ``next`` but wait at most ``timeout_s`` (None or < 0: forever); None on timeout."""
        timeout = None if timeout_s is None or timeout_s < 0 else timeout_s
        return self._node.stream_next(self, timeout)

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> Any:
        """``await anext(gen)``: wait for the next item without blocking the event loop."""
        import asyncio  # here, not at import: `import runtime` stays light

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._node.stream_next, self, None)
        except StopIteration:
            raise StopAsyncIteration from None

    def send(self, value: Any) -> Any:
        """Not supported, as in Ray."""
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, *args: Any) -> Any:
        """Not supported, as in Ray."""
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self) -> None:
        """Not supported, as in Ray."""
        raise NotImplementedError("`gen.close` is not supported.")

    def completed(self) -> Any:
        """The ObjectRef of the task itself: ready when it ends (its ``get`` raises a failure)."""
        return self._ref

    def next_ready(self) -> bool:
        """True when ``next(gen)`` would return a ref at once (False at the end)."""
        return self._node.stream_ready(self) and not self._node.stream_finished(self)

    def is_finished(self) -> bool:
        """True when every item was handed out: ``next(gen)`` raises ``StopIteration``."""
        return self._node.stream_finished(self)

    def _task_id(self) -> int:
        return task_of(self._ref._oid)

    def __reduce__(self) -> Any:
        raise TypeError(
            "You cannot return or pass a generator to other task. "
            "Serializing a ObjectRefGenerator is not allowed."
        )

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._ref.hex()})"

    def __del__(self) -> None:
        node = self._node
        if node is not None:
            node.drop_stream(self)


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task: the refs of the items it yielded."""

    def __init__(self, refs: Iterable[Any]) -> None:
        self._refs: collections.deque[Any] = collections.deque(refs)

    def __iter__(self) -> Iterator[Any]:
        while self._refs:
            yield self._refs.popleft()

    def __len__(self) -> int:
        return len(self._refs)


class DynamicItems:
    """What a dynamic generator task returns: its item count; unpickles as the refs.

    Unpickling (where the value is fetched) asks the current node for refs to the items,
    which the task's owner holds inside this value (see ``Owner._on_generator_item``).
    """

    __slots__ = ("task_id", "count")

    def __init__(self, task_id: int, count: int) -> None:
        self.task_id = task_id
        self.count = count

    def __reduce__(self) -> Any:
        return (_rebuild_dynamic, (self.task_id, self.count))


def _rebuild_dynamic(task_id: int, count: int) -> DynamicObjectRefGenerator:
    from runtime._session import session_node

    node = session_node()
    if node is None:
        raise TypeError("a dynamic generator's value can only be read in a running session")
    return DynamicObjectRefGenerator(node.adopt_stream_items(task_id, count))
