"""The actor mixin of the node: create, call, look up and kill actors; one dedicated worker each.

The core decides everything (placement through the GCS, ordering, restarts, names); this
module only builds the specs on program threads and, on the loop thread, starts each
actor's worker through the fork server, routes its calls there, kills it on
``KillWorker`` and reports its unexpected death as ``ActorWorkerDied``.
"""

from __future__ import annotations

import heapq
import os
import signal
from dataclasses import dataclass
from typing import Any

from runtime.actor import ActorClass, ActorHandle, ActorOptions, actor_concurrency
from runtime.api import job_runtime_env
from runtime.core.messages import (
    ACTOR_DEAD,
    ACTOR_PENDING,
    ActorStateChanged,
    ActorWorkerDied,
    KillWorker,
    ObjectFreed,
    TaskFinished,
)
from runtime.core.task import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    ERR_APPLICATION,
    ERR_WORKER_DIED,
    TaskSpec,
)
from runtime.generators import generator_mode
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real.addresses import HOST_ADDR, NODE_ID, OWNER_ADDR
from runtime.real.futures import Future
from runtime.real.serialization import serialize
from runtime.real.zygote import ZYGOTE_REQUEST
from runtime.runtime_env import merge_runtime_env
from runtime.util.scheduling_strategies import strategy_of

__all__ = ["ActorInfo", "ActorMixin"]


ACTOR_COLLECT_RETRY = 0.01
"""Seconds between checks that an actor whose last handle died has no call left."""


@dataclass(slots=True)
class ActorInfo:
    """What the host knows of an actor this driver created or looked up."""

    class_name: str
    methods: dict[str, int]
    state: str = ACTOR_PENDING
    error: Any = None
    alias_of: int = 0
    answered: Future | None = None
    """Released at the first state change (``get_if_exists`` waits for it)."""
    keep: tuple = ()
    """ObjectRefs passed to the constructor, kept alive for restarts until the actor is dead;
    with refs nested in them (actor handles included), the arguments themselves: the refs
    must outlive the driver's copies until the constructor has borrowed them."""
    retry_options: Any = None
    """``(max_task_retries, method retries)`` of the actor ``get_if_exists`` found."""


class ActorMixin:
    """Program-thread API and loop-thread effects for actors."""

    # -- program threads -------------------------------------------------------------------

    def create_actor(
        self, ac: ActorClass, args: tuple, kwargs: dict, options: ActorOptions
    ) -> ActorHandle:
        """Create an actor of class `ac` (its constructor runs in a new worker); return its handle."""
        self._check_open()
        fn_id = ac._function._function_id(self)
        name = ac.__qualname__
        demand, hold = options.demand_and_hold()
        strategy = strategy_of(options, demand, name)
        if any(type(v).__name__ == "ObjectRef" for v in (*args, *kwargs.values())):
            # the core resolves constructor arguments at registration: they must be ready
            refs = list(dict.fromkeys(v for v in (*args, *kwargs.values()) if _is_ref(v)))
            self.wait(refs, len(refs), None)
        a, kw, arg_refs, held, implicit = self._encode_args(name, args, kwargs)
        arg_refs += held  # the core registers an actor once its constructor's refs are ready
        with self._ids_lock:
            tid = self.owner.new_task_id()
        spec = TaskSpec(
            task_id=tid,
            owner=OWNER_ADDR,
            owner_node=NODE_ID,
            function=fn_id,
            args=(a, kw),
            resources=demand,
            hold=hold,
            max_retries=0,
            name=name,
            arg_refs=tuple(arg_refs),
            runtime_env=merge_runtime_env(job_runtime_env(), options.runtime_env),
            max_concurrency=actor_concurrency(ac, options),
            actor_options=(options.max_task_retries, ac._method_retries),
            strategy=strategy,
        )
        keep: tuple = tuple(v for v in (*args, *kwargs.values()) if _is_ref(v))
        if held:  # refs (or actor handles) inside the arguments: keep them alive too
            keep += (args, kwargs)
        answered = Future(1)
        info = ActorInfo(name, ac._methods, answered=answered, keep=keep)
        with self._lock:
            self.actor_infos[tid] = info
        request = (spec, options.name, options.max_restarts, options.get_if_exists, implicit)
        self._ops.append((self._op_create_actor, request))
        self._wake()
        actor_id = tid
        if options.get_if_exists and options.name:
            answered.wait(None)  # learn whether an actor of that name exists
            actor_id = info.alias_of or tid
        token = None
        if not options.name and options.lifetime != "detached" and actor_id == tid:
            token = self._actor_token(actor_id)
        retry_options = (options.max_task_retries, ac._method_retries)
        if actor_id != tid:  # get_if_exists found another actor: its options hold
            retry_options = info.retry_options
        return ActorHandle(actor_id, name, ac._methods, token, retry_options)

    def _actor_token(self, actor_id: int) -> ObjectRef:
        """A token object whose refs the actor's handles carry: the actor dies with it.

        Every copy of a handle, in any process, holds a ref to the token (pickling a
        handle pickles the ref, which is borrowed where it is unpickled), so the token is
        freed exactly when no handle is left anywhere; the owner then emits
        ``ObjectFreed`` and the host collects the actor (`_effect_object_freed`).
        """
        oid = self._put_serialized(serialize(None, "actor token"))
        self._actor_tokens[oid] = actor_id  # single dict operations: safe on any thread
        self._ops.append((self._op_watch_token, oid))
        self._wake()
        return ObjectRef(oid, self)

    def _op_watch_token(self, oid: int, now: float) -> None:
        self.owner.watch_free(oid)

    def _effect_object_freed(self, cmd: ObjectFreed, now: float) -> None:
        """The last handle of an actor is gone everywhere: collect the actor.

        Calls submitted before still run: the kill waits until the driver's owner has
        no call of that actor in flight or unsent (checked on a host timer).
        """
        actor_id = self._actor_tokens.pop(cmd.oid, None)
        if actor_id is not None:
            self._op_collect_actor((actor_id, cmd.owner), now)

    def _op_collect_actor(self, item: tuple[int, int], now: float) -> None:
        """Kill actor `item[0]` for good once owner `item[1]` has no call of it left."""
        actor_id, owner_addr = item
        owner = self.components[owner_addr]
        state = owner.actor_state(actor_id)
        if state is not None and (state.unsent or state.inflight or state.state == ACTOR_PENDING):
            at = now + ACTOR_COLLECT_RETRY
            key = f"collect:{actor_id}:{owner_addr}"
            heapq.heappush(self._timers, (at, next(self._timer_seq), HOST_ADDR, key))
            return
        owner.kill_actor(actor_id, True, self._out)

    def call_actor(
        self,
        handle: ActorHandle,
        method: str,
        args: tuple,
        kwargs: dict,
        num_returns: int,
        max_retries: int = 0,
        retry_exceptions: bool = False,
    ) -> Any:
        """Submit a call of `method` on the actor of `handle`; return its ObjectRef(s)."""
        self._check_open()
        actor_id = handle._actor_id
        if handle._attached is not self:
            if actor_id not in self.actor_infos:
                with self._lock:
                    info = ActorInfo(handle._class_name, handle._methods)
                    self.actor_infos.setdefault(actor_id, info)
                self._ops.append((self._op_attach_actor, actor_id))
            handle._attached = self
        name = f"{handle._class_name}.{method}"
        num_returns, mode = generator_mode(num_returns, True, name)  # checked by the worker
        a, kw, arg_refs, held, implicit = self._encode_args(name, args, kwargs)
        with self._ids_lock:
            tid = self.owner.new_task_id()
        spec = TaskSpec(
            task_id=tid,
            owner=OWNER_ADDR,
            owner_node=NODE_ID,
            function=method,
            args=(a, kw),
            resources={},
            num_returns=num_returns,
            max_retries=max_retries,
            retry_exceptions=retry_exceptions,
            name=name,
            arg_refs=tuple(arg_refs),
            held_refs=tuple(held),
            kind=ACTOR_METHOD,
            actor_id=actor_id,
            generator=mode,
        )
        if mode:
            return self._submit_generator(spec, implicit)
        return self._submit_spec(spec, implicit)

    def get_actor(self, name: str) -> ActorHandle:
        """The handle of the live actor registered under `name` (ValueError if none)."""
        self._check_open()
        request_id = next(self._request_ids)
        fut = Future(1)
        self._lookups[request_id] = [fut, None]
        self._ops.append((self._op_lookup_actor, (name, request_id)))
        self._wake()
        fut.wait(None)
        reply: ActorStateChanged = self._lookups.pop(request_id)[1]
        if not reply.actor_id:
            raise ValueError(f"Failed to look up actor with name '{name}'")
        spec = reply.spec
        meta = self._class_meta.get(spec.function) if spec is not None else None
        class_name, methods = meta if meta is not None else ("Actor", {})
        with self._lock:
            self.actor_infos.setdefault(reply.actor_id, ActorInfo(class_name, methods))
        handle = ActorHandle(reply.actor_id, class_name, methods, None, _retry_options(spec))
        handle._attached = self
        return handle

    def kill_actor(self, handle: ActorHandle, no_restart: bool) -> None:
        """Terminate the actor of `handle` (for good when `no_restart`)."""
        self._check_open()
        if not isinstance(handle, ActorHandle):
            raise TypeError(f"kill() expects an actor handle, got {type(handle).__name__}")
        self._ops.append((self._op_kill_actor, (handle._actor_id, no_restart)))
        self._wake()

    # -- loop thread: operations -----------------------------------------------------------

    def _op_create_actor(self, request: tuple, now: float) -> None:
        spec, name, max_restarts, get_if_exists, implicit = request
        self._class_meta[spec.function] = (
            self.actor_infos[spec.task_id].class_name,
            self.actor_infos[spec.task_id].methods,
        )
        self.owner.create_actor(spec, name, max_restarts, get_if_exists, now, self._out)
        # implicit puts stay referenced by the spec for restarts (released at shutdown)
        self._actor_implicit.extend(implicit)

    def _op_attach_actor(self, actor_id: int, now: float) -> None:
        self.owner.attach_actor(actor_id, self._out)

    def _op_lookup_actor(self, item: tuple[str, int], now: float) -> None:
        self.owner.lookup_actor(item[0], item[1], self._out)

    def _op_kill_actor(self, item: tuple[int, bool], now: float) -> None:
        self.owner.kill_actor(item[0], item[1], self._out)

    # -- loop thread: command effects ------------------------------------------------------

    def _effect_actor_state(self, cmd: ActorStateChanged, now: float) -> None:
        if cmd.request_id:
            slot = self._lookups.get(cmd.request_id)
            if slot is not None:
                slot[1] = cmd
                slot[0].hit()
            return
        with self._lock:
            info = self.actor_infos.get(cmd.actor_id)
            if info is None:
                return
            if cmd.alias_of:
                info.alias_of = cmd.alias_of
                rec = self.gcs.actor_record(cmd.alias_of)  # the live actor's own options hold
                info.retry_options = _retry_options(rec.spec if rec is not None else None)
            info.state = cmd.state
            if cmd.state == ACTOR_DEAD:
                info.error = cmd.error
                info.keep = ()  # dead for good: no constructor will run again
            fut, info.answered = info.answered, None
            if fut is not None:
                fut.hit()

    def _effect_kill_worker(self, cmd: KillWorker, now: float) -> None:
        w = self._actor_workers.pop(cmd.actor_id, None)
        if w is None:
            self._killed_early.add(cmd.actor_id)  # its worker is still being forked
            return
        w.killed = True
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- loop thread: workers --------------------------------------------------------------

    def _dispatch_actor_creation(self, spec: TaskSpec, now: float) -> None:
        """Fork a dedicated worker for the actor; its constructor runs when it arrives."""
        worker_id = self._next_worker_id
        self._next_worker_id += 1
        try:
            self._zygote.send(ZYGOTE_REQUEST.pack(worker_id))
        except OSError:
            event = TaskFinished(
                spec.task_id, [], ERR_APPLICATION, "the worker zygote is gone: no worker can start"
            )
            self.raylet.handle(event, now, self._out)
            return
        self._actor_spawns[worker_id] = spec

    def _dispatch_actor_call(self, spec: TaskSpec, now: float) -> None:
        w = self._actor_workers.get(spec.actor_id)
        if w is None or not w.alive:
            reason = "the actor's worker process is gone"
            self.raylet.handle(ActorWorkerDied(spec.actor_id, reason), now, self._out)
            return
        self._start_task(w, spec)

    def _adopt_actor_worker(self, w: Any, spec: TaskSpec, now: float) -> None:
        """A worker forked for an actor arrived: bind it and run the constructor."""
        w.actor_id = spec.actor_id
        if spec.actor_id in self._killed_early:
            self._killed_early.discard(spec.actor_id)
            w.killed = True
            w.outbox.append(p.shutdown())
            self._dirty.append(w)
            return
        self._actor_workers[spec.actor_id] = w
        self._start_task(w, spec)

    def _actor_worker_died(self, w: Any, now: float) -> None:
        """An actor's worker exited: report it to the raylet unless the core asked for it."""
        if self._actor_workers.get(w.actor_id) is w:
            del self._actor_workers[w.actor_id]
        spec, w.spec = w.spec, None
        w.queue.clear()
        if w.killed or self._stopping:
            return
        detail = f"the actor's worker {w.worker_id} (pid {w.pid}) died"
        if spec is not None and spec.kind == ACTOR_CREATION:
            event: Any = TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail)
        else:
            if spec is not None:
                detail += f" while running {spec.name}()"
            event = ActorWorkerDied(w.actor_id, detail)
        self.raylet.handle(event, now, self._out)

    def _actor_task_done(self, w: Any, spec: TaskSpec | None, ok: bool) -> None:
        """After an actor's task: a constructor that raised leaves a worker with nothing to do."""
        if spec is not None and spec.kind == ACTOR_CREATION and not ok:
            if self._actor_workers.get(w.actor_id) is w:
                del self._actor_workers[w.actor_id]
            w.killed = True
            w.outbox.append(p.shutdown())
            self._dirty.append(w)


def _is_ref(value: Any) -> bool:
    from runtime.object_ref import ObjectRef

    return isinstance(value, ObjectRef)


def _retry_options(spec: TaskSpec | None) -> Any:
    """The retry options an actor's creation spec carries (None: Ray's defaults)."""
    options = spec.actor_options if spec is not None else None
    return options if isinstance(options, tuple) else None
