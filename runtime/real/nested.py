"""The node's nested owners: one core Owner per worker, serving the REQUESTs of code running in workers.

Each worker process gets its own core `Owner` (address ``WORKER_OWNER_BASE + worker_id``,
owner index ``worker_id + 1``), created on its first request, so objects a task creates
are owned by the worker that created them, as in Ray. A `get` or `wait` that has to wait
tells the raylet the worker is blocked (``WorkerBlocked``: its CPU is lent out) and, when
no pool worker is idle, starts one more through the fork server, so nested waits cannot
deadlock the pool; ``WorkerUnblocked`` takes the CPU back when the reply goes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.core.cluster import ControlPlane
from runtime.core.ids import generator_item_task, object_id, owner_index_of, task_of
from runtime.core.messages import ObjectLost, ObjectReady, WorkerBlocked, WorkerUnblocked
from runtime.core.owner import FAILED, PENDING, READY, Owner
from runtime.core.task import ACTOR_METHOD, ERR_OBJECT_LOST, TASK, TaskSpec
from runtime.options import speculation_policy
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.addresses import NODE_ID, OWNER_INDEX_BASE, WORKER_OWNER_BASE
from runtime.real.driver_lineage import DRIVER_TASK_BIT
from runtime.real.serialization import dumps
from runtime.util.scheduling_strategies import strategy_of_raw

__all__ = ["NestedOwners", "NestedWait", "call_fields"]

_TOKEN = dumps(None, "actor token")
"""The value of an actor's token object (see `ActorMixin._actor_token`)."""


@dataclass(slots=True)
class NestedWait:
    """A worker's `get` or `wait` that waits for objects of its owner."""

    w: Any
    req_id: int
    oids: list[int]
    need: int
    num_returns: int = -1
    """-1 for get; the requested count for wait."""
    task_id: int = 0
    """The task whose CPU was lent out meanwhile (0: none)."""
    done: bool = False


class NestedOwners:
    """One core `Owner` per worker process, and the REQUESTs workers send (loop thread only).

    The owners live in the node's address map (`components`) like the driver's; this part
    answers each worker's API calls with that worker's owner, and holds the gets, waits
    and replies pending for workers. What it needs is passed in: the core wiring and
    components, the command list and a way to run it now (`execute`), the pool (replies,
    blocked workers), the object table, an arena allocator, and the actors' class table
    and token map; the other parts' request handlers are added to `request_ops`.
    """

    def __init__(
        self,
        *,
        plane: ControlPlane,
        components: dict[int, Any],
        gcs: Any,
        raylet: Any,
        driver_owner: Owner,
        out: list[Any],
        execute: Callable[[float], None],
        pool: Any,
        objects: Any,
        arena: Any,
        inline_threshold: int,
        allocate: Callable[[int, float], int],
        register_function: Callable[[bytes], int],
        runtime_info: Callable[[], dict[str, Any]],
        worker_group: Callable[[Any], Any],
        class_meta: dict[int, tuple[str, dict[str, int]]],
        actor_tokens: dict[int, int],
    ) -> None:
        self.plane = plane
        """The core wiring (`runtime.core.cluster`): it makes each worker's owner."""
        self.components = components
        """The node's address map: each worker's owner is registered there on first use."""
        self.gcs = gcs
        self.raylet = raylet
        self.driver_owner = driver_owner
        """The driver's owner: it borrows refs that workers pickle outside any value."""
        self.out = out
        self.execute = execute
        self.pool = pool
        self.objects = objects
        self.arena = arena
        self.inline_threshold = inline_threshold
        self.allocate = allocate
        self.register_function = register_function
        self.runtime_info = runtime_info
        self.worker_group = worker_group
        self.class_meta = class_meta
        """Actor class function id -> (class name, methods), shared with the actor API."""
        self.actor_tokens = actor_tokens
        """Token object id -> the actor its handles keep alive, shared with the actor API."""
        self.owner_workers: dict[int, Any] = {}
        """Owner address -> the worker whose owner it is."""
        self.start_owners = False
        """Start each new owner (subscribes it to node deaths): set in a multi-node cluster."""
        self.waits: dict[tuple[int, int], list[NestedWait]] = {}
        """(owner address, oid) -> the workers' gets and waits for it."""
        self.worker_waits: dict[tuple[int, int], NestedWait] = {}
        """(worker id, request id) -> its pending get or wait (for ``unwait``)."""
        self.fetch: Callable[[int, int, int, Callable[[str | None, float], None]], None] | None
        self.fetch = None
        """Pull a value stored on another node here, then call back (error or None, now):
        set by a node process's `runtime.real.transfers.Transfers`; None in the embedded node."""
        self.request_ops: dict[str, Callable[[Any, int, Any, float], None]] = {
            rq.REGISTER: self._req_register,
            rq.SUBMIT: self._req_submit,
            rq.PUT: self._req_put,
            rq.PUT_RESERVE: self._req_put_reserve,
            rq.PUT_SEAL: self._req_put_seal,
            rq.LOGS: self._req_logs,
            rq.GET: self._req_get,
            rq.WAIT: self._req_wait,
            rq.UNWAIT: self._req_unwait,
            rq.RELEASE: self._req_release,
            rq.BORROW: self._req_borrow,
            rq.LEND: self._req_lend,
            rq.UNPIN: self._req_unpin,
            rq.CANCEL: self._req_cancel,
            rq.CREATE_ACTOR: self._req_create_actor,
            rq.CALL_ACTOR: self._req_call_actor,
            rq.GET_ACTOR: self._req_get_actor,
            rq.KILL_ACTOR: self._req_kill_actor,
            rq.INFO: self._req_info,
            rq.SHARED: self._req_shared,
            rq.SUBMIT_AS: self._req_submit_as,
            rq.CALL_AS: self._req_call_as,
            rq.RESUME: self._req_resume,
        }
        """Worker REQUEST op -> handler (the ops and payloads: `runtime.real.requests`)."""

    def on_request(self, w: Any, msg: tuple, now: float) -> None:
        """REQUEST from a worker: run its op's handler (an exception is the reply)."""
        _, req_id, op, payload = msg
        try:
            self.request_ops[op](w, req_id, payload, now)
        except Exception as exc:  # answer with the error rather than crash the loop
            if req_id:
                self.reply(w, req_id, False, exc)

    def reply(self, w: Any, req_id: int, ok: bool, value: Any) -> None:
        """Queue the REPLY to request `req_id` of worker `w` (dropped if it died)."""
        if w.alive:
            w.outbox.append(p.reply(req_id, ok, value))
            self.pool.dirty.append(w)

    def owner_of(self, w: Any) -> Owner:
        """Worker `w`'s core Owner, made and registered in the address map on first use."""
        owner = w.owner
        if owner is None:
            addr = WORKER_OWNER_BASE + w.worker_id
            owner = self.plane.new_owner(addr, NODE_ID, OWNER_INDEX_BASE + w.worker_id + 1)
            self.components[addr] = owner
            w.owner = owner
            self.owner_workers[addr] = w
            if self.start_owners:  # in a cluster: hear of node deaths (retries)
                owner.start(0.0, self.out)
        return owner

    # -- requests --------------------------------------------------------------------------

    def _req_register(self, w: Any, req_id: int, pickled: bytes, now: float) -> None:
        self.reply(w, req_id, True, self.register_function(pickled))

    def _req_submit(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        try:
            fields = self.submit_fields(w, payload)
        except (ValueError, TypeError) as exc:
            self.reply(w, req_id, False, exc)
            return
        self._submit_for(w, req_id, self.owner_of(w), now, **fields)

    def submit_fields(self, w: Any, payload: tuple) -> dict[str, Any]:
        """The `TaskSpec` fields of a ``submit`` request's payload (`ValueError`,
        `TypeError`: a bad scheduling strategy or speculation option)."""
        (
            fn_id,
            args,
            refs,
            held,
            resources,
            n,
            max_retries,
            retry_exceptions,
            name,
            raw,
            env,
            mode,
            speculation,
        ) = payload  # the layout of `requests.SUBMIT`
        strategy = strategy_of_raw(raw, resources, name, self.worker_group(w))
        policy = speculation_policy(speculation, strategy, mode, name)
        return dict(
            function=fn_id,
            args=args,
            resources=resources,
            num_returns=n,
            max_retries=max_retries,
            retry_exceptions=retry_exceptions,
            name=name,
            arg_refs=refs,
            held_refs=held,
            strategy=strategy,
            runtime_env=env,
            generator=mode,
            speculation=policy,
        )

    def _req_call_actor(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        fields = call_fields(payload)
        owner = self.owner_of(w)
        owner.attach_actor(fields["actor_id"], self.out)
        self._submit_for(w, req_id, owner, now, **fields)

    def _req_submit_as(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        """A connected driver's ``submit`` under the task id it chose: a task its owner has
        already (sent again after a head restart, its lineage resumed) is only answered."""
        task_id, body = payload
        owner = self.owner_of(w)
        if self._known_task(w, req_id, owner, task_id, body[5]):
            return
        try:
            fields = self.submit_fields(w, body)
        except (ValueError, TypeError) as exc:
            self.reply(w, req_id, False, exc)
            return
        self._submit_for(w, req_id, owner, now, task_id=task_id, **fields)

    def _req_call_as(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        """A connected driver's ``call_actor`` under the task id it chose (as `submit_as`)."""
        task_id, body = payload
        owner = self.owner_of(w)
        if self._known_task(w, req_id, owner, task_id, body[5]):
            return
        fields = call_fields(body)
        owner.attach_actor(fields["actor_id"], self.out)
        self._submit_for(w, req_id, owner, now, task_id=task_id, **fields)

    def _known_task(self, w: Any, req_id: int, owner: Any, task_id: int, n: int) -> bool:
        """Answer a chosen-id submission whose task `owner` has; False: submit it."""
        if owner_index_of(task_id) != OWNER_INDEX_BASE + w.worker_id + 1 or not (
            task_id & DRIVER_TASK_BIT
        ):
            raise ValueError(f"task id {task_id:x} is not one this driver may choose")
        spec = owner.pending_task(task_id)
        if spec is None and (n < 1 or owner.object_entry(object_id(task_id, 1)) is None):
            return False  # a new task (the hot path)
        oids = [object_id(task_id, k) for k in range(1, n + 1)]
        seq = spec.seq if spec is not None else 0
        self.reply(w, req_id, True, (oids, seq) if seq else oids)
        return True

    def _req_resume(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        """Only a restarted head resumes a driver's owner (`runtime.real.driver_resume`
        replaces this handler there)."""
        raise ValueError("resume: this node did not restart; there is no owner to resume")

    def _submit_for(self, w: Any, req_id: int, owner: Any, now: float, **fields: Any) -> None:
        """Submit a task of worker `w`'s `owner` built from `fields`; reply with its return
        ids (to a connected driver, an actor call's with its sequence number: the driver
        keeps it to resume the call after a head restart, `runtime.real.driver_resume`)."""
        task_id = fields.pop("task_id", 0) or owner.new_task_id()  # 0: the owner picks
        spec = TaskSpec(task_id=task_id, owner=owner.addr, owner_node=NODE_ID, **fields)
        oids = list(owner.submit(spec, now, self.out))
        self.reply(w, req_id, True, (oids, spec.seq) if w.remote and spec.seq else oids)

    def _req_create_actor(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        (
            fn_id, args, refs, demand, hold, class_name, methods, name, restarts, if_exists, gc,
            max_concurrency, retry_options, raw, env,
        ) = payload  # fmt: skip
        try:
            strategy = strategy_of_raw(raw, demand, class_name, self.worker_group(w))
        except (ValueError, TypeError) as exc:
            self.reply(w, req_id, False, exc)
            return
        owner = self.owner_of(w)
        self.class_meta[fn_id] = (class_name, methods)
        spec = TaskSpec(
            task_id=owner.new_task_id(),
            owner=owner.addr,
            owner_node=NODE_ID,
            function=fn_id,
            args=args,
            resources=demand,
            hold=hold,
            max_retries=0,
            name=class_name,
            arg_refs=refs,
            runtime_env=env,
            max_concurrency=max_concurrency,
            actor_options=retry_options,
            strategy=strategy,
        )
        actor_id = owner.create_actor(spec, name, restarts, if_exists, now, self.out)
        token = 0
        if gc and actor_id == spec.task_id:  # its handles carry a ref to a token it dies with
            token = owner.put(len(_TOKEN), _TOKEN, False, now, self.out)
            owner.watch_free(token)
            self.actor_tokens[token] = actor_id
        self.reply(w, req_id, True, (actor_id, token, retry_options))

    def _req_get_actor(self, w: Any, req_id: int, name: str, now: float) -> None:
        gcs = self.gcs
        actor_id = gcs.actor_named(name)
        rec = gcs.actor_record(actor_id)
        if rec is None or rec.state == "DEAD":
            self.reply(w, req_id, False, ValueError(f"Failed to look up actor named '{name}'"))
            return
        class_name, methods = self.class_meta.get(rec.spec.function, ("Actor", {}))
        self.reply(w, req_id, True, (actor_id, class_name, methods, rec.spec.actor_options))

    def _req_kill_actor(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        self.owner_of(w).kill_actor(payload[0], payload[1], self.out)
        self.reply(w, req_id, True, None)

    def _req_put(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        data, nested = payload
        owner = self.owner_of(w)
        size = len(data)
        oid = owner.new_put_id()
        if size < self.inline_threshold:
            owner.put(size, data, False, now, self.out, oid=oid)
        else:
            offset = self.allocate(size, now)
            self.arena.writable_view(offset, size)[:] = data
            with self.objects.lock:
                self.objects.arena_objects[oid] = (offset, size)
            owner.put(size, None, True, now, self.out, oid=oid)
        for inner, inner_owner in nested:  # refs inside the value live as long as it does
            owner.contain(oid, inner, inner_owner, now, self.out)
        if nested:
            self.execute(now)
        self.reply(w, req_id, True, oid)

    def _req_logs(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        """Worker output asked for where no node process forwards it (`runtime.real.logs`
        replaces this handler in node processes): the embedded node's workers write to the
        driver's own descriptors already, so there is nothing to send."""

    def _req_put_reserve(self, w: Any, req_id: int, size: Any, now: float) -> None:
        """A put in place (a process that maps the arena): hold a range for it to write."""
        if type(size) is not int or size < self.inline_threshold:
            self.reply(w, req_id, True, None)  # inline: the plain PUT
            return
        offset = self.allocate(size, now)  # ObjectStoreFullError: the reply is the error
        w.reserved[offset] = size  # given back if `w` dies before sealing it
        self.reply(w, req_id, True, offset)

    def _req_put_seal(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        """The value is written into the range `_req_put_reserve` held: it is an object now."""
        offset, nested = payload
        size = w.reserved.pop(offset, None)
        if size is None:
            raise ValueError(f"put_seal: no range reserved at offset {offset!r}")
        if nested is None:  # the writer failed: give the range back
            with self.objects.lock:
                self.arena.free(offset)
            self.reply(w, req_id, True, None)
            return
        owner = self.owner_of(w)
        oid = owner.new_put_id()
        with self.objects.lock:
            self.objects.arena_objects[oid] = (offset, size)
        owner.put(size, None, True, now, self.out, oid=oid)
        for inner, inner_owner in nested:  # refs inside the value live as long as it does
            owner.contain(oid, inner, inner_owner, now, self.out)
        if nested:
            self.execute(now)
        self.reply(w, req_id, True, oid)

    def _req_borrow(self, w: Any, req_id: int, items: list[tuple[int, int]], now: float) -> None:
        """The worker unpickled refs: its owner borrows them from their owners."""
        owner = self.owner_of(w)
        for oid, owner_addr in items:
            owner.borrow(oid, owner_addr, now, self.out)
        self.execute(now)  # the subscriptions land before any later release

    def _req_lend(self, w: Any, req_id: int, items: list[tuple[int, int, int]], now: float) -> None:
        """The worker pickled refs into a value it sends out, so they outlive its handles.

        Refs inside a return value of the running task are held by that object (its
        owner's `Owner.contain`) and dropped when it is freed, as in Ray; any other
        (container 0) is borrowed by the driver's owner and held until shutdown.
        """
        spec = w.spec
        for oid, owner_addr, container in items:
            if container and spec is not None and task_of(container) != spec.task_id:
                spec = _sent_call(w, task_of(container)) or spec  # a concurrent actor's call
            if (
                container
                and spec is not None
                # a return value, or an item the running generator is about to send
                and spec.task_id in (task_of(container), generator_item_task(container))
            ):
                owner = self.components[spec.owner]
                owner.contain(container, oid, owner_addr, now, self.out)
            else:
                self.driver_owner.borrow(oid, owner_addr, now, self.out)
        self.execute(now)

    def _req_release(self, w: Any, req_id: int, oids: list[int], now: float) -> None:
        owner = self.owner_of(w)
        for oid in oids:
            owner.remove_ref(oid, now, self.out)

    def _req_unpin(self, w: Any, req_id: int, offsets: list[int], now: float) -> None:
        if not w.remote:
            self.objects.unpins.extend(offsets)  # values from a nested get alias these no more
            return
        pinned = w.pinned  # a connected driver unpins only what it was given
        for offset in offsets:
            held = pinned.get(offset, 0)
            if held:
                self.objects.unpins.append(offset)
                if held > 1:
                    pinned[offset] = held - 1
                else:
                    del pinned[offset]

    def drop_worker_refs(self, w: Any, now: float) -> None:
        """A worker died: every reference its code held is gone (its objects may be freed)."""
        owner = w.owner
        if owner is None:
            return
        if w.remote:  # a connected driver left: its job's tasks end with it, as in Ray
            for spec in [s for s in owner.pending_tasks() if s.kind == TASK]:
                owner.cancel(object_id(spec.task_id, 1), True, now, self.out)
        for oid in list(owner.object_table()):
            obj = owner.object_entry(oid)
            while obj is not None and obj.refs > 0:
                owner.remove_ref(oid, now, self.out)
                obj = owner.object_entry(oid)

    def _req_cancel(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        oid, force = payload
        self.owner_of(w).cancel(oid, force, now, self.out)
        self.reply(w, req_id, True, None)

    def _req_get(self, w: Any, req_id: int, oids: list[int], now: float) -> None:
        self._wait_for(w, req_id, oids, -1, now)

    def _req_wait(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        oids, num_returns = payload
        self._wait_for(w, req_id, oids, num_returns, now)

    def _req_unwait(self, w: Any, req_id: int, timed_out: int, now: float) -> None:
        rec = self.worker_waits.pop((w.worker_id, timed_out), None)
        if rec is not None and not rec.done:
            rec.done = True
            self._unblock(rec, now)

    def _req_shared(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        """A connected driver mapped the arena: its gets are answered with offsets."""
        if w.remote:
            w.shared_arena = True

    def _req_info(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        self.reply(w, req_id, True, self.runtime_info())

    # -- waiting ---------------------------------------------------------------------------

    def _wait_for(self, w: Any, req_id: int, oids: list[int], num_returns: int, now: float) -> None:
        owner = self.owner_of(w)
        objects = owner.object_table()
        pending = [oid for oid in oids if oid in objects and objects[oid].state == PENDING]
        ready = len(oids) - len(pending)
        need = len(pending) if num_returns < 0 else max(0, num_returns - ready)
        rec = NestedWait(w, req_id, oids, need, num_returns)
        if need == 0:
            self._answer(rec)
            return
        waits = self.waits
        for oid in pending:
            waits.setdefault((owner.addr, oid), []).append(rec)
        self.worker_waits[(w.worker_id, req_id)] = rec
        spec = w.spec
        if spec is not None and spec.kind == TASK:
            rec.task_id = spec.task_id
            self.raylet.handle(WorkerBlocked(spec.task_id), now, self.out)
            self.pool.block(w)

    def ready(self, cmd: ObjectReady, now: float) -> None:
        """``ObjectReady`` for a worker's owner: answer the gets and waits it completes."""
        recs = self.waits.pop((cmd.owner, cmd.oid), None)
        for rec in recs or ():
            if rec.done:
                continue
            rec.need -= 1
            if rec.need <= 0:
                self.worker_waits.pop((rec.w.worker_id, rec.req_id), None)
                self._unblock(rec, now)
                self._answer(rec)

    def _unblock(self, rec: NestedWait, now: float) -> None:
        if rec.task_id:
            self.raylet.handle(WorkerUnblocked(rec.task_id), now, self.out)
            rec.task_id = 0

    def _answer(self, rec: NestedWait) -> None:
        if rec.num_returns < 0 and self.fetch is not None and self._fetch_remote(rec):
            return  # answered once the values stored on other nodes are here
        rec.done = True
        objects = self.owner_of(rec.w).objects
        if rec.num_returns >= 0:
            ready = [o for o in rec.oids if o in objects and objects[o].state != PENDING]
            self.reply(rec.w, rec.req_id, True, ready[: rec.num_returns])
            return
        items: list[tuple] = []
        for oid in rec.oids:
            obj = objects.get(oid)
            if obj is None:
                items.append((False, ERR_OBJECT_LOST, f"object {oid:x} was freed"))
            elif obj.state == FAILED:
                items.append((False, obj.error_kind, obj.error))
            elif obj.stored:
                with self.objects.lock:
                    loc = self.objects.arena_objects.get(oid)
                    if loc is None:  # spilled: send the bytes read from disk
                        items.append(
                            (True, (p.VALUE_INLINE, self.objects.spilled_bytes_locked(oid)))
                        )
                        continue
                    offset, size = loc
                    if rec.w.remote and not rec.w.shared_arena:  # maybe another machine
                        items.append((True, (p.VALUE_INLINE, bytes(self.arena.view(offset, size)))))
                        continue
                    self.objects.pins[offset] = (
                        self.objects.pins.get(offset, 0) + 1
                    )  # until "unpin"
                    if rec.w.shared_arena:  # released if the driver leaves first
                        rec.w.pinned[offset] = rec.w.pinned.get(offset, 0) + 1
                items.append((True, (p.VALUE_ARENA, offset, size)))
            else:
                items.append((True, (p.VALUE_INLINE, obj.payload)))
        self.reply(rec.w, rec.req_id, True, items)

    def _fetch_remote(self, rec: NestedWait) -> bool:
        """Start pulling the values of a get that are stored only on other nodes; False: none.

        Values are pulled when a get needs them (as Ray's are), so the only copy of a task's
        output may stay on the node that made it. When a pull fails (that node died), the
        owner is told the object is lost, as the GCS would: it re-runs the producing task
        from its lineage (or fails the object), and the get is served again, waiting for
        the recomputed value.
        """
        owner = self.owner_of(rec.w)
        objects, local = owner.object_table(), self.objects
        remote = []
        with local.lock:
            for oid in rec.oids:
                obj = objects.get(oid)
                if (
                    obj is not None
                    and obj.state == READY
                    and obj.stored
                    and oid not in local.arena_objects
                    and oid not in local.spilled
                ):
                    remote.append((oid, obj.node, obj.size))
        if not remote:
            return False
        key = (rec.w.worker_id, rec.req_id)
        self.worker_waits[key] = rec  # an unwait (timeout) meanwhile drops the get
        left = [len(remote)]
        fetch = self.fetch
        assert fetch is not None

        def pulled(error: str | None, now: float, oid: int = 0) -> None:
            if error is not None and objects.get(oid) is not None:
                owner.handle(ObjectLost([oid]), now, self.out)
            left[0] -= 1
            if left[0] == 0 and self.worker_waits.get(key) is rec and not rec.done:
                del self.worker_waits[key]
                self._wait_for(rec.w, rec.req_id, rec.oids, rec.num_returns, now)

        for oid, node, size in remote:
            fetch(oid, node, size, lambda error, now, oid=oid: pulled(error, now, oid))
        return True


def call_fields(payload: tuple) -> dict[str, Any]:
    """The `TaskSpec` fields of a ``call_actor`` request's payload."""
    actor_id, method, args, refs, held, n, name, max_retries, retry_exceptions, mode = payload
    return dict(
        function=method,
        args=args,
        resources={},
        num_returns=n,
        max_retries=max_retries,
        retry_exceptions=retry_exceptions,
        name=name,
        arg_refs=refs,
        held_refs=held,
        kind=ACTOR_METHOD,
        actor_id=actor_id,
        generator=mode,
    )


def _sent_call(w: Any, task_id: int) -> TaskSpec | None:
    """The call `task_id` among those an actor's worker was sent (running concurrently)."""
    if w.actor_id:
        for spec in w.queue:
            if spec.task_id == task_id:
                return spec
    return None
