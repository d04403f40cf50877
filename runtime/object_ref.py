"""ObjectRef: the user's handle to a (future) object; dropping the last handle frees the object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime._session import NodeLike

from runtime.core.ids import task_of

__all__ = ["ObjectRef"]


class ObjectRef:
    """A hashable handle to an object owned by this driver (a task result or a `put`).

    One `ObjectRef` instance stands for one reference held by the program; copying returns
    the same instance. When it is garbage collected, `__del__` hands the release to the
    node's event loop with one deque append (no lock, no wakeup).
    """

    __slots__ = ("_oid", "_node", "__weakref__")

    def __init__(self, oid: int, node: NodeLike | None) -> None:
        self._oid = oid
        self._node = node

    @property
    def id(self) -> int:
        """The integer object id."""
        return self._oid

    def hex(self) -> str:
        """The object id as a fixed-width hex string (like Ray's `ObjectRef.hex()`)."""
        return f"{self._oid:032x}"

    def task_id(self) -> int:
        """The id of the task that creates this object (0-based index bits stripped)."""
        return task_of(self._oid)

    def future(self) -> Any:
        """A `concurrent.futures.Future` that resolves with this object's value or error."""
        node = self._node
        if node is None:
            raise RuntimeError(f"{self!r} does not belong to a running session")
        return node.future_of(self)

    def __await__(self) -> Any:
        """``await ref`` in any running asyncio loop: wait without blocking the loop.

        Cancelling the awaiting task cancels only the wait (as in Ray), never the future the
        node resolves: `asyncio.wrap_future` would cancel that one too, and the node's
        later ``set_result`` on it would raise in the node's loop.
        """
        import asyncio

        source = self.future()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def settle(done: Any) -> None:  # the resolving thread
            try:
                loop.call_soon_threadsafe(_copy_outcome, done, waiter)
            except RuntimeError:
                pass  # the awaiting loop is closed: nobody waits any more

        source.add_done_callback(settle)
        return waiter.__await__()

    def __repr__(self) -> str:
        return f"ObjectRef({self.hex()})"

    def __hash__(self) -> int:
        return hash(self._oid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._oid == self._oid

    def __copy__(self) -> ObjectRef:
        return self

    def __deepcopy__(self, memo: dict) -> ObjectRef:
        return self

    def __reduce__(self) -> tuple[Any, tuple[int, int]]:
        """Pickle as `(oid, owner address)`; unpickling registers a borrow where it lands.

        The node that serializes records the ref (a task's nested arguments are kept
        alive until the task ends; a worker lends the refs it returns to the driver).
        """
        node = self._node
        if node is None:
            raise TypeError(f"{self!r} cannot be serialized outside a running session")
        return (_rebuild_ref, (self._oid, node.reduce_ref(self._oid)))

    def __del__(self) -> None:
        node = self._node
        if node is not None:
            node.release_ref(self._oid)


def _copy_outcome(source: Any, waiter: Any) -> None:
    """Give an ``await ref`` waiter the resolved future's value or error (unless cancelled)."""
    if waiter.cancelled():
        return
    exc = source.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(source.result())


def _rebuild_ref(oid: int, owner: int) -> ObjectRef:
    """Unpickle a nested ObjectRef: the current process's node borrows it from `owner`."""
    from runtime._session import session_node

    node = session_node()
    if node is None:
        return ObjectRef(oid, None)
    return node.adopt_ref(oid, owner)
