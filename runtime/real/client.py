"""Client, a part of the node: what program threads call (submit, put, get, wait, releases), handed to the loop."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
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
)
from runtime.object_ref import ObjectRef
from runtime.options import speculation_policy
from runtime.real import protocol as p
from runtime.real.addresses import FN_ID_BASE, NODE_ID, OWNER_ADDR
from runtime.real.futures import FAILED, PENDING, READY, Future, ObjectEntry, error_of
from runtime.real.serialization import (
    SerializedObject,
    deserialize_pinned,
    loads,
    serialize,
    write_to_arena,
)
from runtime.runtime_env import merge_runtime_env, refuse_generator_context
from runtime.util.scheduling_strategies import strategy_of

__all__ = ["Client"]

_collector = threading.local()
"""Per thread: the list collecting nested refs while the driver serializes task arguments."""


class Client:
    """What program threads call: they never touch core objects, only queue ops and wait.

    It owns the function ids; the loop's queue and calls (`ops`, `kick`, `wake`, `drive`,
    `check_open`), the driver's owner (ids, under `ids_lock`), the object table and arena,
    and the pool's function table are passed in. Its `_op_*` methods are the loop-thread
    halves of what it queues. Refs it makes belong to `node`.
    """

    def __init__(
        self,
        *,
        node: Any,
        loop: Any,
        ids_lock: Any,
        owner: Any,
        objects: Any,
        arena: Any,
        inline_threshold: int,
        object_spilling: bool,
        out: list[Any],
    ) -> None:
        self.node = node
        """The node the refs made here belong to (`runtime._session.NodeLike`)."""
        self.loop = loop
        self.ops = loop.ops
        self.kick = loop.kick
        self.wake = loop.wake
        self.drive = loop.drive
        self.check_open = loop.check_open
        self.ids_lock = ids_lock
        self.owner = owner
        self.objects = objects
        self.arena = arena
        self.functions: dict[int, bytes] = {}
        """Function id -> pickled function: the pool's table (see `connect`), which sends it
        to a worker on first use."""
        self.inline_threshold = inline_threshold
        self.object_spilling = object_spilling
        self.actor_tokens: dict[int, int] = {}
        """The actor API's token table (a released token may be an actor's last handle)."""
        self.out = out
        self.fn_ids = itertools.count(FN_ID_BASE + 1)  # unique in the cluster
        self.submit_generator: Callable[[TaskSpec, list[int]], Any] | None = None
        """Submit a generator task (the stream API's; see `connect`)."""
        self.make_room: Callable[[Any, float], None] | None = None
        """The loop-thread op that makes room in a full arena (the effects'; see `connect`)."""

    def connect(
        self,
        submit_generator: Callable[[TaskSpec, list[int]], Any],
        make_room: Callable[[Any, float], None],
        functions: dict[int, bytes],
        actor_tokens: dict[int, int],
    ) -> None:
        """Plug in the parts made after this one: stream API, effects, the pool's functions,
        the actor API's token table."""
        self.submit_generator = submit_generator
        self.make_room = make_room
        self.functions = functions
        self.actor_tokens = actor_tokens

    def register_function(self, pickled: bytes) -> int:
        """Give a pickled function an id on this node (workers receive it on first use)."""
        fn_id = next(self.fn_ids)
        self.functions[fn_id] = pickled
        return fn_id

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a task of remote function `rf`; return its ObjectRef(s)."""
        self.check_open()
        fn_id = rf._function_id(self.node)
        name = rf.__qualname__
        resources = options.resource_demand()
        strategy = strategy_of(options, resources, name)
        n, mode = rf._returns(options)
        if mode:
            refuse_generator_context(name, options, api._job.runtime_env)
        a, kw, arg_refs, held, implicit = self.encode_args(name, args, kwargs)
        with self.ids_lock:
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
            speculation=speculation_policy(options._speculation, strategy, mode, name),
        )
        env, job_env = options.runtime_env, api._job.runtime_env
        if env or job_env:  # the job's runtime_env, overridden by the task's
            spec.runtime_env = merge_runtime_env(job_env, env)
        if mode:
            return self.submit_generator(spec, implicit)
        return self.submit_spec(spec, implicit)

    def submit_spec(self, spec: TaskSpec, implicit: list[int]) -> Any:
        """Create the table entries of `spec`'s returns, hand it to the loop, return its refs."""
        n = spec.num_returns
        returns = [object_id(spec.task_id, i) for i in range(1, n + 1)]
        with self.objects.lock:
            for oid in returns:
                self.objects.entries[oid] = ObjectEntry()
        ops = self.ops
        ops.append((self._op_submit, spec))
        for oid in implicit:
            ops.append((self._op_release, oid))
        self.kick()
        node = self.node
        refs = [ObjectRef(oid, node) for oid in returns]
        if n == 1:
            return refs[0]
        return refs if n else None

    def encode_args(
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
                self.ops.append((self._op_release, oid))
            raise
        return a, kw, arg_refs, held, implicit

    def _encode_arg(
        self, value: Any, what: str, arg_refs: list[int], held: list[int], implicit: list[int]
    ) -> Any:
        """An encoded value tuple, or an object id (int) for refs and large values."""
        if isinstance(value, ObjectRef):
            if value._node is not self.node:
                raise ValueError(f"{value!r} ({what}) belongs to another session")
            arg_refs.append(value._oid)
            return value._oid
        obj, nested = self._serialize_nested(value, what)
        held.extend(nested)  # kept alive until the task ends, not waited for
        if obj.total_size < self.inline_threshold:
            return (p.VALUE_INLINE, obj.to_bytes())
        oid = self.put_serialized(obj)  # large arguments become implicit puts, like Ray
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
        with self.objects.lock:
            if oid in self.objects.entries:
                self.objects.extra_refs[oid] = self.objects.extra_refs.get(oid, 0) + 1
            else:
                self.objects.entries[oid] = ObjectEntry()
        self.ops.append((self._op_borrow, (oid, owner)))
        self.wake()
        return ObjectRef(oid, self.node)

    def put(self, value: Any) -> ObjectRef:
        """Store `value` (inline or in the arena) and return its ObjectRef."""
        self.check_open()
        if isinstance(value, ObjectRef):
            raise TypeError("put() of an ObjectRef is not supported")
        obj, nested = self._serialize_nested(value, "value passed to put()")
        return ObjectRef(self.put_serialized(obj, nested), self.node)

    @staticmethod
    def _serialize_nested(value: Any, what: str) -> tuple[SerializedObject, list[int]]:
        """Serialize `value`; also return the ids of the refs pickled inside it."""
        nested: list[int] = []
        _collector.refs = nested
        try:
            return serialize(value, what), nested
        finally:
            _collector.refs = None

    def put_serialized(self, obj: SerializedObject, nested: list[int] | None = None) -> int:
        """Store a serialized value under a new id; `nested`: refs inside it (it holds them)."""
        with self.ids_lock:
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
            with self.objects.lock:
                self.objects.arena_objects[oid] = (offset, size)
        with self.objects.lock:
            self.objects.entries[oid] = entry
        self.ops.append((self._op_put, (oid, size, payload, entry.stored, nested)))
        return oid

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        """Wait for `refs` and return their values (raising a task's error)."""
        entries = self.entries(refs)
        fut = None
        with self.objects.lock:
            pending = [e for e in entries if e.state == PENDING]
            if pending:
                fut = Future(len(pending))
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None and not self.wait_future(fut, timeout):
            with self.objects.lock:
                self.unregister(fut, pending)
                left = sum(e.state == PENDING for e in pending)
            if left:
                raise GetTimeoutError(
                    f"get() timed out after {timeout} s: {left} of {len(refs)} object(s) not ready"
                )
        return [self._value(r._oid, e) for r, e in zip(refs, entries)]

    def future_of(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A `concurrent.futures.Future` resolved with `ref`'s value (or its error) when the
        object is ready; nothing blocks meanwhile (``await ref`` waits on it)."""
        (e,) = self.entries([ref])
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self.objects.lock:
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
        entries = self.entries(refs)
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
        with self.objects.lock:
            done = sum(e.state != PENDING for e in entries)
            pending = [e for e in entries if e.state == PENDING]
            if done < num_returns and (timeout is None or timeout > 0):
                fut = Future(num_returns - done)
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None:
            self.wait_future(fut, timeout)
            with self.objects.lock:
                self.unregister(fut, pending)
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for r, e in zip(refs, entries):
            if e.state != PENDING and len(ready) < num_returns:
                ready.append(r)
            else:
                not_ready.append(r)
        return ready, not_ready

    def wait_future(self, fut: Future, timeout: float | None) -> bool:
        """Wait for `fut`, driving the event loop on this thread when nobody else does."""
        if timeout is None:
            self.drive(fut, None)
            return fut.wait(None)
        deadline = time.monotonic() + timeout
        self.drive(fut, deadline)
        return fut.wait(max(0.0, deadline - time.monotonic()))

    def release_ref(self, oid: int) -> None:
        """Drop the program's reference to `oid` (called from `ObjectRef.__del__`)."""
        if not self.loop.closed:
            self.ops.append((self._op_release, oid))
            if oid in self.actor_tokens:  # maybe an actor's last handle: collect it now
                self.wake()

    def entries(self, refs: list[ObjectRef]) -> list[ObjectEntry]:
        self.check_open()
        table, node = self.objects.entries, self.node
        try:  # -1 is never an object id: a ref of another session fails the lookup
            return [table[r._oid if r._node is node else -1] for r in refs]
        except (KeyError, AttributeError):
            pass
        for r in refs:  # slow path: say what is wrong
            if not isinstance(r, ObjectRef):
                raise TypeError(f"expected an ObjectRef, got {type(r).__name__}")
            if r._node is not node or r._oid not in table:
                raise ObjectLostError(f"{r!r} is not known to this session")
        raise AssertionError("unreachable")

    @staticmethod
    def unregister(fut: Future, entries: list[ObjectEntry]) -> None:
        for e in entries:
            if e.waiters:
                while fut in e.waiters:
                    e.waiters.remove(fut)

    def _value(self, oid: int, e: ObjectEntry) -> Any:
        if e.state == READY:
            if not e.stored:
                return loads(e.payload)
            with self.objects.lock:
                loc = self.objects.arena_objects.get(oid)
                if loc is None:  # spilled: read it from disk, it stays there
                    data = self.objects.spilled_bytes_locked(oid)
                else:
                    offset, size = loc
                    self.objects.pins[offset] = self.objects.pins.get(offset, 0) + 1
            if loc is None:
                return loads(data)
            release = partial(self.objects.unpins.append, offset)
            return deserialize_pinned(self.arena.view(offset, size), release)
        raise error_of(e.error_kind, e.error)

    def _allocate(self, nbytes: int) -> int:
        """Reserve an arena range from a program thread, spilling through the loop if full.

        On a full arena the loop thread is asked to make room (the raylet decides what to
        spill); the caller waits and retries while spilling frees something.
        """
        while True:
            try:
                return self.objects.allocate_now(nbytes)
            except ObjectStoreFullError:
                if not self.object_spilling:
                    raise
                done = Future(1)
                box = [False]
                assert self.make_room is not None, "connect() was not called"
                self.ops.append((self.make_room, (nbytes, done, box)))
                self.wake()
                done.wait(None)
                if not box[0]:
                    raise

    # -- loop thread: the operations program threads queue ----------------------------------

    def _op_submit(self, spec: TaskSpec, now: float) -> None:
        """Loop thread: hand a submitted task to the driver's owner."""
        self.owner.submit(spec, now, self.out)

    def _op_put(self, item: tuple[int, int, bytes | None, bool, Any], now: float) -> None:
        """Loop thread: register a put (and the refs inside its value) with the owner."""
        oid, size, payload, stored, nested = item
        owner = self.owner
        owner.put(size, payload, stored, now, self.out, oid=oid)
        for inner in nested or ():  # refs inside the value live as long as it does
            owner.contain(oid, inner, OWNER_ADDR, now, self.out)

    def _op_release(self, oid: int, now: float) -> None:
        """Loop thread: the program dropped a ref (the table entry goes with the last handle)."""
        with self.objects.lock:
            extra = self.objects.extra_refs.get(oid)
            if extra:  # another handle of this object is still alive
                if extra == 1:
                    del self.objects.extra_refs[oid]
                else:
                    self.objects.extra_refs[oid] = extra - 1
            else:
                self.objects.entries.pop(oid, None)
        self.owner.remove_ref(oid, now, self.out)

    def _op_borrow(self, item: tuple[int, int], now: float) -> None:
        """Loop thread: borrow a ref unpickled here; resolve its entry if the owner knows it."""
        oid, owner_addr = item
        self.owner.borrow(oid, owner_addr, now, self.out)
        obj = self.owner.object_entry(oid)
        if obj is None or obj.state == PENDING:
            return  # ObjectReady will resolve the table entry
        with self.objects.lock:  # known already (e.g. lent by a worker): resolve the entry now
            e = self.objects.entries.get(oid)
            if e is None or e.state != PENDING:
                return
            if obj.state == READY:
                e.stored, e.payload, e.state = obj.stored, obj.payload, READY
            else:
                e.error_kind, e.error, e.state = obj.error_kind, obj.error, FAILED
            waiters, e.waiters = e.waiters, None
            for fut in waiters or ():
                fut.hit()


class _FutureWaiter:
    """An object-table waiter that resolves a `future_of` future: when its entry is ready
    (inside a step, table lock held) it queues the resolution as an op and wakes the loop."""

    __slots__ = ("client", "ref", "entry", "fut")

    def __init__(self, client: Client, ref: ObjectRef, entry: ObjectEntry, fut: Any) -> None:
        self.client = client
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
        client = self.client
        client.ops.append((client._resolve_future, (self.fut, self.ref, e)))
        client.wake()
