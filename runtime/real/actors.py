"""ActorApi, a part of the node: create, call, look up and kill actors; one dedicated worker each.

The core decides everything (placement through the GCS, ordering, restarts, names); this
module only builds the specs on program threads and, on the loop thread, turns the
core's answers into handle states; each actor's dedicated worker is the
`runtime.real.actor_workers.ActorWorkers` part's.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.actor import (
    ActorClass,
    ActorHandle,
    ActorOptions,
    actor_concurrency,
    checkpoint_plan,
)
from runtime.api import job_runtime_env
from runtime.core.messages import (
    ACTOR_DEAD,
    ACTOR_PENDING,
    ActorStateChanged,
    ObjectFreed,
)
from runtime.core.task import ACTOR_METHOD, TaskSpec
from runtime.generators import generator_mode
from runtime.object_ref import ObjectRef
from runtime.real.addresses import HOST_ADDR, NODE_ID, OWNER_ADDR
from runtime.real.futures import Future
from runtime.real.serialization import serialize
from runtime.runtime_env import merge_runtime_env
from runtime.util.scheduling_strategies import strategy_of

__all__ = ["ActorApi", "ActorInfo"]


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


class ActorApi:
    """Program-thread API and loop-thread effects for actors.

    It owns what the host knows of actors (`infos`, pending name lookups, class metadata,
    the token objects that keep actors alive, implicit constructor puts); the program
    threads' queue, the client's encoding and submission, and the loop thread's core
    components are passed in. Refs and handles it makes belong to `node`.
    """

    def __init__(
        self,
        *,
        node: Any,
        ops: Any,
        wake: Callable[[], None],
        check_open: Callable[[], None],
        ids_lock: Any,
        plane: Any,
        objects: Any,
        components: dict[int, Any],
        out: list[Any],
        timers: list[tuple[float, int, int, str]],
        timer_seq: Any,
        encode_args: Callable[..., tuple],
        submit_spec: Callable[[TaskSpec, list[int]], Any],
        submit_generator: Callable[[TaskSpec, list[int]], Any],
        wait: Callable[..., Any],
        put_serialized: Callable[..., int],
    ) -> None:
        self.node = node
        """The node handles attach to and refs belong to (`runtime._session.NodeLike`)."""
        self.ops = ops
        self.wake = wake
        self.check_open = check_open
        self.ids_lock = ids_lock
        self.owner = plane.owners[0]
        self.gcs = plane.gcs
        self.objects = objects
        self.components = components
        self.out = out
        self.timers = timers
        """The loop's timer heap (collecting an actor is retried on a host timer)."""
        self.timer_seq = timer_seq
        self.encode_args = encode_args
        self.submit_spec = submit_spec
        self.submit_generator = submit_generator
        self.wait = wait
        self.put_serialized = put_serialized
        self.infos: dict[int, ActorInfo] = {}
        """Actor id -> what the host knows of it (under the object table's lock)."""
        self.lookups: dict[int, list[Any]] = {}
        """Name-lookup request id -> ``[future, reply]``."""
        self.request_ids = itertools.count(1)
        self.class_meta: dict[int, tuple[str, dict[str, int]]] = {}
        """Constructor function id -> (class name, methods), for handles found by name."""
        self.implicit: list[int] = []
        """Implicit puts of constructor arguments (kept for restarts, released at shutdown)."""
        self.tokens: dict[int, int] = {}
        """Token object id -> the actor its handles keep alive (see `actor_token`)."""

    # -- program threads -------------------------------------------------------------------

    def create_actor(
        self, ac: ActorClass, args: tuple, kwargs: dict, options: ActorOptions
    ) -> ActorHandle:
        """Create an actor of class `ac` (its constructor runs in a new worker); return its handle."""
        self.check_open()
        fn_id = ac._function._function_id(self.node)
        name = ac.__qualname__
        demand, hold = options.demand_and_hold()
        strategy = strategy_of(options, demand, name)
        if any(type(v).__name__ == "ObjectRef" for v in (*args, *kwargs.values())):
            # the core resolves constructor arguments at registration: they must be ready
            refs = list(dict.fromkeys(v for v in (*args, *kwargs.values()) if _is_ref(v)))
            self.wait(refs, len(refs), None)
        a, kw, arg_refs, held, implicit = self.encode_args(name, args, kwargs)
        arg_refs += held  # the core registers an actor once its constructor's refs are ready
        with self.ids_lock:
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
            checkpoint=checkpoint_plan(ac, options),
        )
        keep: tuple = tuple(v for v in (*args, *kwargs.values()) if _is_ref(v))
        if held:  # refs (or actor handles) inside the arguments: keep them alive too
            keep += (args, kwargs)
        answered = Future(1)
        info = ActorInfo(name, ac._methods, answered=answered, keep=keep)
        with self.objects.lock:
            self.infos[tid] = info
        request = (spec, options.name, options.max_restarts, options.get_if_exists, implicit)
        self.ops.append((self._op_create_actor, request))
        self.wake()
        actor_id = tid
        if options.get_if_exists and options.name:
            answered.wait(None)  # learn whether an actor of that name exists
            actor_id = info.alias_of or tid
        token = None
        if not options.name and options.lifetime != "detached" and actor_id == tid:
            token = self.actor_token(actor_id)
        retry_options = (options.max_task_retries, ac._method_retries)
        if actor_id != tid:  # get_if_exists found another actor: its options hold
            retry_options = info.retry_options
        return ActorHandle(actor_id, name, ac._methods, token, retry_options)

    def actor_token(self, actor_id: int) -> ObjectRef:
        """A token object whose refs the actor's handles carry: the actor dies with it.

        Every copy of a handle, in any process, holds a ref to the token (pickling a
        handle pickles the ref, which is borrowed where it is unpickled), so the token is
        freed exactly when no handle is left anywhere; the owner then emits
        ``ObjectFreed`` and the host collects the actor (`object_freed`).
        """
        oid = self.put_serialized(serialize(None, "actor token"))
        self.tokens[oid] = actor_id  # single dict operations: safe on any thread
        self.ops.append((self._op_watch_token, oid))
        self.wake()
        return ObjectRef(oid, self.node)

    def _op_watch_token(self, oid: int, now: float) -> None:
        """Loop thread: ask the owner to report when the token object is freed."""
        self.owner.watch_free(oid)

    def object_freed(self, cmd: ObjectFreed, now: float) -> None:
        """The last handle of an actor is gone everywhere: collect the actor.

        Calls submitted before still run: the kill waits until the driver's owner has
        no call of that actor in flight or unsent (checked on a host timer).
        """
        actor_id = self.tokens.pop(cmd.oid, None)
        if actor_id is not None:
            self.collect_actor((actor_id, cmd.owner), now)

    def collect_actor(self, item: tuple[int, int], now: float) -> None:
        """Kill actor `item[0]` for good once owner `item[1]` has no call of it left."""
        actor_id, owner_addr = item
        owner = self.components[owner_addr]
        state = owner.actor_state(actor_id)
        if state is not None and (state.unsent or state.inflight or state.state == ACTOR_PENDING):
            at = now + ACTOR_COLLECT_RETRY
            key = f"collect:{actor_id}:{owner_addr}"
            heapq.heappush(self.timers, (at, next(self.timer_seq), HOST_ADDR, key))
            return
        owner.kill_actor(actor_id, True, self.out)

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
        self.check_open()
        actor_id = handle._actor_id
        if handle._attached is not self.node:
            if actor_id not in self.infos:
                with self.objects.lock:
                    info = ActorInfo(handle._class_name, handle._methods)
                    self.infos.setdefault(actor_id, info)
                self.ops.append((self._op_attach_actor, actor_id))
            handle._attached = self.node
        name = f"{handle._class_name}.{method}"
        num_returns, mode = generator_mode(num_returns, True, name)  # checked by the worker
        a, kw, arg_refs, held, implicit = self.encode_args(name, args, kwargs)
        with self.ids_lock:
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
            return self.submit_generator(spec, implicit)
        return self.submit_spec(spec, implicit)

    def get_actor(self, name: str) -> ActorHandle:
        """The handle of the live actor registered under `name` (ValueError if none)."""
        self.check_open()
        request_id = next(self.request_ids)
        fut = Future(1)
        self.lookups[request_id] = [fut, None]
        self.ops.append((self._op_lookup_actor, (name, request_id)))
        self.wake()
        fut.wait(None)
        reply: ActorStateChanged = self.lookups.pop(request_id)[1]
        if not reply.actor_id:
            raise ValueError(f"Failed to look up actor with name '{name}'")
        spec = reply.spec
        meta = self.class_meta.get(spec.function) if spec is not None else None
        class_name, methods = meta if meta is not None else ("Actor", {})
        with self.objects.lock:
            self.infos.setdefault(reply.actor_id, ActorInfo(class_name, methods))
        handle = ActorHandle(reply.actor_id, class_name, methods, None, _retry_options(spec))
        handle._attached = self.node
        return handle

    def kill_actor(self, handle: ActorHandle, no_restart: bool) -> None:
        """Terminate the actor of `handle` (for good when `no_restart`)."""
        self.check_open()
        if not isinstance(handle, ActorHandle):
            raise TypeError(f"kill() expects an actor handle, got {type(handle).__name__}")
        self.ops.append((self._op_kill_actor, (handle._actor_id, no_restart)))
        self.wake()

    # -- loop thread: operations -----------------------------------------------------------

    def _op_create_actor(self, request: tuple, now: float) -> None:
        spec, name, max_restarts, get_if_exists, implicit = request
        self.class_meta[spec.function] = (
            self.infos[spec.task_id].class_name,
            self.infos[spec.task_id].methods,
        )
        self.owner.create_actor(spec, name, max_restarts, get_if_exists, now, self.out)
        # implicit puts stay referenced by the spec for restarts (released at shutdown)
        self.implicit.extend(implicit)

    def _op_attach_actor(self, actor_id: int, now: float) -> None:
        self.owner.attach_actor(actor_id, self.out)

    def _op_lookup_actor(self, item: tuple[str, int], now: float) -> None:
        self.owner.lookup_actor(item[0], item[1], self.out)

    def _op_kill_actor(self, item: tuple[int, bool], now: float) -> None:
        self.owner.kill_actor(item[0], item[1], self.out)

    # -- loop thread: command effects ------------------------------------------------------

    def actor_state(self, cmd: ActorStateChanged, now: float) -> None:
        """An actor's state changed (or a name lookup was answered): update its info."""
        if cmd.request_id:
            slot = self.lookups.get(cmd.request_id)
            if slot is not None:
                slot[1] = cmd
                slot[0].hit()
            return
        with self.objects.lock:
            info = self.infos.get(cmd.actor_id)
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


def _is_ref(value: Any) -> bool:
    from runtime.object_ref import ObjectRef

    return isinstance(value, ObjectRef)


def _retry_options(spec: TaskSpec | None) -> Any:
    """The retry options an actor's creation spec carries (None: Ray's defaults)."""
    options = spec.actor_options if spec is not None else None
    return options if isinstance(options, tuple) else None
