"""The SimPy host: runs core components in simulated time, turning their commands into events.

Time model, per component (owner, raylet, global scheduler, GCS):

* Each component is a FIFO, non-preemptive server with a fixed service time per message
  (plus a per-KiB cost of its payload). The host keeps only the time at which it becomes
  free (``busy_until``): a message arriving at ``t`` completes at
  ``done = max(t, busy_until) + cost``. The component's handler runs when the message
  arrives but is told ``now=done``, and every command it returns takes effect at ``done``.
  This is exact because a component's state is private and changes only in arrival order,
  and it costs one engine event per message instead of two.
* Messages cost the network delay between the sender's and the receiver's nodes
  (``sim.network``). Each (sender, receiver) channel is FIFO like a TCP connection: a
  message never overtakes an earlier one on the same channel.
* Tasks run on the CPU slots the raylet reserved; the host only adds their duration.
* Object transfers (``Transfer``) are flows of ``sim.flows`` sharing links max-min fairly
  when ``flows`` is set (the runner always sets it), else latency + size / bandwidth.
  The raylet pulls the stored arguments of tasks and actor calls alike.
* Faults: ``kill_node`` (its components hear nothing more, its bodies never end, the GCS
  hears ``NodeDied``, transfers from it fail), ``kill_worker`` (the oldest body on a node
  ends with ``worker_died``, or its actor's worker dies), ``stall`` (a component, e.g. the
  GCS, serves nothing for a while: what arrives waits), ``partition`` (messages and
  transfers across a cut wait until it heals).
* A sharded GCS (``shard_gcs``): what is sent to the GCS is routed by ``sim.shards``.
* Same-time events are ordered by a random priority from a seeded generator, so results
  never depend on insertion order yet are identical for identical seeds.

The engine is a calendar (``sim.calendar``: SimPy's order, cheaper to pop) that SimPy's
own events share through ``CalendarEnvironment``, fed bare event objects with callbacks: no
Process per task or message. Events are pushed onto the calendar with absolute times
(SimPy's ``schedule`` only takes relative delays, which would lose the exact channel
ordering to rounding).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from heapq import heappop, heappush
from typing import Any, cast

import simpy

from runtime.core.component import Component
from runtime.core.messages import (
    INTERRUPT_CANCELLED,
    INTERRUPT_KILLED,
    ActorStateChanged,
    CancelRunning,
    CheckpointSaved,
    Command,
    Dispatch,
    FenceNode,
    Free,
    GeneratorYielded,
    ItemReady,
    KillWorker,
    NodeDied,
    ObjectFreed,
    ObjectReady,
    Persist,
    Restore,
    SaveCheckpoint,
    Send,
    SetTimer,
    Spill,
    StreamEnded,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
    TransferDone,
    TransferFailed,
    WorkerInterrupted,
)
from runtime.core.resources import shape_key
from runtime.core.task import ACTOR_METHOD, TASK, TaskSpec
from sim.calendar import Calendar, CalendarEnvironment
from sim.flows import FlowNetwork
from sim.metrics import MetricsRecorder
from sim.network import Network
from sim.shards import route as route_to_shards

ReadyCallback = Callable[[ObjectReady, float], None]
"""Called with an ObjectReady command and the time it takes effect."""


# The host's own calendar entries are plain tuples whose first item is a one-element list
# holding their callback: a tuple is built without a Python-level ``__init__`` (the cheapest
# entry there is), and SimPy's own events, which may share the calendar, are never tuples.
_Arrival = tuple[Any, ...]
"""``(callbacks, dst, msg, nbytes)``: ``msg`` (a message or host event) reaches ``dst``."""
_TaskEnd = tuple[Any, ...]
"""``(callbacks, dst, node, spec, started)``: the body of ``spec`` (started at ``started``)
ends on ``node``, whose raylet is at ``dst``."""
_Call = tuple[Any, ...]
"""``(callbacks, fn)``: call ``fn()`` (host-internal: workload start, watchdog)."""


class _Checked(Component):
    """A core component whose ``check()`` runs after every message it handles.

    The simulator's invariant-checking debug option (``control_plane.check_invariants``)
    puts this in front of every core component; any other attribute is forwarded.
    """

    __slots__ = ("component",)

    def __init__(self, component: Any) -> None:
        self.component = component

    def start(self, now: float, out: list[Command]) -> None:
        """Start the component."""
        self.component.start(now, out)

    def handle(self, msg: Any, now: float, out: list[Command]) -> None:
        """Handle `msg`, then verify the component's invariants (raises InvariantError)."""
        self.component.handle(msg, now, out)
        self.component.check()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.component, name)


@dataclass(slots=True, eq=False)
class _Server:
    """A hosted component and its FIFO service queue: what an arrival at its address needs.

    One record per address, so that an arrival costs one dict lookup (compiled, its
    ``busy`` and ``cost`` are unboxed floats of a native object)."""

    component: Component
    cost: float
    """Service time per message (s)."""
    busy: float = 0.0
    """When the component is free again."""


@dataclass(slots=True, eq=False)
class SlowWorker:
    """One slow worker of a node (``SlowFault`` with ``worker``) and the body it runs."""

    worker: int
    factor: float
    until: float
    """When the slowness ends (bodies starting later run at full speed)."""
    task_id: int | None = None
    """The body it runs now (None: idle)."""
    busy_until: float = -math.inf


class Host:
    """Owns the calendar, the components and their service queues; executes commands."""

    def __init__(
        self,
        network: Network,
        metrics: MetricsRecorder,
        tie_rng: random.Random,
        per_kib_s: float = 0.0,
        env: CalendarEnvironment | None = None,
    ) -> None:
        """Create an empty host; add components with `add`, then `start` them."""
        self.env = env or CalendarEnvironment()
        self.network = network
        self.metrics = metrics
        self.calendar: Calendar = self.env.calendar
        """Pending events, the host's and SimPy's (``sim.calendar`` has the order)."""
        self._times = self.calendar.times  # the calendar's parts, for the inlined paths
        self._buckets = self.calendar.buckets
        self._rand = tie_rng.random
        self._heappush: Callable[[list[Any], Any], None] = heappush
        """``heapq.heappush`` (compiled, an attribute is cheaper than a module global)."""
        self._per_byte_s = per_kib_s / 1024.0
        self._slot_extra = False
        self._task_overhead_s = 0.0
        self._store_s_per_byte = 0.0
        self._arg_s_per_byte = 0.0
        self._overhead_sigma = 0.0
        self._overhead_rng: random.Random | None = None
        self._inline_threshold = 0
        self.components: dict[int, Component] = {}
        self._checked: set[int] = set()
        """Addresses whose component runs ``check()`` after each message (`check_invariants`)."""
        self._node_of: dict[int, int] = {}
        self._servers: dict[int, _Server] = {}
        """Per address: the component (as in `components`), its service time, busy until."""
        self._raylet_of_node: dict[int, int] = {}
        self._channels: dict[int, dict[int, list[float]]] = {}
        """Per sender, per receiver: [latency s, s per byte, last arrival time]. Keyed by
        sender then receiver (small ints, cached by CPython) rather than by one combined
        int, which would be a fresh object per send."""
        self._ready_callbacks: dict[int, ReadyCallback] = {}
        self._out: list[Command] = []
        self._call_out: list[Command] = []
        self._timer_events: dict[tuple[int, str], TimerFired] = {}
        self._arrival_cbs = [self._on_arrival]
        self._task_end_cbs = [self._on_task_end]
        self._call_cbs = [self._on_call]
        self._transfer_cbs = [self._on_transfer_done]
        self.stopped = False
        """Set (by a workload or the watchdog) to end `run`."""
        self.transfers_in_flight = 0
        self.flows: FlowNetwork | None = None
        """Object transfers share links max-min fairly here when set (else: latency model)."""
        self._flow_done: dict[int, tuple[int, int, Callable[[], None]]] = {}
        """Flows in progress: id -> (source node, destination node, what to do at the end)."""
        self._flow_ids = 0
        self._flow_batches: dict[float, list[tuple[Callable[[], None], int, int, int]]] = {}
        """Flows to start at a time (started together: one max-min recomputation)."""
        self._flow_wake = math.inf
        self._commands: dict[type, Callable[[Any, int, float], None]] = {
            Send: self._send,
            Dispatch: self._dispatch,
            Transfer: self._transfer,
            SetTimer: self._set_timer,
            ObjectReady: self._object_ready,
            CancelRunning: self._cancel_running,
            Free: self._ignore,  # the simulator holds no bytes
            ObjectFreed: self._ignore,  # the simulator watches no object's end
            Trace: self._ignore,
            ActorStateChanged: self._ignore,  # no actor workloads in the simulator yet
            KillWorker: self._ignore,
            SaveCheckpoint: self._save_checkpoint,
            Spill: self._ignore,  # the simulator never asks for room (MakeRoom): no spilling yet
            Restore: self._ignore,
            ItemReady: self._stream_event,
            StreamEnded: self._stream_event,
            FenceNode: self._fence,
            Persist: self._ignore,  # the simulated GCS is never persistent (a real head's is)
        }
        self._stream_callbacks: dict[int, Callable[[Any, float], None]] = {}
        self._interrupted: dict[int, float] = {}
        """Running tasks whose body was interrupted: task id -> interruption time."""
        self._actor_busy_until: dict[int, float] = {}
        """Per concurrent actor: the end of its latest call accounted as busy time."""
        self.dead_nodes: set[int] = set()
        self._dead_addrs: set[int] = set()
        self._revived_at: dict[int, float] = {}
        """Restarted nodes: when their new incarnation started."""
        self.detect_by_heartbeats = False
        """The GCS finds dead nodes by their silence (``cluster.health``): a crash is not
        reported; the GCS's ``FenceNode`` is, after the timeout. False: at the crash."""
        self._reported_dead: set[int] = set()
        """Nodes whose death the GCS was told of (``NodeDied``) since they last started."""
        self.fenced: list[tuple[float, int]] = []
        """(time, node) of every ``FenceNode`` the GCS issued."""
        self.declared: list[tuple[float, int]] = []
        """(time, node) of the ``FenceNode`` s that reported a death (the first per crash)."""
        self._slow: dict[int, float] = {}
        """Slowed nodes (``slow_node``): node -> factor on the bodies starting there."""
        self._slow_until: dict[int, float] = {}
        self._slow_workers: dict[int, list[SlowWorker]] = {}
        """Nodes with one slow worker or more (``slow_worker``): node -> its slow workers."""
        self._cut: tuple[frozenset[int], float] | None = None
        """An active network partition: (one side's nodes, heal time)."""
        self.gcs_addr = 0
        self._gcs_addrs: set[int] = set()
        """The GCS (and its shards): their backlog is recorded as the GCS's."""
        self._special: set[int] = set()
        """Addresses whose arrivals take the slow path: watched (GCS, global scheduler) or dead."""
        self._shard_addrs: list[int] = []
        """GCS shard addresses (shard 0 first) when the GCS is sharded, else empty."""
        self._slow_sends = False
        """True while Sends need more than the channel arithmetic (GCS shards, a partition)."""
        self._stalled_until = -math.inf
        self._pending_done: dict[int, deque[float]] = {}
        """Watched components: completion times of the messages waiting or in service."""

    # -- wiring -------------------------------------------------------------------------

    def add(self, addr: int, component: Component, node: int, cost_s: float) -> None:
        """Host `component` at address `addr` on `node`, serving each message in `cost_s`."""
        if addr in self.components:
            raise ValueError(f"address {addr} is already in use")
        self._servers[addr] = _Server(component, cost_s)
        self._install(addr, component)
        self._node_of[addr] = node
        self._channels[addr] = {}

    def replace(self, addr: int, component: Component, cost_s: float) -> None:
        """Host `component` at the used address `addr` instead of what is there, serving
        each message in `cost_s` from now on (e.g. a killed member's stand-in); its node,
        channels and the time the old one is busy until stay."""
        if addr not in self.components:
            raise ValueError(f"address {addr} hosts no component to replace")
        self._install(addr, component)
        self._servers[addr].cost = cost_s

    def _install(self, addr: int, component: Component) -> None:
        """Put `component` at `addr` (wrapped to run ``check()`` where `check_invariants`
        asks): in `components` and in the address's server record, which holds it too."""
        hosted = _Checked(component) if addr in self._checked else component
        self.components[addr] = hosted
        self._servers[addr].component = hosted

    def start_component(self, addr: int) -> None:
        """Start the component at `addr` now (one added after `start`): carry out what its
        ``start(now, out)`` asks."""
        out: list[Command] = []
        self.components[addr].start(self.calendar.now, out)
        self._execute(out, addr, self.calendar.now)

    def deliver(self, addr: int, msg: Any) -> None:
        """A host event `msg` (e.g. a membership change) reaches component `addr` now."""
        self._deliver(addr, msg)

    def check_invariants(self, addrs: Iterable[int]) -> None:
        """Debugging: run ``check()`` of the components at `addrs` after every message they
        handle (call before `add`; a revived node's raylet is checked too)."""
        self._checked.update(addrs)

    def add_raylet(self, addr: int, raylet: Component, node: int, cost_s: float) -> None:
        """Host the raylet of `node` (tasks dispatched on `node` report back to it)."""
        self.add(addr, raylet, node, cost_s)
        self._raylet_of_node[node] = addr

    def on_ready(self, owner_addr: int, callback: ReadyCallback) -> None:
        """Route ObjectReady commands of the owner at `owner_addr` to `callback`."""
        self._ready_callbacks[owner_addr] = callback

    def on_stream(self, owner_addr: int, callback: Callable[[Any, float], None]) -> None:
        """Route ItemReady and StreamEnded commands of the owner at `owner_addr` to `callback`."""
        self._stream_callbacks[owner_addr] = callback

    def start(self) -> None:
        """Call `start(now, out)` of every component that has one, in address order."""
        now = self.env.now
        for addr in sorted(self.components):
            start = getattr(self.components[addr], "start", None)
            if start is not None:
                start(now, self._out)
                self._execute(self._out, addr, now)

    # -- calendar -----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Current simulated time in seconds."""
        return self.env.now

    def call_at(self, at: float, fn: Callable[[], None], observer: bool = False) -> None:
        """Run `fn()` at simulated time `at` (>= now).

        An `observer` (a metrics sampler that changes nothing) runs after every other
        same-time event and draws no tie-breaking number, so adding one never changes
        the simulation itself.
        """
        tie = 1.0 if observer else self._rand()
        self.calendar.push(at, tie, (self._call_cbs, fn))

    def _on_call(self, event: _Call) -> None:
        event[1]()

    # -- service ------------------------------------------------------------------------

    def serve_call(
        self, addr: int, fn: Callable[[float, list[Command]], None], at: float | None = None
    ) -> float:
        """Run `fn(done, out)` on component `addr` as a service request arriving at `at`.

        `at` defaults to now. Used for the calls a program makes on its owner (submit,
        remove_ref); re-entrant (a call may resolve futures whose callbacks call again).
        Returns the completion time.
        """
        if at is None:
            at = self.calendar.now
        server = self._servers[addr]
        busy = server.busy
        done = (at if at > busy else busy) + server.cost
        server.busy = done
        out = self._call_out
        if out:  # nested: the outer call's commands are being executed from this list
            out = []
        fn(done, out)
        if out:
            self._execute(out, addr, done)
        return done

    def _on_arrival(self, event: _Arrival) -> None:
        """A message or host event reaches its component: serve it FIFO."""
        nbytes: float
        _, dst, msg, nbytes = event
        now: float = self.calendar.now
        if dst in self._special:
            if dst in self._dead_addrs:
                return  # nothing is delivered to a dead node
            server = self._servers[dst]
            busy = server.busy
            done = (now if now > busy else busy) + server.cost + nbytes * self._per_byte_s
            self._record_backlog(dst, now, done)
        else:
            server = self._servers[dst]
            busy = server.busy
            done = (now if now > busy else busy) + server.cost + nbytes * self._per_byte_s
        server.busy = done
        out = self._out
        server.component.handle(msg, done, out)
        if out:
            self._execute(out, dst, done)

    def _on_task_end(self, event: _TaskEnd) -> None:
        """A task body ended: record it and serve TaskFinished at its raylet."""
        node: int
        spec: TaskSpec
        started: float
        _, dst, node, spec, started = event
        now: float = self.calendar.now
        metrics = self.metrics
        if self._interrupted and spec.task_id in self._interrupted:
            stopped = self._interrupted.pop(spec.task_id)
            metrics.task_finished(stopped - started, started - spec.submitted_at, -1, now)
            self._account(event, stopped - started)
            return  # its raylet already heard at the interruption
        if (self._dead_addrs and dst in self._dead_addrs) or (
            self._revived_at and started < self._revived_at.get(node, -1.0)
        ):
            metrics.running -= 1
            return  # the node died with the task on it
        # inlined metrics.task_finished (hot path)
        metrics.running -= 1
        metrics.queue.add(started - spec.submitted_at)
        run = now - started
        metrics.busy_s += run
        shape = spec.shape
        if shape is None or spec.kind:
            self._account(event, run)
        else:  # inlined metrics.busy
            if metrics.last_shape[node] is shape:
                cell = metrics.last_cell[node]
            else:
                cell = metrics.busy_cell(node, shape)
            cell[0] += run
        sizes = spec.output_sizes
        outputs = [(sizes[0], None)] if len(sizes) == 1 else [(s, None) for s in sizes]
        server = self._servers[dst]
        busy = server.busy
        done = (now if now > busy else busy) + server.cost
        server.busy = done
        out = self._out
        server.component.handle(TaskFinished(spec.task_id, outputs), done, out)
        if out:
            self._execute(out, dst, done)

    def _account(self, event: _TaskEnd, run: float) -> None:
        """Busy time of a body whose shape is not preset (actor calls: what the actor holds)."""
        _, dst, node, spec, started = event
        resources = spec.resources
        if spec.kind == ACTOR_METHOD:
            raylet: Any = self.components[dst]
            hold = raylet.actor_hold(spec.actor_id)
            resources = hold if hold is not None else {}
            created = raylet.actor_spec(spec.actor_id) if hold is not None else None
            if created is not None and created.max_concurrency > 1:
                counted = self._actor_busy(spec.actor_id, started, started + run)
                self.metrics.busy_s -= run - counted  # overlapping calls: busy once
                run = counted
        shape = shape_key(resources)
        if shape:
            self.metrics.busy(node, shape, run)

    def _actor_busy(self, actor_id: int, start: float, end: float) -> float:
        """The part of a concurrent actor's call not overlapping its earlier calls: what
        it holds is busy once while any of its calls run (ends arrive in time order)."""
        until = self._actor_busy_until
        last = until.get(actor_id, -math.inf)
        until[actor_id] = max(last, end)
        return max(0.0, end - max(start, last))

    def _record_backlog(self, dst: int, now: float, done: float) -> None:
        """Record how many messages the GCS or global scheduler has waiting or in service.

        A component serves FIFO, so the completion times of its messages never decrease:
        those still ahead of ``now`` are a deque whose length is the real queue length
        (during an outage, where the service time says nothing about the count).
        """
        pending = self._pending_done.get(dst)
        if pending is None:
            pending = self._pending_done[dst] = deque()
        while pending and pending[0] <= now:
            pending.popleft()
        pending.append(done)
        self.metrics.queues.backlog(dst in self._gcs_addrs, now, len(pending))

    def _on_transfer_done(self, event: _Arrival) -> None:
        """An object copy arrived at its destination raylet (or failed: its source died)."""
        self.transfers_in_flight -= 1
        msg = event[2]
        if self.dead_nodes and msg.src in self.dead_nodes:
            event = (event[0], event[1], TransferFailed(msg.oid, msg.src), event[3])
        self._on_arrival(event)

    # -- commands -----------------------------------------------------------------------

    def _execute(self, out: list[Command], src: int, at: float) -> None:
        """Apply the commands `src` issued at time `at`, then clear `out`.

        Send, most commands by far, is handled inline (same logic as `_send`); Dispatch
        and ObjectReady, the next ones, are called directly rather than through the table.
        """
        commands = self._commands
        channels = self._channels[src]  # src's outgoing channels, by receiver
        times = self._times
        buckets = self._buckets
        metrics = self.metrics
        slow = self._slow_sends
        push = self._heappush
        for cmd in out:
            cls = type(cmd)
            if cls is Send:
                send: Send = cmd  # type: ignore[assignment]  # (a cast, without a call)
                if slow:
                    self._post_send(send, src, at)
                    continue
                dst = send.dst
                nbytes = send.nbytes
                metrics.messages += 1
                metrics.message_bytes += nbytes
                try:
                    channel = channels[dst]  # a subscript: cheaper than .get
                except KeyError:
                    channel = self._open_channel(src, dst)
                arrive = at + channel[0] + nbytes * channel[1]
                if arrive <= channel[2]:
                    arrive = math.nextafter(channel[2], math.inf)  # FIFO: never overtake
                channel[2] = arrive
                event = (self._arrival_cbs, dst, send.msg, nbytes)
                key: Any = arrive  # inlined Calendar.push (Any: compiled, one float object)
                entry: Any = (self._rand(), key, event)  # Any: one object, kept by identity
                if buckets.setdefault(key, entry) is not entry:
                    self.calendar.tied(key, entry)
                push(times, key)
                continue
            if cls is Dispatch:
                self._dispatch(cmd, src, at)  # type: ignore[arg-type]
                continue
            if cls is ObjectReady:
                self._object_ready(cmd, src, at)  # type: ignore[arg-type]
                continue
            try:
                handler = commands[cls]
            except KeyError:
                out.clear()
                raise TypeError(f"the simulator cannot execute command {cmd!r}") from None
            handler(cmd, src, at)
        out.clear()

    def watch(self, addrs: list[int], gcs: bool) -> None:
        """Record the backlog of the components at `addrs` (as the GCS's when `gcs`)."""
        self._special.update(addrs)
        if gcs:
            self._gcs_addrs.update(addrs)

    def shard_gcs(self, addrs: list[int]) -> None:
        """Route what is sent to the GCS over these shard addresses (shard 0 = the GCS's)."""
        self._shard_addrs = list(addrs)
        self.watch(addrs, gcs=True)
        self._update_slow_sends()

    def _update_slow_sends(self) -> None:
        self._slow_sends = len(self._shard_addrs) > 1 or self._cut is not None

    def _post_send(self, cmd: Send, src: int, at: float) -> None:
        """A Send on the slow path: to the GCS's shard(s) if sharded, across a cut maybe."""
        addrs = self._shard_addrs
        if cmd.dst == self.gcs_addr and len(addrs) > 1:
            for shard, msg, nbytes in route_to_shards(cmd.msg, cmd.nbytes, len(addrs)):
                self._post(src, addrs[shard], msg, nbytes, at)
        else:
            self._post(src, cmd.dst, cmd.msg, cmd.nbytes, at)

    def _post(self, src: int, dst: int, msg: Any, nbytes: int, at: float) -> None:
        """Deliver `msg` from `src` to `dst` over their FIFO channel (the Send logic)."""
        self.metrics.message(nbytes)
        channel = self._channels[src].get(dst)
        if channel is None:
            channel = self._open_channel(src, dst)
        arrive = at + channel[0] + nbytes * channel[1]
        if self._cut is not None:
            arrive = self._across_cut(src, dst, at, arrive, channel[0])
        if arrive <= channel[2]:
            arrive = math.nextafter(channel[2], math.inf)
        channel[2] = arrive
        event = (self._arrival_cbs, dst, msg, nbytes)
        self.calendar.push(arrive, self._rand(), event)

    def _open_channel(self, src: int, dst: int) -> list[float]:
        """Create the FIFO channel src -> dst: [latency s, s per byte, last arrival]."""
        latency, inv_bw = self.network.path(self._node_of[src], self._node_of[dst])
        channel = self._channels[src][dst] = [latency, inv_bw, -math.inf]
        return channel

    def _send(self, cmd: Send, src: int, at: float) -> None:
        """Deliver `cmd.msg` after the channel's delay (the slow path of `_execute`)."""
        self._post_send(cmd, src, at)

    def _dispatch(self, cmd: Dispatch, src: int, at: float) -> None:
        spec = cmd.spec
        metrics = self.metrics  # inlined metrics.task_started (hot path)
        metrics.started += 1
        running = metrics.running = metrics.running + 1
        if running > metrics.peak_running:
            metrics.peak_running = running
        raylet = self._raylet_of_node[cmd.node]
        event = (self._task_end_cbs, raylet, cmd.node, spec, at)
        if spec.generator:
            self._schedule_items(spec, raylet, at)
        end = at + spec.duration
        if self._slow and cmd.node in self._slow:
            end += spec.duration * (self._slow[cmd.node] - 1.0)  # a straggler (SlowFault)
        if self._slow_workers and cmd.node in self._slow_workers:
            end += self._on_slow_worker(cmd.node, spec, at, end)
        if self._slot_extra:
            end += self._overhead(spec)
        key: Any = end  # inlined Calendar.push (Any: compiled, one float object)
        entry: Any = (self._rand(), key, event)  # Any: one object, kept by identity
        if self._buckets.setdefault(key, entry) is not entry:
            self.calendar.tied(key, entry)
        self._heappush(self._times, key)

    def set_task_overhead(
        self,
        per_task_s: float,
        store_s_per_byte: float,
        inline_threshold: int,
        arg_s_per_byte: float = 0.0,
        sigma: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        """Slot time each task holds beyond its body, plus per byte of stored output and
        per byte of stored argument it reads; with `sigma` > 0 each task's overhead is
        scaled by a lognormal factor of mean 1 drawn from `rng` (its own stream)."""
        if sigma > 0 and rng is None:
            raise ValueError("set_task_overhead: a spread (sigma > 0) needs its rng")
        self._overhead_sigma = sigma
        self._overhead_rng = rng
        self._task_overhead_s = per_task_s
        self._store_s_per_byte = store_s_per_byte
        self._arg_s_per_byte = arg_s_per_byte
        self._inline_threshold = inline_threshold
        self._slot_extra = per_task_s > 0 or store_s_per_byte > 0 or arg_s_per_byte > 0

    def _overhead(self, spec: TaskSpec) -> float:
        extra = self._task_overhead_s
        if self._store_s_per_byte:
            stored = sum(s for s in spec.output_sizes if s >= self._inline_threshold)
            extra += stored * self._store_s_per_byte
        if self._arg_s_per_byte and spec.deps:
            extra += sum(d.size for d in spec.deps) * self._arg_s_per_byte
        if self._overhead_rng is not None:
            sigma = self._overhead_sigma
            extra *= self._overhead_rng.lognormvariate(-0.5 * sigma * sigma, sigma)
        return extra

    def _transfer(self, cmd: Transfer, src: int, at: float) -> None:
        self.metrics.transfer(cmd.nbytes, at)
        src_node = cmd.src if cmd.src >= 0 else cmd.dst
        self.transfers_in_flight += 1
        done = TransferDone(cmd.oid, cmd.nbytes, cmd.src)
        event = (self._transfer_cbs, self._raylet_of_node[cmd.dst], done, 0)
        cut = self._cut
        crossing = cut is not None and at < cut[1] and (src_node in cut[0]) != (cmd.dst in cut[0])
        if self.flows is not None:
            start = cut[1] if crossing and cut is not None else at  # a cut link carries nothing
            done_fn = partial(self._on_transfer_done, event)
            self._start_flow(done_fn, src_node, cmd.dst, cmd.nbytes, start)
            return
        arrive = at + self.network.delay(src_node, cmd.dst, cmd.nbytes)
        if crossing and cut is not None:
            arrive = max(arrive, cut[1] + self.network.delay(src_node, cmd.dst, 0))
        self.calendar.push(arrive, self._rand(), event)

    def _start_flow(
        self, done: Callable[[], None], src: int, dst: int, nbytes: int, at: float
    ) -> None:
        """Start a flow at `at`; `done()` runs when the flow model says it finished.

        Flows starting at the same time are started together (see `_start_flows`).
        """
        batch = self._flow_batches.get(at)
        if batch is None:
            batch = self._flow_batches[at] = []
            self.call_at(at, partial(self._start_flows, at))
        batch.append((done, src, dst, nbytes))

    def _start_flows(self, at: float) -> None:
        """Start the flows batched for time `at` (now)."""
        flows = self.flows
        assert flows is not None
        items = []
        for done, src, dst, nbytes in self._flow_batches.pop(at):
            fid = self._flow_ids = self._flow_ids + 1
            self._flow_done[fid] = (src, dst, done)
            items.append((fid, src, dst, nbytes))
        flows.start_many(items, self.calendar.now)
        self._wake_flows_at_next()

    def _cancel_flows_of(self, node: int) -> None:
        """A node died: its flows stop now and end at once (transfers from it fail)."""
        flows = self.flows
        if flows is None:
            return
        now = self.calendar.now
        ended = [f for f, (src, dst, _) in self._flow_done.items() if node in (src, dst)]
        for fid in sorted(ended):
            flows.cancel(fid, now)
            self._flow_done.pop(fid)[2]()
        self._wake_flows_at_next()

    def _wake_flows_at_next(self) -> None:
        """Make sure an event runs at the flow model's next completion."""
        flows = self.flows
        assert flows is not None
        nxt = flows.next_completion()
        if nxt is not None and nxt[0] < self._flow_wake:
            self._flow_wake = nxt[0]
            self.call_at(nxt[0], self._advance_flows)

    def _advance_flows(self) -> None:
        """Deliver the transfers whose flows finished by now."""
        flows = self.flows
        assert flows is not None
        now = self.calendar.now
        if self._flow_wake <= now:
            self._flow_wake = math.inf
        for fid in flows.advance(now):
            self._flow_done.pop(cast(int, fid))[2]()  # the host's flow ids are ints
        self._wake_flows_at_next()

    def _save_checkpoint(self, cmd: SaveCheckpoint, src: int, at: float) -> None:
        """An actor's state is saved in its plan's modelled time (``cost_s``)."""
        plan = cmd.spec.checkpoint
        cost, size = (plan.cost_s, plan.size) if plan is not None else (0.0, 0)
        saved = CheckpointSaved(cmd.actor_id, None, size)
        event = (self._arrival_cbs, self._raylet_of_node[cmd.node], saved, 0)
        self.calendar.push(at + cost, self._rand(), event)

    def _set_timer(self, cmd: SetTimer, src: int, at: float) -> None:
        key = (cmd.addr, cmd.key)
        fired = self._timer_events.get(key)
        if fired is None:
            fired = self._timer_events[key] = TimerFired(cmd.key)
        event = (self._arrival_cbs, cmd.addr, fired, 0)
        self.calendar.push(at + cmd.delay, self._rand(), event)

    def _schedule_items(self, spec: TaskSpec, raylet: int, at: float) -> None:
        """A generator body yields its items (sizes in ``spec.args``) evenly over its run.

        Item ``i`` of ``n`` is yielded at ``(i + 1) / (n + 1)`` of the duration, so the last
        one comes strictly before the body's end; a re-run skips the items delivered already.
        """
        sizes = spec.args or ()
        n = len(sizes)
        attempt = spec.attempt
        for i in range(spec.skip_items, n):
            when = at + spec.duration * (i + 1) / (n + 1)

            def yielded(i: int = i) -> None:
                stopped = self._interrupted.get(spec.task_id, -1.0) if self._interrupted else -1.0
                if spec.attempt != attempt or stopped >= at:
                    return  # the body died, was re-run or was cancelled meanwhile
                item = GeneratorYielded(spec.task_id, i, sizes[i])
                self._on_arrival((self._arrival_cbs, raylet, item, 0))

            self.call_at(when, yielded)

    def _stream_event(self, cmd: Any, src: int, at: float) -> None:
        callback = self._stream_callbacks.get(cmd.owner)
        if callback is not None:
            callback(cmd, at)

    def _object_ready(self, cmd: ObjectReady, src: int, at: float) -> None:
        callback = self._ready_callbacks.get(cmd.owner)
        if callback is not None:
            callback(cmd, at)

    def _cancel_running(self, cmd: CancelRunning, src: int, at: float) -> None:
        """Interrupt a running body: its raylet hears now, the end event is then ignored."""
        self._interrupted[cmd.task_id] = at
        stop = WorkerInterrupted(cmd.task_id, INTERRUPT_CANCELLED)
        event = (self._arrival_cbs, self._raylet_of_node[cmd.node], stop, 0)
        self.calendar.push(at, self._rand(), event)

    def _ignore(self, cmd: Any, src: int, at: float) -> None:
        pass

    # -- faults -----------------------------------------------------------------------

    def _across_cut(self, src: int, dst: int, at: float, arrive: float, latency: float) -> float:
        """Delay a message crossing an active partition until it heals (then the latency)."""
        cut = self._cut
        assert cut is not None
        side, heal = cut
        if at < heal and (self._node_of[src] in side) != (self._node_of[dst] in side):
            return max(arrive, heal + latency)
        return arrive

    def fault_pending(self, now: float) -> bool:
        """Whether a partition, a stalled component or a death the GCS has yet to detect
        may still be holding work back."""
        return (
            self._cut is not None
            or now < self._stalled_until
            or (self.detect_by_heartbeats and not self.dead_nodes <= self._reported_dead)
        )

    def kill_node(self, node: int) -> None:
        """`node` dies now: its components hear nothing more, its running bodies never end.

        The GCS hears ``NodeDied`` at once, or, with ``detect_by_heartbeats``, not at all:
        its detector finds the silence after ``node_timeout_s`` (see `_fence`); transfers
        from the node fail when they would have completed.
        """
        self._cut_off(node)
        if not self.detect_by_heartbeats:
            self._report_death(node, self.calendar.now)

    def _cut_off(self, node: int) -> None:
        """`node`'s components hear nothing more; flows from it stop."""
        self.dead_nodes.add(node)
        dead = [a for a, n in self._node_of.items() if n == node]
        self._dead_addrs.update(dead)
        self._special.update(dead)
        self._cancel_flows_of(node)

    def _report_death(self, node: int, at: float) -> None:
        """Every GCS shard hears ``NodeDied`` for `node` at `at` (once per incarnation)."""
        self._reported_dead.add(node)
        for addr in self._shard_addrs or [self.gcs_addr]:
            event = (self._arrival_cbs, addr, NodeDied(node), 0)
            self.calendar.push(at, self._rand(), event)

    def _fence(self, cmd: FenceNode, src: int, at: float) -> None:
        """The GCS declared `cmd.node` dead: cut it off (if it still ran, e.g. behind a
        partition: Ray kills such a node) and report the death, the first time."""
        self.fenced.append((at, cmd.node))
        if cmd.node in self._reported_dead:
            return
        self.declared.append((at, cmd.node))
        if cmd.node not in self.dead_nodes:
            self._cut_off(cmd.node)
        self._report_death(cmd.node, at)

    def revive_node(self, node: int, raylet: Component) -> None:
        """`node` comes back empty: `raylet` (fresh, no tasks or objects) starts on it now.

        Bodies that were running when the node died still never end, and whatever was
        in flight to the old incarnation reaches the new one (which ignores what it does
        not know).
        """
        now = self.calendar.now
        self.dead_nodes.discard(node)
        self._reported_dead.discard(node)
        addrs = [a for a, n in self._node_of.items() if n == node]
        self._dead_addrs.difference_update(addrs)
        self._special.difference_update(a for a in addrs if a not in self._gcs_addrs)
        self._revived_at[node] = now
        addr = self._raylet_of_node[node]
        self._install(addr, raylet)
        self._servers[addr].busy = now
        raylet.start(now, self._out)
        self._execute(self._out, addr, now)

    def kill_worker(self, node: int) -> str:
        """Kill the worker of the oldest body running on `node`; return what it ran.

        A plain task ends with ``worker_died`` (its owner retries it); an actor's worker
        death is reported as ``ActorWorkerDied`` (the GCS may restart the actor).
        """
        addr = self._raylet_of_node[node]
        raylet: Any = self.components[addr]
        hit = raylet.victim(self._interrupted)
        if hit is None:
            return "idle"
        self._interrupted[hit.task_id] = self.calendar.now
        reason = "worker killed (fault)"
        self._deliver(addr, WorkerInterrupted(hit.task_id, INTERRUPT_KILLED, reason, hit.actor_id))
        return f"task {hit.task_id:x}" if hit.kind == TASK else f"actor {hit.actor_id:x}"

    def stall(self, addr: int, duration: float) -> None:
        """Component `addr` is unavailable for `duration`: what arrives meanwhile waits."""
        now = self.calendar.now
        server = self._servers[addr]
        server.busy = max(server.busy, now + duration)
        self._stalled_until = max(self._stalled_until, now + duration)

    def slow_node(self, node: int, factor: float, duration: float) -> None:
        """Bodies starting on `node` in the next `duration` s run `factor` times longer."""
        self._slow[node] = factor
        until = self.calendar.now + duration
        self._slow_until[node] = until
        self.call_at(until, lambda: self._unslow(node))

    def _unslow(self, node: int) -> None:
        if self._slow_until.get(node, math.inf) <= self.calendar.now:  # not extended since
            self._slow.pop(node, None)
            self._slow_until.pop(node, None)

    def slow_worker(self, node: int, worker: int, factor: float, duration: float) -> None:
        """One worker of `node` runs the bodies it starts in the next `duration` s `factor`
        times longer; the node's other workers keep full speed (see `_on_slow_worker`)."""
        until = self.calendar.now + duration
        workers = self._slow_workers.setdefault(node, [])
        slow = next((w for w in workers if w.worker == worker), None)
        if slow is None:
            workers.append(SlowWorker(worker, factor, until))
        else:
            slow.factor, slow.until = factor, until
        self.call_at(until, lambda: self._unslow_worker(node, worker))

    def _on_slow_worker(self, node: int, spec: TaskSpec, at: float, end: float) -> float:
        """The extra run time of a body starting on `node` at `at`: it runs on an idle slow
        worker if there is one (each idle worker is as likely to get it as any other: the
        model gives it to the slow one, the case speculation must cope with)."""
        for slow in self._slow_workers[node]:
            busy = slow.task_id
            if busy is not None and at < slow.busy_until and busy not in self._interrupted:
                continue  # running a body (not a cancelled or killed one)
            extra = (end - at) * (slow.factor - 1.0)
            slow.task_id, slow.busy_until = spec.task_id, end + extra
            return extra
        return 0.0

    def _unslow_worker(self, node: int, worker: int) -> None:
        workers = self._slow_workers.get(node, [])
        for slow in list(workers):
            if slow.worker == worker and slow.until <= self.calendar.now:  # not extended since
                workers.remove(slow)
        if not workers:
            self._slow_workers.pop(node, None)

    def partition(self, nodes: frozenset[int], duration: float) -> None:
        """Cut `nodes` off from the others for `duration` (crossing messages wait)."""
        heal = self.calendar.now + duration
        self._cut = (nodes, heal)
        self._update_slow_sends()
        self.call_at(heal, self._heal)

    def _heal(self) -> None:
        cut = self._cut
        if cut is not None and cut[1] <= self.calendar.now:
            self._cut = None
            self._update_slow_sends()

    def _deliver(self, addr: int, msg: Any) -> None:
        """A host event reaches component `addr` now."""
        event = (self._arrival_cbs, addr, msg, 0)
        self.calendar.push(self.calendar.now, self._rand(), event)

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Process events until `stopped` is set.

        The loop is SimPy's ``Environment.step`` inlined (same calendar, same semantics for
        SimPy's own events, including failed ones), which saves a call per event.
        """
        calendar = self.calendar
        times = self._times
        buckets = self._buckets
        pop = heappop  # a local: compiled, a module global is a dict lookup per use
        popped = 0
        one: tuple[Any, ...]  # a tuple of any length stays boxed compiled: a native [i]
        try:
            while not self.stopped:
                at = pop(times)  # inlined Calendar.pop
                entry = buckets.pop(at)
                popped += 1
                if type(entry) is tuple:
                    one = entry
                    calendar.now = one[1]  # its own time (an equal int or float may differ)
                    event = one[2]
                else:
                    calendar.now, event = calendar.untie(at, entry)
                if type(event) is tuple:  # the host's own: one callback, never fails
                    one = event
                    one[0][0](event)
                    continue
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    raise event._value
        except IndexError:
            if times:
                raise
            raise simpy.core.EmptySchedule() from None
        finally:
            calendar.popped += popped

    def run_while(self, condition: Callable[[], bool]) -> None:
        """Process events while `condition()` holds (checked before each event; slow path).

        Each step is SimPy's ``Environment.step``, which the host's own (tuple) entries
        would not pass: `step` is that step for both kinds of entries.
        """
        while condition():
            self.step()

    def step(self) -> None:
        """Process the next event (SimPy's ``Environment.step`` for the host's calendar).

        Raises ``simpy.core.EmptySchedule`` when nothing is scheduled.
        """
        try:
            self.calendar.now, event = self.calendar.pop()
        except IndexError:
            raise simpy.core.EmptySchedule() from None
        if type(event) is tuple:
            event[0][0](event)
            return
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            raise event._value
