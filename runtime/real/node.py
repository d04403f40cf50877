"""Single-node host: GCS, global scheduler, raylet and owner on one event-loop thread, over worker processes.

The control plane (`runtime.core`) decides; this module only turns its commands into
effects and feeds results back as events:

* ``Send`` between in-process components is a direct ``handle`` call on the loop thread;
* ``Dispatch`` sends EXECUTE_TASK to an idle worker (a host backlog holds the rest);
* ``ObjectReady`` resolves the futures user threads wait on; ``Free`` releases arena
  ranges (deferred while a value returned by ``get`` still aliases them);
* ``SetTimer`` goes into a heap that bounds the ``select`` timeout.

User threads never touch core objects: they queue operations on a deque and make one
coalesced wakeup write; the loop drains the deque in FIFO order (so a reference drop is
never seen before the submission that created it). Results are read on the user thread
straight from the object table (guarded by one lock) and the shared-memory arena.

The node is composed of parts that own their state, each given the other parts it uses
explicitly (`Node` inherits nothing): `loop.Loop` (ops queue, wakeup, timers, selector,
core lock, run state), `client.Client` (the program-thread API), `objects.ObjectTable`
(entries, arena ranges, pins, spill file, under its lock), `pool.WorkerPool` (worker
processes, zygote, idle list, backlog, prefetch offers), `actor_workers.ActorWorkers`
(each actor's dedicated worker), `actors.ActorApi` (the actor API and what the host
knows of actors), `nested.NestedOwners` (one core Owner per worker, the workers'
REQUESTs), `groups.PlacementGroups`/`PlacementGroupApi` and `streams.Streams`/`StreamApi`
(placement groups and generator tasks, loop-thread and program-thread sides),
`effects.Effects` (what each core command does) and `introspect.Introspection` (cancel,
state reads, resources, timeline). This module holds construction, the thin delegating
interface (`runtime._session.NodeLike`; hot-path methods are bound over it at
construction) and shutdown.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.messages import (
    ActorStateChanged,
    KillWorker,
    ObjectFreed,
    SaveCheckpoint,
)
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.actor_workers import ActorWorkers
from runtime.real.actors import ActorApi
from runtime.real.addresses import (
    GCS_ADDR,
    GS_ADDR,
    HOST_ADDR,
    NODE_ID,
    OWNER_ADDR,
    OWNER_INDEX_BASE,
    RAYLET_ADDR,
)
from runtime.real.arena import Arena
from runtime.real.claims import Claims
from runtime.real.client import Client
from runtime.real.effects import Effects, HostTimers
from runtime.real.futures import ERR_SHUTDOWN, Future
from runtime.real.groups import PlacementGroupApi, PlacementGroups
from runtime.real.introspect import Introspection
from runtime.real.loop import Loop
from runtime.real.memory import MemoryServer
from runtime.real.nested import NestedOwners
from runtime.real.objects import ObjectTable
from runtime.real.pool import WorkerHandle, WorkerPool
from runtime.real.serialization import (
    INLINE_THRESHOLD,
)
from runtime.real.spill import SpillFile
from runtime.real.streams import StreamApi, Streams
from runtime.real.worker import CANCEL_SLOTS
from runtime.real.zygote import start_zygote

__all__ = ["Future", "Node"]


_sessions = itertools.count(1)

ACTOR_PIPELINE = 64
"""Actor calls sent to an actor's worker ahead of the one it runs (see CoreConfig.actor_pipeline)."""


class Node:
    """The driver-side host of one node: core components, workers, arena and event loop."""

    in_worker = False
    """The driver's node (`runtime._session.NodeLike`), not a worker's client."""

    def __init__(
        self,
        num_cpus: float,
        object_store_memory: int,
        *,
        resources: dict[str, float] | None = None,
        scheduling_policy: str = "bottom_up",
        inline_threshold: int = INLINE_THRESHOLD,
        num_workers: int | None = None,
        prefault_bytes: int = 16 << 20,
        spillback_threshold: int = 16,
        seed: int = 0,
        object_spilling: bool = True,
        spill_dir: str | None = None,
        prefetch: bool = True,
        peers: Any = None,
        worker_stdio: tuple[int, int] | None = None,
        heartbeat_period_s: float = 0.0,
        node_timeout_s: float = 15.0,
    ) -> None:
        self.session = next(_sessions)
        self.inline_threshold = inline_threshold
        self.config = CoreConfig(
            policy=scheduling_policy,
            inline_threshold=inline_threshold,
            spillback_threshold=spillback_threshold,
            object_spilling=object_spilling,
            actor_pipeline=ACTOR_PIPELINE,
            worker_prefetch=max(1, int(num_workers or num_cpus)) if prefetch else 0,
            heartbeat_period_s=heartbeat_period_s,  # node processes only (peers)
            node_timeout_s=node_timeout_s,
        )
        self.arena = Arena(object_store_memory, prefault_bytes=prefault_bytes)
        self.arena.control = self.arena.allocate(CANCEL_SLOTS * 8)  # before the zygote starts
        self.claims = self.arena.claims = Claims(self.arena, CANCEL_SLOTS)
        total = {"CPU": float(num_cpus), **{k: float(v) for k, v in (resources or {}).items()}}
        self.plane = build_control_plane(
            self.config,
            random.Random(seed),
            [NodeCapacity(total, self.arena.capacity)],
            1,
            raylet_base=RAYLET_ADDR - NODE_ID,
            owner_base=OWNER_ADDR,
            first_node=NODE_ID,
            owner_index_base=OWNER_INDEX_BASE,
        )  # node 0 (the head, the embedded node): the default layout
        self.gcs = self.plane.gcs
        self.gs = self.plane.global_scheduler
        self.raylet = self.plane.raylets[0]
        self.owner = self.plane.owners[0]
        self.components: dict[int, Any] = self.plane.components()
        """Address -> in-process component (the core's, and the host's timers)."""
        self.peers = peers
        """The other node processes of a cluster (`runtime.real.peers.Peers`), None alone."""
        if peers is not None:
            self.components = peers.routing_table(self.components)
            if not peers.head:  # the cluster's GCS and global scheduler are the head's
                del self.components[GCS_ADDR], self.components[GS_ADDR]
        # state shared with user threads ---------------------------------------------------
        self.objects = ObjectTable(self.arena, SpillFile(spill_dir))
        """The object table (`runtime.real.objects.ObjectTable`): entries, ranges, pins, spills."""
        # workers: all forked by the zygote, a fresh interpreter (see runtime.real.zygote) ---
        try:
            zygote = start_zygote(self.arena, inline_threshold, worker_stdio)
        except BaseException:
            self.arena.close()
            raise
        self._ids_lock = threading.Lock()
        self._out: list[Any] = []
        """The core's command list: every component appends, `_execute` carries them out."""
        self.loop = Loop(
            objects=self.objects, components=self.components, out=self._out, execute=self._execute
        )
        """The event loop (`runtime.real.loop.Loop`): ops queue, timers, selector, core lock."""
        loop = self.loop
        # the loop's queue, timers and calls, bound here for the program-thread API (`client`)
        # and the tests: the same objects, no extra call frame on the hot paths
        self._ops = loop.ops
        self._timers = loop.timers
        self._timer_seq = loop.timer_seq
        self._t0 = loop.t0
        self._core_lock = loop.core_lock
        self._sel = loop.sel
        self._wake = loop.wake
        self._kick = loop.kick
        self._drive = loop.drive
        self._step = loop.step
        self._check_open = loop.check_open
        self.client = Client(
            node=self,
            loop=loop,
            ids_lock=self._ids_lock,
            owner=self.owner,
            objects=self.objects,
            arena=self.arena,
            inline_threshold=inline_threshold,
            object_spilling=object_spilling,
            out=self._out,
        )
        """What program threads call: submit, put, get, wait (`runtime.real.client.Client`)."""
        client = self.client
        # the hot paths, bound over the node's interface methods: no extra call frame
        self.submit = client.submit
        self.get = client.get
        self.put = client.put
        self.wait = client.wait
        self.release_ref = client.release_ref
        self.reduce_ref = client.reduce_ref
        self.adopt_ref = client.adopt_ref
        self.future_of = client.future_of
        self.register_function = client.register_function
        self.stream_api = StreamApi(
            node=self,
            ops=self._ops,
            check_open=self._check_open,
            closed=loop.is_closed,
            owner=self.owner,
            objects=self.objects,
            out=self._out,
            submit_spec=client.submit_spec,
            wait_future=client.wait_future,
            entries=client.entries,
            unregister=client.unregister,
            adopt_ref=client.adopt_ref,
        )
        """Generator tasks, program-thread side (`runtime.real.streams.StreamApi`)."""
        # bound over the node's interface methods (generators call them per item: no extra frame)
        self._submit_generator = self.stream_api.submit_generator
        self.stream_next = self.stream_api.stream_next
        self.stream_ready = self.stream_api.stream_ready
        self.stream_finished = self.stream_api.stream_finished
        self.drop_stream = self.stream_api.drop_stream
        self.adopt_stream_items = self.stream_api.adopt_stream_items
        self.wait_mixed = self.stream_api.wait_mixed
        self.actor_api = ActorApi(
            node=self,
            ops=self._ops,
            wake=self._wake,
            check_open=self._check_open,
            ids_lock=self._ids_lock,
            plane=self.plane,
            objects=self.objects,
            components=self.components,
            out=self._out,
            timers=self._timers,
            timer_seq=self._timer_seq,
            encode_args=client.encode_args,
            submit_spec=client.submit_spec,
            submit_generator=self._submit_generator,
            wait=client.wait,
            put_serialized=client.put_serialized,
        )
        """Actors: create, call, look up, kill; their handle states (`runtime.real.actors.ActorApi`)."""
        self.call_actor = self.actor_api.call_actor  # type: ignore[method-assign]  # hot path
        self.effects = Effects(
            objects=self.objects,
            arena=self.arena,
            claims=self.claims,
            raylet=self.raylet,
            components=self.components,
            out=self._out,
            execute=self._execute,
            timers=self._timers,
            timer_seq=self._timer_seq,
        )
        """What each core command does (`runtime.real.effects.Effects`)."""
        self.components[HOST_ADDR] = HostTimers(self.effects)
        self._effects: dict[type, Callable[[Any, float], None]] = {
            **self.effects.table(),
            ObjectFreed: self.actor_api.object_freed,
            ActorStateChanged: self.actor_api.actor_state,
        }
        """Command type -> its effect (the parts add theirs)."""
        self._worker_handlers: dict[int, Callable[[WorkerHandle, tuple, float], None]] = {}
        """Worker message type -> handler (the pool, the nested owners and the streams add theirs)."""
        self.pool = WorkerPool(
            num_workers or max(1, int(num_cpus)),
            zygote,
            raylet=self.raylet,
            out=self._out,
            claims=self.claims,
            arena=self.arena,
            objects=self.objects,
            allocate=self.effects.allocate_loop,
            selector=self._sel,
            unregister_io=loop.unregister_io,
            handlers=self._worker_handlers,
        )
        """The worker processes (`runtime.real.pool.WorkerPool`)."""
        self.groups = PlacementGroups(self.gcs, self.raylet, self._out, self._execute)
        """Placement groups, loop-thread side (`runtime.real.groups.PlacementGroups`)."""
        self.nested = NestedOwners(
            plane=self.plane,
            components=self.components,
            gcs=self.gcs,
            raylet=self.raylet,
            driver_owner=self.owner,
            out=self._out,
            execute=self._execute,
            pool=self.pool,
            objects=self.objects,
            arena=self.arena,
            inline_threshold=inline_threshold,
            allocate=self.effects.allocate_loop,
            register_function=client.register_function,
            runtime_info=self.runtime_info,
            worker_group=self.groups.worker_group,
            class_meta=self.actor_api.class_meta,
            actor_tokens=self.actor_api.tokens,
        )
        """One core Owner per worker, and the workers' REQUESTs (`runtime.real.nested`)."""
        self._worker_handlers[p.REQUEST] = self.nested.on_request
        self.groups.serve(self.nested)
        self.streams = Streams(
            objects=self.objects,
            arena=self.arena,
            raylet=self.raylet,
            out=self._out,
            pool=self.pool,
            nested=self.nested,
            components=self.components,
        )
        """Generator tasks, loop-thread side (`runtime.real.streams.Streams`)."""
        self.streams.plug(self._effects, self._worker_handlers)
        self.stream_api.connect(self.streams)
        self.pool.connect_owners(self.nested.drop_worker_refs)
        self.actor_workers = ActorWorkers(self.pool, self.raylet, self._out)
        """Each actor's dedicated worker (`runtime.real.actor_workers.ActorWorkers`)."""
        self._effects[KillWorker] = self.actor_workers.kill
        self._effects[SaveCheckpoint] = self.actor_workers.checkpoints.save
        self.effects.connect(
            self.pool, self.nested, self.actor_workers.dispatchers, self.actor_api.collect_actor
        )
        self.introspection = Introspection(
            ops=self._ops,
            wake=self._wake,
            check_open=self._check_open,
            stopped=loop.stopped,
            plane=self.plane,
            out=self._out,
            execute=self._execute,
            arena=self.arena,
            pool=self.pool,
            nested=self.nested,
            actor_workers=self.actor_workers,
            actor_tokens=self.actor_api.tokens,
            t0=self._t0,
        )
        """Cancel, state reads, resources and the timeline (`runtime.real.introspect.Introspection`)."""
        self.nested.request_ops[rq.ASSIGNED] = self.introspection.req_assigned
        self.nested.request_ops[rq.INSPECT] = self.introspection.req_inspect
        self.group_api = PlacementGroupApi(
            node=self,
            ops=self._ops,
            kick=self._kick,
            wake=self._wake,
            check_open=self._check_open,
            ids_lock=self._ids_lock,
            owner=self.owner,
            objects=self.objects,
            out=self._out,
            execute=self._execute,
            groups=self.groups,
        )
        """Placement groups, program-thread side (`runtime.real.groups.PlacementGroupApi`)."""
        if peers is not None and peers.gcs_setup is not None:
            peers.gcs_setup(self)  # the head: its GCS persists, restored after a restart
        self.pool.start()  # the workers join the pool as the zygote's replies arrive
        out = self._out
        if peers is None or peers.head:
            self.gs.start(0.0, out)
        if peers is not None:  # nodes can die: owners retry what ran there
            self.nested.start_owners = True
            self.owner.start(0.0, out)
        self.raylet.start(0.0, out)
        self._execute(0.0)
        loop.connect(self.pool)
        client.connect(
            self.stream_api.submit_generator,
            self.effects.op_make_room,
            self.pool.functions,
            self.actor_api.tokens,
        )
        loop.prepare()
        self.arena.prefault_in_background()
        loop.start()
        self._memory_server = MemoryServer(self)  # answers `twinray memory`

    # =====================================================================================
    # the program-thread API (`runtime.real.client.Client`): the interface only, `__init__`
    # binds the client's methods over these (the hot paths: no extra call frame)
    # =====================================================================================

    def register_function(self, pickled: bytes) -> int:
        """Give a pickled function an id on this node (workers receive it on first use)."""
        return self.client.register_function(pickled)

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a task of remote function `rf`; return its ObjectRef(s)."""
        return self.client.submit(rf, args, kwargs, options)

    def put(self, value: Any) -> Any:
        """Store `value` (inline or in the arena) and return its ObjectRef."""
        return self.client.put(value)

    def get(self, refs: list[Any], timeout: float | None) -> list[Any]:
        """Wait for `refs` and return their values (raising a task's error)."""
        return self.client.get(refs, timeout)

    def wait(
        self, refs: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """Return `(ready, not_ready)` once `num_returns` are ready or `timeout` passed."""
        return self.client.wait(refs, num_returns, timeout)

    def future_of(self, ref: Any) -> Any:
        """A `concurrent.futures.Future` resolved with `ref`'s value (or its error)."""
        return self.client.future_of(ref)

    def release_ref(self, oid: int) -> None:
        """Drop the program's reference to `oid` (called from `ObjectRef.__del__`)."""
        self.client.release_ref(oid)

    def reduce_ref(self, oid: int) -> int:
        """A ref is being pickled inside a value: record it; return its owner's address."""
        return self.client.reduce_ref(oid)

    def adopt_ref(self, oid: int, owner: int) -> Any:
        """A ref unpickled here (a value returned by a task): borrow it from `owner`."""
        return self.client.adopt_ref(oid, owner)

    # =====================================================================================
    # introspection (`runtime.real.introspect.Introspection`)
    # =====================================================================================

    def cancel(self, ref: Any, force: bool) -> None:
        """Cancel the task producing `ref`; `get` on it raises `TaskCancelledError`."""
        self.introspection.cancel(ref, force)

    def inspect(self, read: Callable[[Any], Any]) -> Any:
        """Run `read(view)` on the loop thread over fresh core tables; return its result."""
        return self.introspection.inspect(read)

    def explain(self, target: Any) -> Any:
        """Why the task behind `target` (an ObjectRef, actor handle or placement group) is where it is."""
        return self.introspection.explain(target)

    def runtime_info(self) -> dict[str, Any]:
        """Total and available resources of the node (a snapshot), and the job's namespace."""
        return self.introspection.runtime_info()

    def assigned_resources(self) -> dict[str, float]:
        """Only tasks and actors have assigned resources: the driver has none (as in Ray)."""
        return self.introspection.assigned_resources()

    def timeline(self, filename: str | None = None) -> list[dict[str, Any]]:
        """Task executions as Chrome trace / Perfetto events; written to `filename` if given."""
        return self.introspection.timeline(filename)

    @property
    def job_namespace(self) -> str | None:
        """The namespace `init(namespace=)` gave the job (None: anonymous)."""
        return self.introspection.job_namespace

    @job_namespace.setter
    def job_namespace(self, value: str | None) -> None:
        self.introspection.job_namespace = value

    # -- actors (`runtime.real.actors.ActorApi`) -------------------------------------------

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
        """Submit a call of `method` on `handle`'s actor; return its ObjectRef(s).

        The interface only: `__init__` binds the actor API's method over it (a hot path).
        """
        return self.actor_api.call_actor(
            handle, method, args, kwargs, num_returns, max_retries, retry_exceptions
        )

    def create_actor(self, ac: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Create an actor of class `ac` (its constructor runs in a new worker); return its handle."""
        return self.actor_api.create_actor(ac, args, kwargs, options)

    def get_actor(self, name: str) -> Any:
        """The handle of the live actor registered under `name` (ValueError if none)."""
        return self.actor_api.get_actor(name)

    def kill_actor(self, handle: Any, no_restart: bool) -> None:
        """Terminate the actor of `handle` (for good when `no_restart`)."""
        self.actor_api.kill_actor(handle, no_restart)

    # -- generator tasks (`runtime.real.streams.StreamApi`; the interface only: `__init__`
    # binds the part's methods over these, generators call them per item) ------------------

    def stream_next(self, gen: Any, timeout: float | None) -> Any:
        """The next item of `gen` (waiting up to `timeout`; None when it passed)."""
        return self.stream_api.stream_next(gen, timeout)

    def stream_ready(self, gen: Any) -> bool:
        """Would ``next(gen)`` return (or stop) without waiting?"""
        return self.stream_api.stream_ready(gen)

    def stream_finished(self, gen: Any) -> bool:
        """Would ``next(gen)`` raise ``StopIteration``?"""
        return self.stream_api.stream_finished(gen)

    def drop_stream(self, gen: Any) -> None:
        """`gen` was garbage collected: the items it did not hand out go."""
        self.stream_api.drop_stream(gen)

    def adopt_stream_items(self, task_id: int, count: int) -> list[Any]:
        """Refs to the items of dynamic generator `task_id` (its value was unpickled here)."""
        return self.stream_api.adopt_stream_items(task_id, count)

    def wait_mixed(
        self, items: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """`wait` over ObjectRefs and ObjectRefGenerators (ready: ``next`` would not wait)."""
        return self.stream_api.wait_mixed(items, num_returns, timeout)

    # -- placement groups (`runtime.real.groups.PlacementGroupApi`) -------------------------

    def create_placement_group(
        self, bundles: list[dict[str, float]], strategy: str, name: str, lifetime: str | None
    ) -> int:
        """Ask the core to reserve ``bundles``; return the group's id at once (as Ray does)."""
        return self.group_api.create_placement_group(bundles, strategy, name, lifetime)

    def remove_placement_group(self, pg_id: int) -> None:
        """Remove the group (asynchronously)."""
        self.group_api.remove_placement_group(pg_id)

    def placement_group_ready(self, pg_id: int, payload: bytes) -> Any:
        """A new ref that resolves to ``payload`` (the pickled handle) once the group exists."""
        return self.group_api.placement_group_ready(pg_id, payload)

    def placement_group_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of GCS rows: one group by id, the live group named ``name``, or all."""
        return self.group_api.placement_group_rows(pg_id, name)

    def current_placement_group(self) -> tuple[int, list[dict[str, float]], bool] | None:
        """The driver runs in no placement group."""
        return None

    # =====================================================================================
    # event loop
    # =====================================================================================

    def _execute(self, now: float) -> None:
        """Turn every queued command into its effect (effects may queue more)."""
        out, effects = self._out, self._effects
        i = 0
        while i < len(out):
            cmd = out[i]
            i += 1
            effects[type(cmd)](cmd, now)
        out.clear()

    def _op_stop(self, _: Any, now: float) -> None:
        self.loop.stopping = self.pool.stopping = True

    # =====================================================================================
    # shutdown
    # =====================================================================================

    def shutdown(self) -> None:
        """Stop the loop, stop and reap every worker, release the arena. Idempotent."""
        if self.loop.closed:
            return
        self._memory_server.close()
        loop = self.loop
        held = loop.stop(self._op_stop)
        try:
            loop.closed = True
            self.pool.teardown()
            self.objects.fail_all_pending(ERR_SHUTDOWN, "the node was shut down")
            self.streams.end_all(ERR_SHUTDOWN)
            loop.close()
            self.arena.close()
            self.objects.spill.close()
        finally:
            if held:
                loop.core_lock.release()
        loop.close_after()

    @property
    def closed(self) -> bool:
        """True once the node is shut down."""
        return self.loop.closed

    @property
    def loop_error(self) -> BaseException | None:
        """Why the event loop crashed (None while it runs)."""
        return self.loop.error
