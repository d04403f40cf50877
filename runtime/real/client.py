"""The user-thread mixin of the node: submit, put, get, wait and releases, handed to the loop."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from functools import partial
from typing import Any

from runtime import api
from runtime.core.ids import object_id
from runtime.core.task import (
    TaskSpec,
)
from runtime.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    RayError,
)
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real.addresses import NODE_ID, OWNER_ADDR
from runtime.real.futures import PENDING, READY, Future, ObjectEntry, error_of
from runtime.real.serialization import (
    SerializedObject,
    deserialize_pinned,
    loads,
    serialize,
    write_to_arena,
)
from runtime.runtime_env import merge_runtime_env, refuse_generator_context
from runtime.util.scheduling_strategies import strategy_of

__all__ = ["ClientMixin"]

_collector = threading.local()
"""Per thread: the list collecting nested refs while the driver serializes task arguments."""


class ClientMixin:
    """What program threads call: they never touch core objects, only queue ops and wait."""

    def register_function(self, pickled: bytes) -> int:
        """Give a pickled function an id on this node (workers receive it on first use)."""
        fn_id = next(self._fn_ids)
        self._functions[fn_id] = pickled
        return fn_id

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a task of remote function `rf`; return its ObjectRef(s)."""
        self._check_open()
        fn_id = rf._function_id(self)
        name = rf.__qualname__
        resources = options.resource_demand()
        strategy = strategy_of(options, resources, name)
        n, mode = rf._returns(options)
        if mode:
            refuse_generator_context(name, options, api._job.runtime_env)
        a, kw, arg_refs, held, implicit = self._encode_args(name, args, kwargs)
        with self._ids_lock:
            tid = self.owner.new_task_id()
        spec = TaskSpec(
            task_id=tid,
            owner=OWNER_ADDR,
            owner_node=NODE_ID,
            function=fn_id,
            args=(a, kw),
            resources=resources,
            num_returns=n,
            max_retries=options.max_retries,
            retry_exceptions=options.retry_exceptions,
            name=options.name or name,
            arg_refs=tuple(arg_refs),
            held_refs=tuple(held),
            strategy=strategy,
            generator=mode,
        )
        env, job_env = options.runtime_env, api._job.runtime_env
        if env or job_env:  # the job's runtime_env, overridden by the task's
            spec.runtime_env = merge_runtime_env(job_env, env)
        if mode:
            return self._submit_generator(spec, implicit)
        return self._submit_spec(spec, implicit)

    def _submit_spec(self, spec: TaskSpec, implicit: list[int]) -> Any:
        """Create the table entries of `spec`'s returns, hand it to the loop, return its refs."""
        n = spec.num_returns
        returns = [object_id(spec.task_id, i) for i in range(1, n + 1)]
        with self._lock:
            for oid in returns:
                self.table[oid] = ObjectEntry()
        ops = self._ops
        ops.append((self._op_submit, spec))
        for oid in implicit:
            ops.append((self._op_release, oid))
        self._kick()
        refs = [ObjectRef(oid, self) for oid in returns]
        if n == 1:
            return refs[0]
        return refs if n else None

    def _encode_args(
        self, name: str, args: tuple, kwargs: dict
    ) -> tuple[tuple, dict, list[int], list[int], list[int]]:
        """Encode call arguments: `(args, kwargs, argument oids, nested oids, implicit puts)`.

        Argument oids are refs passed as arguments (resolved to values before the call);
        nested oids are refs inside argument values (passed as refs, kept alive only).
        """
        arg_refs: list[int] = []
        held: list[int] = []
        implicit: list[int] = []
        try:
            a = tuple(
                self._encode_arg(v, f"argument {i} of {name}()", arg_refs, held, implicit)
                for i, v in enumerate(args)
            )
            kw = {
                k: self._encode_arg(v, f"argument '{k}' of {name}()", arg_refs, held, implicit)
                for k, v in kwargs.items()
            }
        except BaseException:
            for oid in implicit:
                self._ops.append((self._op_release, oid))
            raise
        return a, kw, arg_refs, held, implicit

    def _encode_arg(
        self, value: Any, what: str, arg_refs: list[int], held: list[int], implicit: list[int]
    ) -> Any:
        """An encoded value tuple, or an object id (int) for refs and large values."""
        if isinstance(value, ObjectRef):
            if value._node is not self:
                raise ValueError(f"{value!r} ({what}) belongs to another session")
            arg_refs.append(value._oid)
            return value._oid
        obj, nested = self._serialize_nested(value, what)
        held.extend(nested)  # kept alive until the task ends, not waited for
        if obj.total_size < self.inline_threshold:
            return (p.VALUE_INLINE, obj.to_bytes())
        oid = self._put_serialized(obj)  # large arguments become implicit puts, like Ray
        implicit.append(oid)
        arg_refs.append(oid)
        return oid

    def reduce_ref(self, oid: int) -> int:
        """A ref is being pickled inside a value: record it; return its owner's address."""
        refs = getattr(_collector, "refs", None)
        if refs is not None:
            refs.append(oid)
        obj = self.owner.object_entry(oid)
        if obj is not None and obj.owner >= 0:
            return obj.owner  # borrowed: name the real owner
        return OWNER_ADDR

    def adopt_ref(self, oid: int, owner: int) -> ObjectRef:
        """A ref unpickled here (a value returned by a task): borrow it from `owner`."""
        with self._lock:
            if oid in self.table:
                self._extra_refs[oid] = self._extra_refs.get(oid, 0) + 1
            else:
                self.table[oid] = ObjectEntry()
        self._ops.append((self._op_borrow, (oid, owner)))
        self._wake()
        return ObjectRef(oid, self)

    def put(self, value: Any) -> ObjectRef:
        """Store `value` (inline or in the arena) and return its ObjectRef."""
        self._check_open()
        if isinstance(value, ObjectRef):
            raise TypeError("put() of an ObjectRef is not supported")
        obj, nested = self._serialize_nested(value, "value passed to put()")
        return ObjectRef(self._put_serialized(obj, nested), self)

    @staticmethod
    def _serialize_nested(value: Any, what: str) -> tuple[SerializedObject, list[int]]:
        """Serialize `value`; also return the ids of the refs pickled inside it."""
        nested: list[int] = []
        _collector.refs = nested
        try:
            return serialize(value, what), nested
        finally:
            _collector.refs = None

    def _put_serialized(self, obj: SerializedObject, nested: list[int] | None = None) -> int:
        """Store a serialized value under a new id; `nested`: refs inside it (it holds them)."""
        with self._ids_lock:
            oid = self.owner.new_put_id()
        size = obj.total_size
        if size < self.inline_threshold:
            payload: bytes | None = obj.to_bytes()
            entry = ObjectEntry(READY, payload)
        else:
            payload = None
            offset = self._allocate(size)
            write_to_arena(self.arena, offset, obj)  # the copy runs on the caller's thread
            entry = ObjectEntry(READY, None, True)
            with self._lock:
                self.arena_objects[oid] = (offset, size)
        with self._lock:
            self.table[oid] = entry
        self._ops.append((self._op_put, (oid, size, payload, entry.stored, nested)))
        return oid

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        """Wait for `refs` and return their values (raising a task's error)."""
        entries = self._entries(refs)
        fut = None
        with self._lock:
            pending = [e for e in entries if e.state == PENDING]
            if pending:
                fut = Future(len(pending))
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None and not self._wait_future(fut, timeout):
            with self._lock:
                self._unregister(fut, pending)
                left = sum(e.state == PENDING for e in pending)
            if left:
                raise GetTimeoutError(
                    f"get() timed out after {timeout} s: {left} of {len(refs)} object(s) not ready"
                )
        return [self._value(r._oid, e) for r, e in zip(refs, entries)]

    def future_of(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A `concurrent.futures.Future` resolved with `ref`'s value (or its error) when the
        object is ready; nothing blocks meanwhile (``await ref`` waits on it)."""
        (e,) = self._entries([ref])
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if e.state == PENDING:
                if e.waiters is None:
                    e.waiters = []
                e.waiters.append(_FutureWaiter(self, ref, e, fut))  # type: ignore[arg-type]
                return fut
        self._resolve_future((fut, ref, e), 0.0)
        return fut

    def _resolve_future(self, item: tuple, now: float) -> None:
        """Set a `future_of` future from its ready entry (an op: outside the table lock)."""
        fut, ref, e = item
        try:
            value = self._value(ref._oid, e)
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    def wait(
        self, refs: list[ObjectRef], num_returns: int, timeout: float | None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Return `(ready, not_ready)` once `num_returns` are ready or `timeout` passed.

        Raises ValueError on duplicate refs. The common case (enough refs ready already)
        is one pass over `refs` without the lock: an entry's state only moves forward.
        """
        entries = self._entries(refs)
        if len(set(map(id, entries))) != len(entries):
            raise ValueError("wait() got duplicate ObjectRefs")
        if PENDING not in [e.state for e in entries]:
            return refs[:num_returns], refs[num_returns:]
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        n = 0
        for r, e in zip(refs, entries):
            if n < num_returns and e.state != PENDING:
                ready.append(r)
                n += 1
            else:
                not_ready.append(r)
        if n >= num_returns or timeout == 0:
            return ready, not_ready
        fut = None
        with self._lock:
            done = sum(e.state != PENDING for e in entries)
            pending = [e for e in entries if e.state == PENDING]
            if done < num_returns and (timeout is None or timeout > 0):
                fut = Future(num_returns - done)
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None:
            self._wait_future(fut, timeout)
            with self._lock:
                self._unregister(fut, pending)
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for r, e in zip(refs, entries):
            if e.state != PENDING and len(ready) < num_returns:
                ready.append(r)
            else:
                not_ready.append(r)
        return ready, not_ready

    def _wait_future(self, fut: Future, timeout: float | None) -> bool:
        """Wait for `fut`, driving the event loop on this thread when nobody else does."""
        if timeout is None:
            self._drive(fut, None)
            return fut.wait(None)
        deadline = time.monotonic() + timeout
        self._drive(fut, deadline)
        return fut.wait(max(0.0, deadline - time.monotonic()))

    def release_ref(self, oid: int) -> None:
        """Drop the program's reference to `oid` (called from `ObjectRef.__del__`)."""
        if not self.closed:
            self._ops.append((self._op_release, oid))
            if oid in self._actor_tokens:  # maybe an actor's last handle: collect it now
                self._wake()

    def _entries(self, refs: list[ObjectRef]) -> list[ObjectEntry]:
        self._check_open()
        table = self.table
        try:  # -1 is never an object id: a ref of another session fails the lookup
            return [table[r._oid if r._node is self else -1] for r in refs]
        except (KeyError, AttributeError):
            pass
        for r in refs:  # slow path: say what is wrong
            if not isinstance(r, ObjectRef):
                raise TypeError(f"expected an ObjectRef, got {type(r).__name__}")
            if r._node is not self or r._oid not in table:
                raise ObjectLostError(f"{r!r} is not known to this session")
        raise AssertionError("unreachable")

    @staticmethod
    def _unregister(fut: Future, entries: list[ObjectEntry]) -> None:
        for e in entries:
            if e.waiters:
                while fut in e.waiters:
                    e.waiters.remove(fut)

    def _value(self, oid: int, e: ObjectEntry) -> Any:
        if e.state == READY:
            if not e.stored:
                return loads(e.payload)
            with self._lock:
                loc = self.arena_objects.get(oid)
                if loc is None:  # spilled: read it from disk, it stays there
                    data = self._spilled_bytes_locked(oid)
                else:
                    offset, size = loc
                    self._pins[offset] = self._pins.get(offset, 0) + 1
            if loc is None:
                return loads(data)
            release = partial(self._unpins.append, offset)
            return deserialize_pinned(self.arena.view(offset, size), release)
        raise error_of(e.error_kind, e.error)

    def _allocate(self, nbytes: int) -> int:
        """Reserve an arena range from a program thread, spilling through the loop if full.

        On a full arena the loop thread is asked to make room (the raylet decides what to
        spill); the caller waits and retries while spilling frees something.
        """
        while True:
            try:
                return self._allocate_now(nbytes)
            except ObjectStoreFullError:
                if not self.config.object_spilling:
                    raise
                done = Future(1)
                box = [False]
                self._ops.append((self._op_make_room, (nbytes, done, box)))
                self._wake()
                done.wait(None)
                if not box[0]:
                    raise

    def _allocate_now(self, nbytes: int) -> int:
        """Reserve an arena range (any thread); retry once after applying pending unpins."""
        with self._lock:
            try:
                return self.arena.allocate(nbytes)
            except ObjectStoreFullError:
                self._apply_unpins_locked()
                return self.arena.allocate(nbytes)

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _check_open(self) -> None:
        if self.closed:
            raise RayError("the twinray node is shut down; call init() first")
        if self.loop_error is not None:
            raise RayError(f"the twinray event loop crashed: {self.loop_error!r}")


class _FutureWaiter:
    """An object-table waiter that resolves a `future_of` future: when its entry is ready
    (inside a step, table lock held) it queues the resolution as an op and wakes the loop."""

    __slots__ = ("node", "ref", "entry", "fut")

    def __init__(self, node: Any, ref: ObjectRef, entry: ObjectEntry, fut: Any) -> None:
        self.node = node
        self.ref = ref
        self.entry = entry
        self.fut = fut

    def hit(self) -> None:
        """The entry is ready: resolve the future on the next step (a failure at once: it
        needs no lock, and the failures of shutdown come after the last step)."""
        e = self.entry
        if e.state != READY:
            self.fut.set_exception(error_of(e.error_kind, e.error))
            return
        node = self.node
        node._ops.append((node._resolve_future, (self.fut, self.ref, e)))
        node._wake()
