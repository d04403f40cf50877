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
* Same-time events are ordered by a random priority from a seeded generator, so results
  never depend on insertion order yet are identical for identical seeds.

The engine is SimPy's calendar (``env.step``), fed bare event objects with callbacks: no
Process per task or message. Events are pushed onto the calendar with absolute times
(SimPy's ``schedule`` only takes relative delays, which would lose the exact channel
ordering to rounding).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy

from runtime.core.messages import (
    ActorStateChanged,
    CancelRunning,
    Dispatch,
    Free,
    KillWorker,
    ObjectReady,
    Send,
    SetTimer,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
    TransferDone,
)
from runtime.core.task import ERR_APPLICATION, TaskSpec
from sim.metrics import MetricsRecorder
from sim.network import Network

Component = Any
"""A core component: anything with ``handle(msg, now, out)``."""

ReadyCallback = Callable[[ObjectReady, float], None]
"""Called with an ObjectReady command and the time it takes effect."""


class _Arrival:
    """Calendar entry: ``msg`` reaches the component at ``dst`` (a message or host event)."""

    __slots__ = ("callbacks", "dst", "msg", "nbytes")
    _ok = True  # what simpy's step() checks on a processed event

    def __init__(self, callbacks: list[Any], dst: int, msg: Any, nbytes: int) -> None:
        self.callbacks = callbacks
        self.dst = dst
        self.msg = msg
        self.nbytes = nbytes


class _TaskEnd:
    """Calendar entry: the body of ``spec`` (started at ``started``) ends on its node."""

    __slots__ = ("callbacks", "dst", "spec", "started")
    _ok = True

    def __init__(self, callbacks: list[Any], dst: int, spec: TaskSpec, started: float) -> None:
        self.callbacks = callbacks
        self.dst = dst
        self.spec = spec
        self.started = started


class _Call:
    """Calendar entry: call ``fn()`` (host-internal: workload start, watchdog)."""

    __slots__ = ("callbacks", "fn")
    _ok = True

    def __init__(self, callbacks: list[Any], fn: Callable[[], None]) -> None:
        self.callbacks = callbacks
        self.fn = fn


_OWN_EVENTS = frozenset({_Arrival, _TaskEnd, _Call})


class Host:
    """Owns the calendar, the components and their service queues; executes commands."""

    def __init__(
        self,
        network: Network,
        metrics: MetricsRecorder,
        tie_rng: random.Random,
        per_kib_s: float = 0.0,
        env: simpy.Environment | None = None,
    ) -> None:
        """Create an empty host; add components with `add`, then `start` them."""
        self.env = env or simpy.Environment()
        self.network = network
        self.metrics = metrics
        self._queue: list[Any] = self.env._queue  # SimPy's calendar heap
        self._eid = self.env._eid  # SimPy's tie counter, shared so entries never compare
        self._rand = tie_rng.random
        self._per_byte_s = per_kib_s / 1024.0
        self.components: dict[int, Component] = {}
        self._node_of: dict[int, int] = {}
        self._cost: dict[int, float] = {}
        self._busy: dict[int, float] = {}
        self._raylet_of_node: dict[int, int] = {}
        self._channels: dict[int, list[float]] = {}
        """Per (sender << 32 | receiver): [latency s, s per byte, last arrival time]."""
        self._ready_callbacks: dict[int, ReadyCallback] = {}
        self._out: list[Any] = []
        self._call_out: list[Any] = []
        self._timer_events: dict[tuple[int, str], TimerFired] = {}
        self._arrival_cbs = [self._on_arrival]
        self._task_end_cbs = [self._on_task_end]
        self._call_cbs = [self._on_call]
        self._transfer_cbs = [self._on_transfer_done]
        self.stopped = False
        """Set (by a workload or the watchdog) to end `run`."""
        self.transfers_in_flight = 0
        self._commands: dict[type, Callable[[Any, int, float], None]] = {
            Send: self._send,
            Dispatch: self._dispatch,
            Transfer: self._transfer,
            SetTimer: self._set_timer,
            ObjectReady: self._object_ready,
            CancelRunning: self._cancel_running,
            Free: self._ignore,  # the simulator holds no bytes
            Trace: self._ignore,
            ActorStateChanged: self._ignore,  # no actor workloads in the simulator yet
            KillWorker: self._ignore,
        }
        self._interrupted: dict[int, float] = {}
        """Running tasks whose body was interrupted: task id -> interruption time."""

    # -- wiring -------------------------------------------------------------------------

    def add(self, addr: int, component: Component, node: int, cost_s: float) -> None:
        """Host `component` at address `addr` on `node`, serving each message in `cost_s`."""
        if addr in self.components:
            raise ValueError(f"address {addr} is already in use")
        self.components[addr] = component
        self._node_of[addr] = node
        self._cost[addr] = cost_s
        self._busy[addr] = 0.0

    def add_raylet(self, addr: int, raylet: Component, node: int, cost_s: float) -> None:
        """Host the raylet of `node` (tasks dispatched on `node` report back to it)."""
        self.add(addr, raylet, node, cost_s)
        self._raylet_of_node[node] = addr

    def on_ready(self, owner_addr: int, callback: ReadyCallback) -> None:
        """Route ObjectReady commands of the owner at `owner_addr` to `callback`."""
        self._ready_callbacks[owner_addr] = callback

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

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run `fn()` at simulated time `at` (>= now)."""
        heappush(self._queue, (at, self._rand(), next(self._eid), _Call(self._call_cbs, fn)))

    def _on_call(self, event: _Call) -> None:
        event.fn()

    # -- service ------------------------------------------------------------------------

    def serve_call(
        self, addr: int, fn: Callable[[float, list[Any]], None], at: float | None = None
    ) -> float:
        """Run `fn(done, out)` on component `addr` as a service request arriving at `at`.

        `at` defaults to now. Used for the calls a program makes on its owner (submit,
        remove_ref); re-entrant (a call may resolve futures whose callbacks call again).
        Returns the completion time.
        """
        if at is None:
            at = self.env._now
        busy = self._busy[addr]
        done = (at if at > busy else busy) + self._cost[addr]
        self._busy[addr] = done
        out = self._call_out
        if out:  # nested: the outer call's commands are being executed from this list
            out = []
        fn(done, out)
        if out:
            self._execute(out, addr, done)
        return done

    def _on_arrival(self, event: _Arrival) -> None:
        """A message or host event reaches its component: serve it FIFO."""
        dst = event.dst
        now = self.env._now
        busy = self._busy[dst]
        done = (now if now > busy else busy) + self._cost[dst] + event.nbytes * self._per_byte_s
        self._busy[dst] = done
        out = self._out
        self.components[dst].handle(event.msg, done, out)
        if out:
            self._execute(out, dst, done)

    def _on_task_end(self, event: _TaskEnd) -> None:
        """A task body ended: record it and serve TaskFinished at its raylet."""
        spec = event.spec
        now = self.env._now
        started = event.started
        metrics = self.metrics
        if self._interrupted and spec.task_id in self._interrupted:
            stopped = self._interrupted.pop(spec.task_id)
            metrics.task_finished(stopped - started, started - spec.submitted_at, -1, now)
            return  # its raylet already heard at the interruption
        # inlined metrics.task_finished (hot path)
        metrics.running -= 1
        metrics.queue.add(started - spec.submitted_at)
        metrics.busy_s += now - started
        sizes = spec.output_sizes
        outputs = [(sizes[0], None)] if len(sizes) == 1 else [(s, None) for s in sizes]
        dst = event.dst
        busy = self._busy[dst]
        done = (now if now > busy else busy) + self._cost[dst]
        self._busy[dst] = done
        out = self._out
        self.components[dst].handle(TaskFinished(spec.task_id, outputs), done, out)
        if out:
            self._execute(out, dst, done)

    def _on_transfer_done(self, event: _Arrival) -> None:
        """An object copy arrived at its destination raylet."""
        self.transfers_in_flight -= 1
        self._on_arrival(event)

    # -- commands -----------------------------------------------------------------------

    def _execute(self, out: list[Any], src: int, at: float) -> None:
        """Apply the commands `src` issued at time `at`, then clear `out`.

        Send, most commands by far, is handled inline (same logic as `_send`).
        """
        commands = self._commands
        channels = self._channels
        queue = self._queue
        metrics = self.metrics
        for cmd in out:
            cls = cmd.__class__
            if cls is Send:
                dst = cmd.dst
                nbytes = cmd.nbytes
                metrics.messages += 1
                metrics.message_bytes += nbytes
                channel = channels.get(src << 32 | dst)
                if channel is None:
                    channel = self._open_channel(src, dst)
                arrive = at + channel[0] + nbytes * channel[1]
                if arrive <= channel[2]:
                    arrive = math.nextafter(channel[2], math.inf)  # FIFO: never overtake
                channel[2] = arrive
                event = _Arrival(self._arrival_cbs, dst, cmd.msg, nbytes)
                heappush(queue, (arrive, self._rand(), next(self._eid), event))
                continue
            handler = commands.get(cls)
            if handler is None:
                out.clear()
                raise TypeError(f"the simulator cannot execute command {cmd!r}")
            handler(cmd, src, at)
        out.clear()

    def _open_channel(self, src: int, dst: int) -> list[float]:
        """Create the FIFO channel src -> dst: [latency s, s per byte, last arrival]."""
        latency, inv_bw = self.network.path(self._node_of[src], self._node_of[dst])
        channel = self._channels[src << 32 | dst] = [latency, inv_bw, -math.inf]
        return channel

    def _send(self, cmd: Send, src: int, at: float) -> None:
        """Deliver `cmd.msg` after the channel's delay (the slow path of `_execute`)."""
        out = [cmd]
        self._execute(out, src, at)

    def _dispatch(self, cmd: Dispatch, src: int, at: float) -> None:
        spec = cmd.spec
        self.metrics.task_started(cmd.node, at)
        event = _TaskEnd(self._task_end_cbs, self._raylet_of_node[cmd.node], spec, at)
        heappush(self._queue, (at + spec.duration, self._rand(), next(self._eid), event))

    def _transfer(self, cmd: Transfer, src: int, at: float) -> None:
        self.metrics.transfer(cmd.nbytes)
        src_node = cmd.src if cmd.src >= 0 else cmd.dst
        arrive = at + self.network.delay(src_node, cmd.dst, cmd.nbytes)
        self.transfers_in_flight += 1
        done = TransferDone(cmd.oid, cmd.nbytes, cmd.src)
        event = _Arrival(self._transfer_cbs, self._raylet_of_node[cmd.dst], done, 0)
        heappush(self._queue, (arrive, self._rand(), next(self._eid), event))

    def _set_timer(self, cmd: SetTimer, src: int, at: float) -> None:
        key = (cmd.addr, cmd.key)
        fired = self._timer_events.get(key)
        if fired is None:
            fired = self._timer_events[key] = TimerFired(cmd.key)
        event = _Arrival(self._arrival_cbs, cmd.addr, fired, 0)
        heappush(self._queue, (at + cmd.delay, self._rand(), next(self._eid), event))

    def _object_ready(self, cmd: ObjectReady, src: int, at: float) -> None:
        callback = self._ready_callbacks.get(cmd.owner)
        if callback is not None:
            callback(cmd, at)

    def _cancel_running(self, cmd: CancelRunning, src: int, at: float) -> None:
        """Interrupt a running body: its raylet hears now, the end event is then ignored."""
        self._interrupted[cmd.task_id] = at
        stop = TaskFinished(cmd.task_id, [], ERR_APPLICATION, "KeyboardInterrupt")
        event = _Arrival(self._arrival_cbs, self._raylet_of_node[cmd.node], stop, 0)
        heappush(self._queue, (at, self._rand(), next(self._eid), event))

    def _ignore(self, cmd: Any, src: int, at: float) -> None:
        pass

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Process events until `stopped` is set.

        The loop is SimPy's ``Environment.step`` inlined (same calendar, same semantics for
        SimPy's own events, including failed ones), which saves a call per event.
        """
        env = self.env
        queue = self._queue
        own = _OWN_EVENTS
        try:
            while not self.stopped:
                env._now, _, _, event = heappop(queue)
                if event.__class__ in own:  # one callback, never fails, never re-processed
                    event.callbacks[0](event)
                    continue
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    raise event._value
        except IndexError:
            if queue:
                raise
            raise simpy.core.EmptySchedule() from None

    def run_while(self, condition: Callable[[], bool]) -> None:
        """Process events while `condition()` holds (checked before each event; slow path)."""
        step = self.env.step
        while condition():
            step()
