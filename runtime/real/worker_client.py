"""The API inside a worker process: nested `.remote`, `get`, `put`, `wait` and actors via the driver.

Code running in a worker calls the same `runtime` functions as the driver; there,
`runtime.api._node` is a `WorkerClient`. Each call is one REQUEST to the driver over the
worker's socket, answered by one REPLY (the worker blocks for it). The driver hosts one
core `Owner` per worker process, so objects created here are owned by this worker, as in
Ray. Reference drops are batched and sent with the next message.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from functools import partial
from typing import Any

from runtime.exceptions import GetTimeoutError, InvalidOptionError, RayError
from runtime.generators import generator_mode
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.addresses import WORKER_OWNER_BASE
from runtime.real.serialization import (
    INLINE_THRESHOLD,
    deserialize_pinned,
    dumps,
    loads,
    serialize,
)
from runtime.real.worker_generators import WorkerStreamMixin
from runtime.runtime_env import (
    current_runtime_env,
    merge_runtime_env,
    refuse_generator_context,
)
from runtime.util.scheduling_strategies import raw_options

__all__ = ["WorkerClient"]

_sessions = itertools.count(1 << 30)  # disjoint from driver sessions (function id caches)


class WorkerClient(WorkerStreamMixin):
    """The `node` of a worker process: forwards API calls to the driver and waits for replies."""

    in_worker = True
    """A worker process's node (`runtime._session.NodeLike`), not the driver's."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.session = next(_sessions)
        self.releases: list[int] = []
        self.unpins: list[int] = []
        self.borrows: list[tuple[int, int]] = []
        """Refs unpickled here, to register with this worker's owner (sent before releases)."""
        self.lent: list[int] = []
        """Refs pickled since the last `take_lent`: each is claimed by what carries it out."""
        self.loans: list[tuple[int, int, int]] = []
        """``(oid, owner, container)`` for refs inside this worker's return values (held by
        that value, see `Owner.contain`) or pickled elsewhere (container 0: the driver
        holds them); sent as one ``lend`` request before anything else."""
        self.owners: dict[int, int] = {}
        """The owner of each borrowed object (absent: this worker owns it)."""
        self.addr = WORKER_OWNER_BASE + worker.worker_id
        self.stream_drops: list[tuple[int, int]] = []
        """Generators dropped here: ``(task_id, items taken)``, sent with the next message."""
        self.closed = False
        self.loop_error = None
        self._req_ids = itertools.count(1)
        self.pickling = threading.RLock()
        """Held while pickling a value whose nested refs are found through `lent`, and
        around a concurrent actor's writes (whose flush claims what is left in `lent`):
        bodies of a concurrent actor pickle on several threads."""

    # -- plumbing --------------------------------------------------------------------------

    def request(self, op: str, payload: Any, timeout: float | None = None) -> Any:
        """Send one request and block for its reply (raising its error)."""
        w = self.worker
        if w.concurrent is not None:  # bodies run on several threads: replies by request id
            return w.concurrent.request(op, payload, timeout)
        req_id = next(self._req_ids)
        w.replies.append(p.request(req_id, op, payload))
        w._flush()
        sock = w.conn.sock
        try:
            if timeout is not None:
                sock.settimeout(max(timeout, 1e-6))
            while True:
                try:
                    msgs = w._recv()
                except TimeoutError:
                    w.replies.append(p.request(0, rq.UNWAIT, req_id))
                    w._flush()
                    raise GetTimeoutError(f"timed out after {timeout} s") from None
                found = None
                for msg in msgs:
                    if msg[0] == p.REPLY and msg[1] == req_id:
                        found = msg
                    elif msg[0] == p.REVOKE:  # blocked here: give prefetched tasks back
                        w.revoke(msg)
                        w._flush()
                    elif msg[0] != p.REPLY:
                        w.inbox.append(msg)
                if found is not None:
                    break
        finally:
            if timeout is not None:
                sock.settimeout(None)
        _, _, ok, value = found
        if not ok:
            raise value if isinstance(value, BaseException) else RayError(str(value))
        return value

    def reduce_ref(self, oid: int) -> int:
        """A ref is pickled into a value leaving this worker: lend it; return its owner."""
        self.lent.append(oid)
        return self.owners.get(oid, self.addr)

    def take_lent(self, mark: int) -> list[int]:
        """The refs pickled since ``len(self.lent)`` was `mark`; they are claimed now."""
        oids = self.lent[mark:]
        del self.lent[mark:]
        return oids

    def take_lent_owned(self, mark: int) -> list[tuple[int, int]]:
        """`take_lent`, each ref with the address of its owner."""
        owners, addr = self.owners, self.addr
        return [(oid, owners.get(oid, addr)) for oid in self.take_lent(mark)]

    def lend_into(self, mark: int, container: int) -> None:
        """Refs pickled since `mark` are inside object `container` (0: no object)."""
        self.loans.extend((oid, owner, container) for oid, owner in self.take_lent_owned(mark))

    def adopt_ref(self, oid: int, owner: int) -> ObjectRef:
        """A ref unpickled here (inside an argument or a fetched value): borrow it."""
        if owner != self.addr:
            self.owners[oid] = owner
        self.borrows.append((oid, owner))
        return ObjectRef(oid, self)

    def release_ref(self, oid: int) -> None:
        """Drop a reference (called from `ObjectRef.__del__`; sent with the next message)."""
        self.releases.append(oid)

    def register_function(self, pickled: bytes) -> int:
        """Register a pickled function with the driver; return its id."""
        return self.request(rq.REGISTER, pickled)

    def _encode(
        self, name: str, args: tuple, kwargs: dict
    ) -> tuple[tuple, dict, list[int], list[int]]:
        """`(args, kwargs, argument oids, nested oids)`, as the driver's `_encode_args`."""
        refs: list[int] = []
        held: list[int] = []

        def enc(v: Any, what: str) -> Any:
            if isinstance(v, ObjectRef):
                refs.append(v._oid)
                return v._oid
            with self.pickling:
                mark = len(self.lent)
                data = dumps(v, what)
                held.extend(self.take_lent(mark))  # nested refs: kept alive until the task ends
            return (p.VALUE_INLINE, data)

        a = tuple(enc(v, f"argument {i} of {name}()") for i, v in enumerate(args))
        kw = {k: enc(v, f"argument '{k}' of {name}()") for k, v in kwargs.items()}
        return a, kw, refs, held

    def _refs(self, oids: list[int], n: int) -> Any:
        refs = [ObjectRef(oid, self) for oid in oids]
        if n == 1:
            return refs[0]
        return refs if n else None

    # -- the API ---------------------------------------------------------------------------

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a nested task; this worker owns its results."""
        fn_id = rf._function_id(self)
        name = rf.__qualname__
        n, mode = rf._returns(options)
        if mode:
            refuse_generator_context(name, options, current_runtime_env())
        a, kw, refs, held = self._encode(name, args, kwargs)
        spec = (  # the layout of `requests.SUBMIT`
            fn_id,
            (a, kw),
            tuple(refs),
            tuple(held),
            options.resource_demand(),
            n,
            options.max_retries,
            options.retry_exceptions,
            options.name or name,
            raw_options(options),
            merge_runtime_env(current_runtime_env(), options.runtime_env),
            mode,
        )
        oids = self.request(rq.SUBMIT, spec)
        return self._generator_of(oids[0], mode) if mode else self._refs(oids, n)

    def put(self, value: Any) -> ObjectRef:
        """Store `value`; this worker owns it."""
        if isinstance(value, ObjectRef):
            raise TypeError("put() of an ObjectRef is not supported")
        with self.pickling:
            mark = len(self.lent)
            obj = serialize(value, "value passed to put()")
            nested = self.take_lent_owned(mark)
        arena = self.worker.arena
        if arena is not None and obj.total_size >= INLINE_THRESHOLD:
            oid = self._put_in_place(arena, obj, nested)
            if oid is not None:
                return ObjectRef(oid, self)
        return ObjectRef(self.request(rq.PUT, (obj.to_bytes(), nested)), self)

    def _put_in_place(self, arena: Any, obj: Any, nested: list[tuple[int, int]]) -> int | None:
        """Write `obj` straight into the node's arena, which this process maps (a worker, a
        driver on the node's machine): reserve a range, write, seal; its oid, or None if
        the node wants it inline (below its threshold)."""
        offset = self.request(rq.PUT_RESERVE, obj.total_size)
        if offset is None:
            return None
        try:
            obj.write_into(arena.writable_view(offset, obj.total_size))
        except BaseException:
            self.request(rq.PUT_SEAL, (offset, None))  # give the range back
            raise
        return self.request(rq.PUT_SEAL, (offset, nested))

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        """Wait for `refs` (the driver lends this worker's CPU out meanwhile); return values."""
        concurrent = self.worker.concurrent
        if concurrent is not None and concurrent.is_async:
            _warn_blocking_get(concurrent)
        items = self.request(rq.GET, [self._oid(r) for r in refs], timeout)
        return [self._value(item) for item in items]

    def future_of(self, ref: ObjectRef) -> Future:
        """A `concurrent.futures.Future` of `ref`'s value (what ``await ref`` waits on).

        In an async or threaded actor the reply resolves it on the reader thread, so the
        awaiting event loop keeps running; elsewhere the worker has no other reader while
        a body runs, so the value is fetched at once (the body waits, as with `get`).
        """
        oid = self._oid(ref)
        fut: Future = Future()
        concurrent = self.worker.concurrent
        if concurrent is None:
            try:
                fut.set_result(self.get([ref], None)[0])
            except BaseException as exc:
                fut.set_exception(exc)
            return fut

        def resolve(msg: tuple, ref: ObjectRef = ref) -> None:
            # `ref` is bound here so the pending request keeps it alive: ``await x.remote()``
            # drops the temporary before its reply comes, and a release reaching the
            # driver first would free the object under the waiting `get` (Ray keeps an
            # awaited ref alive until the await completes).
            _, _, ok, value = msg
            try:
                if not ok:
                    raise value if isinstance(value, BaseException) else RayError(str(value))
                fut.set_result(self._value(value[0]))
            except BaseException as exc:
                fut.set_exception(exc)

        concurrent.request_async(rq.GET, [oid], resolve)
        return fut

    def wait(
        self, refs: list[ObjectRef], num_returns: int, timeout: float | None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Return `(ready, not_ready)` like the driver's `wait`."""
        oids = [self._oid(r) for r in refs]
        try:
            ready = set(self.request(rq.WAIT, (oids, num_returns), timeout))
        except GetTimeoutError:
            ready = set(self.request(rq.WAIT, (oids, 0)))
        ready_refs = [r for r in refs if r._oid in ready][:num_returns]
        chosen = {r._oid for r in ready_refs}
        return ready_refs, [r for r in refs if r._oid not in chosen]

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        """Cancel the task producing `ref` (owned by this worker)."""
        self.request(rq.CANCEL, (self._oid(ref), force))

    def create_actor(self, ac: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Create an actor owned by this worker."""
        from runtime.actor import ActorHandle, actor_concurrency

        if options.checkpoint_interval is not None:
            raise InvalidOptionError(
                "checkpoint_interval is available on actors the driver creates, not on "
                f"actors created inside a task or actor ({ac.__qualname__})"
            )
        fn_id = ac._function._function_id(self)
        a, kw, refs, held = self._encode(ac.__qualname__, args, kwargs)
        refs += held  # the core registers an actor once its constructor's refs are ready
        demand, hold = options.demand_and_hold()
        payload = (
            fn_id,
            (a, kw),
            tuple(refs),
            demand,
            hold,
            ac.__qualname__,
            ac._methods,
            options.name,
            options.max_restarts,
            options.get_if_exists,
            not options.name and options.lifetime != "detached",  # collected with its handles
            actor_concurrency(ac, options),
            (options.max_task_retries, ac._method_retries),
            raw_options(options),
            merge_runtime_env(current_runtime_env(), options.runtime_env),
        )
        actor_id, token, retry_options = self.request(rq.CREATE_ACTOR, payload)
        ref = ObjectRef(token, self) if token else None
        return ActorHandle(actor_id, ac.__qualname__, ac._methods, ref, retry_options)

    def call_actor(
        self,
        handle: Any,
        method: str,
        args: tuple,
        kwargs: dict,
        num_returns: int,
        max_retries: int = 0,
        retry_exceptions: bool = False,
    ) -> Any:
        """Call a method of an actor (created anywhere) from this worker."""
        name = f"{handle._class_name}.{method}"
        num_returns, mode = generator_mode(num_returns, True, name)  # checked by the worker
        a, kw, refs, held = self._encode(name, args, kwargs)
        payload = (  # the layout of `requests.CALL_ACTOR`
            handle._actor_id,
            method,
            (a, kw),
            tuple(refs),
            tuple(held),
            num_returns,
            name,
            max_retries,
            retry_exceptions,
            mode,
        )
        oids = self.request(rq.CALL_ACTOR, payload)
        return self._generator_of(oids[0], mode) if mode else self._refs(oids, num_returns)

    def get_actor(self, name: str) -> Any:
        """The handle of the live actor named `name`."""
        from runtime.actor import ActorHandle

        actor_id, class_name, methods, retry_options = self.request(rq.GET_ACTOR, name)
        return ActorHandle(actor_id, class_name, methods, None, retry_options)

    def kill_actor(self, handle: Any, no_restart: bool) -> None:
        """Terminate an actor."""
        self.request(rq.KILL_ACTOR, (handle._actor_id, no_restart))

    # -- placement groups (decided by the driver's core) ------------------------------------

    def create_placement_group(
        self, bundles: list[dict[str, float]], strategy: str, name: str, lifetime: str | None
    ) -> int:
        """Create a group owned by this worker; return its id."""
        return self.request(rq.PG_CREATE, (bundles, strategy, name, lifetime))

    def remove_placement_group(self, pg_id: int) -> None:
        """Remove a group."""
        self.request(rq.PG_REMOVE, pg_id)

    def placement_group_ready(self, pg_id: int, payload: bytes) -> ObjectRef:
        """A ref (owned by this worker) resolving to ``payload`` once the group exists."""
        return ObjectRef(self.request(rq.PG_READY, (pg_id, payload)), self)

    def placement_group_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of GCS placement-group rows (see `runtime.real.groups`)."""
        return self.request(rq.PG_ROWS, (pg_id, name))

    def current_placement_group(self) -> tuple[int, list[dict[str, float]], bool] | None:
        """The group of the task or actor this worker runs, if any."""
        return self.request(rq.PG_CURRENT, None)

    def timeline(self, filename: str | None = None) -> list:
        """Not available inside a worker."""
        raise RuntimeError("timeline() can only be called from the driver")

    def assigned_resources(self) -> dict[str, float]:
        """The resources the body running here was given (asked of the driver)."""
        return self.request(rq.ASSIGNED, None)

    def runtime_info(self) -> dict[str, Any]:
        """Resources and context as the driver sees them."""
        return self.request(rq.INFO, None)

    def inspect(self, read: Any) -> Any:
        """Run `read(view)` over the node's core tables (the state API); return its result."""
        from runtime.real.serialization import dumps_function

        return self.request(rq.INSPECT, dumps_function(read))

    # -- values ----------------------------------------------------------------------------

    def _oid(self, ref: Any) -> int:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"expected an ObjectRef, got {type(ref).__name__}")
        if ref._node is not self:
            raise ValueError(f"{ref!r} was not created in this worker process")
        return ref._oid

    def _value(self, item: tuple) -> Any:
        from runtime.real.futures import error_of

        if not item[0]:
            raise error_of(item[1], item[2])
        enc = item[1]
        if enc[0] == p.VALUE_INLINE:
            return loads(enc[1])
        offset, size = enc[1], enc[2]
        view = self.worker.arena.view(offset, size)
        return deserialize_pinned(view, partial(self.unpins.append, offset))


_warned_blocking_get = False


def _warn_blocking_get(concurrent: Any) -> None:
    """Warn once, as Ray does, when an async actor's body blocks its event loop in `get`."""
    global _warned_blocking_get
    if _warned_blocking_get or threading.current_thread() is not concurrent.loop_thread:
        return
    _warned_blocking_get = True
    import logging

    logging.getLogger("runtime").warning(
        "Using blocking ray.get inside async actor. This blocks the event loop. Please use "
        "`await` on object ref with asyncio.gather if you want to yield execution to the "
        "event loop instead."
    )
