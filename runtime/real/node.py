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

The node is assembled from mixins, one job per module: `client` (program-thread API),
`actors` (actor API and their dedicated workers), `introspect` (cancel, resources,
timeline), `nested` (API calls from code running in workers, one core Owner per worker),
`effects` (what each core command does) and `pool` (worker processes). This module holds
construction, the event loop and shutdown.
"""

from __future__ import annotations

import itertools
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.messages import (
    ActorStateChanged,
    CancelRunning,
    Dispatch,
    Free,
    KillWorker,
    ObjectFreed,
    ObjectReady,
    Restore,
    Send,
    SetTimer,
    Spill,
    Trace,
    Transfer,
)
from runtime.core.task import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    TaskSpec,
)
from runtime.real import protocol as p
from runtime.real.actors import ActorInfo, ActorMixin
from runtime.real.addresses import HOST_ADDR, NODE_ID, OWNER_ADDR
from runtime.real.arena import Arena
from runtime.real.claims import Claims
from runtime.real.client import ClientMixin
from runtime.real.effects import EffectsMixin, HostTimers
from runtime.real.futures import ERR_SHUTDOWN, FAILED, PENDING, READY, Future, ObjectEntry
from runtime.real.groups import PlacementGroupMixin
from runtime.real.introspect import IntrospectMixin
from runtime.real.loop import LoopMixin
from runtime.real.memory import MemoryServer
from runtime.real.nested import NestedMixin, NestedWait
from runtime.real.pool import PoolMixin, WorkerHandle
from runtime.real.serialization import (
    INLINE_THRESHOLD,
)
from runtime.real.spill import SpillFile
from runtime.real.streams import StreamMixin
from runtime.real.worker import CANCEL_SLOTS
from runtime.real.zygote import start_zygote

__all__ = ["Future", "Node"]


_sessions = itertools.count(1)

ACTOR_PIPELINE = 64
"""Actor calls sent to an actor's worker ahead of the one it runs (see CoreConfig.actor_pipeline)."""


class Node(
    LoopMixin,
    ClientMixin,
    ActorMixin,
    IntrospectMixin,
    NestedMixin,
    EffectsMixin,
    PoolMixin,
    PlacementGroupMixin,
    StreamMixin,
):
    """The driver-side host of one node: core components, workers, arena and event loop."""

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
        )
        self.arena = Arena(object_store_memory, prefault_bytes=prefault_bytes)
        self.arena.control = self.arena.allocate(CANCEL_SLOTS * 8)  # before the zygote starts
        self.claims = self.arena.claims = Claims(self.arena, CANCEL_SLOTS)
        total = {"CPU": float(num_cpus), **{k: float(v) for k, v in (resources or {}).items()}}
        self.plane = build_control_plane(
            self.config, random.Random(seed), [NodeCapacity(total, self.arena.capacity)], 1
        )
        self.gcs = self.plane.gcs
        self.gs = self.plane.global_scheduler
        self.raylet = self.plane.raylets[NODE_ID]
        self.owner = self.plane.owners[0]
        self.components: dict[int, Any] = {
            **self.plane.components(),
            HOST_ADDR: HostTimers(self),
        }
        # state shared with user threads (guarded by _lock) --------------------------------
        self._lock = threading.Lock()
        self._ids_lock = threading.Lock()
        self.table: dict[int, ObjectEntry] = {}
        self.arena_objects: dict[int, tuple[int, int]] = {}
        self.spilled: dict[int, tuple[int, int]] = {}
        """Objects on disk: oid -> (offset in the spill file, size)."""
        self.spill = SpillFile(spill_dir)
        self._arg_pins: dict[int, list[int]] = {}
        self._revoking: dict[int, str] = {}
        """Prefetched tasks asked back from their worker: task id -> "cancel" or "blocked"."""
        """Arena ranges handed to a running task as arguments (kept until it ends)."""
        self._pins: dict[int, int] = {}
        self._doomed: set[int] = set()
        self._extra_refs: dict[int, int] = {}
        self._actor_tokens: dict[int, int] = {}
        """Token object id -> the actor its handles keep alive (see `_actor_token`)."""
        """Live driver handles per collectable actor (not named, detached or escaped)."""
        """Objects with more than one live ObjectRef instance (refs unpickled from values)."""
        self._ops: deque[tuple[Callable[[Any, float], None], Any]] = deque()
        self._unpins: deque[int] = deque()
        self._functions: dict[int, bytes] = {}
        self._fn_ids = itertools.count(1)
        self._wake_pending = False
        self._stopping = False
        self.closed = False
        # loop-thread state -----------------------------------------------------------------
        self._out: list[Any] = []
        self._timers: list[tuple[float, int, int, str]] = []
        self._timer_seq = itertools.count()
        self._tickets = itertools.count(1)
        """Claim tickets for prefetched tasks (`runtime.real.claims`): one per offer."""
        self._task_allocs: dict[int, list[int]] = {}
        self._backlog: deque[TaskSpec] = deque()
        self._idle: list[WorkerHandle] = []
        self._dirty: list[WorkerHandle] = []
        self._t0 = time.monotonic()
        self.loop_error: BaseException | None = None
        self._effects: dict[type, Callable[[Any, float], None]] = {
            Send: self._effect_send,
            Dispatch: self._effect_dispatch,
            ObjectReady: self._effect_object_ready,
            Free: self._effect_free,
            ObjectFreed: self._effect_object_freed,
            SetTimer: self._effect_set_timer,
            Trace: self._effect_trace,
            Transfer: self._effect_transfer,
            ActorStateChanged: self._effect_actor_state,
            KillWorker: self._effect_kill_worker,
            CancelRunning: self._effect_cancel_running,
            Spill: self._effect_spill,
            Restore: self._effect_restore,
        }
        self._worker_handlers: dict[int, Callable[[WorkerHandle, tuple, float], None]] = {
            p.TASK_RESULT: self._on_task_result,
            p.ALLOC_REQUEST: self._on_alloc_request,
            p.REQUEST: self._on_request,
            p.REVOKED: self._on_revoked,
        }
        # workers: all forked by the zygote, a fresh interpreter (see runtime.real.zygote) ---
        self.workers: list[WorkerHandle] = []
        self.pool_size = num_workers or max(1, int(num_cpus))
        """Task-pool workers started at init (they join as the zygote forks them)."""
        try:
            zygote = start_zygote(self.arena, inline_threshold)
        except BaseException:
            self.arena.close()
            raise
        self._zygote_proc = zygote
        self._zygote_pid, self._zygote = zygote.pid, zygote.sock
        self._spawning = 0
        # actors ------------------------------------------------------------------------------
        self.actor_infos: dict[int, ActorInfo] = {}
        self._lookups: dict[int, list[Any]] = {}
        self._request_ids = itertools.count(1)
        self._class_meta: dict[int, tuple[str, dict[str, int]]] = {}
        self._actor_implicit: list[int] = []
        self._actor_workers: dict[int, WorkerHandle] = {}
        self._actor_spawns: dict[int, TaskSpec] = {}
        self._killed_early: set[int] = set()
        self.spans: deque[tuple] = deque(maxlen=200_000)
        """Finished task executions for `timeline()`: (name, kind, worker, pid, start, end, status)."""
        # nested API calls from workers --------------------------------------------------------
        self._owner_workers: dict[int, WorkerHandle] = {}
        self._nested_waits: dict[tuple[int, int], list[NestedWait]] = {}
        self._worker_waits: dict[tuple[int, int], NestedWait] = {}
        self._request_ops: dict[str, Callable[[WorkerHandle, int, Any, float], None]] = {
            "register": self._req_register,
            "submit": self._req_submit,
            "put": self._req_put,
            "get": self._req_get,
            "wait": self._req_wait,
            "unwait": self._req_unwait,
            "release": self._req_release,
            "borrow": self._req_borrow,
            "lend": self._req_lend,
            "unpin": self._req_unpin,
            "cancel": self._req_cancel,
            "create_actor": self._req_create_actor,
            "call_actor": self._req_call_actor,
            "get_actor": self._req_get_actor,
            "kill_actor": self._req_kill_actor,
            "info": self._req_info,
            "assigned": self._req_assigned,
        }
        self._request_ops.update(self._pg_request_ops())
        self._init_streams()
        self._actor_dispatchers: dict[int, Callable[[TaskSpec, float], None]] = {
            ACTOR_CREATION: self._dispatch_actor_creation,
            ACTOR_METHOD: self._dispatch_actor_call,
        }
        self._next_worker_id = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.EpollSelector()  # worker I/O; the loop sleeps on its fd
        self._zygote.setblocking(False)
        self._sel.register(self._zygote, selectors.EVENT_READ, (self._on_zygote_reply, None))
        for _ in range(self.pool_size):
            self._spawn_worker()  # they join the pool as the zygote's replies arrive
        out = self._out
        self.gs.start(0.0, out)
        self.raylet.start(0.0, out)
        self._execute(0.0)
        self._init_loop()
        self.arena.prefault_in_background()
        self._thread = threading.Thread(target=self._loop, name="twinray-node", daemon=True)
        self._thread.start()
        self._memory_server = MemoryServer(self)  # answers `twinray memory`

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

    # -- operations queued by user threads -------------------------------------------------

    def _op_submit(self, spec: TaskSpec, now: float) -> None:
        self.owner.submit(spec, now, self._out)

    def _op_put(self, item: tuple[int, int, bytes | None, bool, Any], now: float) -> None:
        oid, size, payload, stored, nested = item
        owner = self.owner
        owner.put(size, payload, stored, now, self._out, oid=oid)
        for inner in nested or ():  # refs inside the value live as long as it does
            owner.contain(oid, inner, OWNER_ADDR, now, self._out)

    def _op_release(self, oid: int, now: float) -> None:
        with self._lock:
            extra = self._extra_refs.get(oid)
            if extra:  # another handle of this object is still alive
                if extra == 1:
                    del self._extra_refs[oid]
                else:
                    self._extra_refs[oid] = extra - 1
            else:
                self.table.pop(oid, None)
        self.owner.remove_ref(oid, now, self._out)

    def _op_borrow(self, item: tuple[int, int], now: float) -> None:
        oid, owner_addr = item
        self.owner.borrow(oid, owner_addr, now, self._out)
        obj = self.owner.object_entry(oid)
        if obj is None or obj.state == PENDING:
            return  # ObjectReady will resolve the table entry
        with self._lock:  # known already (e.g. lent by a worker): resolve the entry now
            e = self.table.get(oid)
            if e is None or e.state != PENDING:
                return
            if obj.state == READY:
                e.stored, e.payload, e.state = obj.stored, obj.payload, READY
            else:
                e.error_kind, e.error, e.state = obj.error_kind, obj.error, FAILED
            waiters, e.waiters = e.waiters, None
            for fut in waiters or ():
                fut.hit()

    def _op_stop(self, _: Any, now: float) -> None:
        self._stopping = True

    # =====================================================================================
    # shutdown
    # =====================================================================================

    def shutdown(self) -> None:
        """Stop the loop, stop and reap every worker, release the arena. Idempotent."""
        if self.closed:
            return
        self._memory_server.close()
        self._ops.append((self._op_stop, None))
        self._wake_pending = False
        self._wake()
        self._thread.join(timeout=10)
        held = self._core_lock.acquire(True, 10)  # a thread driving the loop lets go of it
        try:
            self.closed = True
            self._teardown_workers()
            self._fail_all_pending(ERR_SHUTDOWN, "the node was shut down")
            self._end_all_streams(ERR_SHUTDOWN)
            self._sel.close()
            self._close_loop()
            self._wake_r.close()
            self._wake_w.close()
            self.arena.close()
            self.spill.close()
        finally:
            if held:
                self._core_lock.release()
        self._close_loop_after()

    def _fail_all_pending(self, kind: str, detail: str) -> None:
        with self._lock:
            for e in self.table.values():
                if e.state == PENDING:
                    e.state, e.error_kind, e.error = FAILED, kind, detail
                    waiters, e.waiters = e.waiters, None
                    for fut in waiters or ():
                        fut.hit()
