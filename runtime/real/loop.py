"""Loop, a part of the node: its event loop, run by its own thread or, while a program thread waits, by that thread.

Everything that touches core objects, worker sockets or the I/O selector runs in a *step*
(`_step`) under one lock, ``core_lock``. Three kinds of thread take steps:

* the loop thread, which sleeps in an outer epoll on the wakeup socket and on the I/O
  selector's own epoll descriptor, then takes a step;
* a program thread submitting work (`kick`): if nobody holds the lock it runs the queued
  operations itself and writes to the worker at once, so no wakeup of the loop thread is
  needed;
* a program thread blocked in ``get``/``wait`` (`drive`): it takes the I/O selector out of
  the loop thread's outer epoll and sleeps on it itself, so a worker's reply wakes the very
  thread that wants it. A sync call is then two wakeups (program -> worker -> program)
  instead of four (program -> loop -> worker -> loop -> program).

Only one thread drives at a time; other waiters sleep on their futures as before. When the
loop thread takes a step that did something while a thread drives, it pokes the driver
through a socketpair registered in the I/O selector, because that step may have resolved
what the driver waits for.

Ctrl-C: signal handlers run in the main thread between bytecodes, so a KeyboardInterrupt
could land in the middle of a core handler and leave the control plane half-updated. The
node installs a SIGINT wrapper (when created in the main thread) that defers the signal
while the main thread is inside a step and delivers it right after; while the main thread
sleeps it is delivered at once.
"""

from __future__ import annotations

import _thread
import heapq
import itertools
import select
import selectors
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from runtime.core.messages import TimerFired
from runtime.exceptions import RayError
from runtime.real.futures import ERR_SHUTDOWN, Future

__all__ = ["Loop"]

_INF = float("inf")


class Loop:
    """The event loop of a `Node`: steps, the loop thread, driving from `get`, SIGINT shield.

    It owns the program threads' operation queue (`ops`) and its wakeup socket, the timer
    heap, the I/O selector, the core lock and the node's run state (`stopping`, `closed`,
    `error`); a step handles I/O events, due timers (delivered to `components`), unpins of
    the object table, queued ops, then runs the queued commands (`execute`) and flushes
    the worker pool (connected with `connect`: it registers its sockets in `sel`).
    """

    def __init__(
        self,
        *,
        objects: Any,
        components: dict[int, Any],
        out: list[Any],
        execute: Callable[[float], None],
    ) -> None:
        self.objects = objects
        self.components = components
        """Address -> in-process component: a due timer is handed to its component."""
        self.out = out
        """The core's command list (run by `execute` at the end of a step)."""
        self.execute = execute
        self.pool: Any = None
        """The worker pool (see `connect`): a step ends by flushing its outboxes."""
        self.ops: deque[tuple[Callable[[Any, float], None], Any]] = deque()
        """Operations queued by program threads, run in order by the next step."""
        self.timers: list[tuple[float, int, int, str]] = []
        """Timer heap: (due, sequence, address, key), due in seconds since `t0`."""
        self.timer_seq = itertools.count()
        self.t0 = time.monotonic()
        """The loop clock's origin: `now` is seconds since it."""
        self.wake_pending = False
        """A wakeup byte is on its way to the loop thread (one write per burst of ops)."""
        self.stopping = False
        self.closed = False
        self.error: BaseException | None = None
        """Why the loop crashed (None while it runs)."""
        self.wake_r, self.wake_w = _nonblocking_socketpair()
        self.sel = selectors.EpollSelector()  # worker I/O; the loop sleeps on its fd
        self.core_lock = _thread.allocate_lock()
        self.thread: threading.Thread | None = None

    def connect(self, pool: Any) -> None:
        """The worker pool whose outboxes each step flushes (made after the selector)."""
        self.pool = pool

    def prepare(self) -> None:
        """Create the selectors and the sockets the loop sleeps on; shield SIGINT (before start)."""
        self.main_ident = threading.main_thread().ident
        self.main_in_core = False
        """The main thread holds (or is about to take) the core lock: SIGINT waits."""
        self.driver = 0
        """Ident of the program thread driving the loop from get/wait (0 when none)."""
        self.wake_at = 0.0
        """When the sleeping loop thread will wake on its own (seconds since `t0`)."""
        self._sigint_original: Any = None
        self._sigint_deferred: tuple[int, Any] | None = None
        self._io_fd = self.sel.fileno()
        self._outer = select.epoll()
        self._outer.register(self.wake_r.fileno(), select.EPOLLIN)
        self._outer.register(self._io_fd, select.EPOLLIN)
        self._drv_r, self._drv_w = _nonblocking_socketpair()
        self.sel.register(self._drv_r, selectors.EVENT_READ, (self._on_poke, None))
        self._sel_gen = 0
        """Bumped when an fd leaves the I/O selector: events read before are then stale."""
        self._install_sigint_shield()

    def start(self) -> None:
        """Start the loop thread."""
        self.thread = threading.Thread(target=self.run, name="twinray-node", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        """Wake the loop thread to run the queued ops (one write until it drains)."""
        if not self.wake_pending:
            self.wake_pending = True
            try:
                self.wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def check_open(self) -> None:
        """Raise `RayError` if the node is shut down or its loop crashed."""
        if self.closed:
            raise RayError("the twinray node is shut down; call init() first")
        if self.error is not None:
            raise RayError(f"the twinray event loop crashed: {self.error!r}")

    def is_closed(self) -> bool:
        """True once the node is shut down."""
        return self.closed

    def stopped(self) -> bool:
        """True once the node is closed or stopping, or its loop failed."""
        return self.closed or self.stopping or self.error is not None

    def stop(self, op_stop: Callable[[Any, float], None]) -> bool:
        """Queue `op_stop`, wake the loop thread, join it and take the core lock.

        Returns whether the lock was taken (a thread driving the loop lets go of it); the
        caller closes the rest and releases it, then calls `close_after`.
        """
        self.ops.append((op_stop, None))
        self.wake_pending = False
        self.wake()
        if self.thread is not None:
            self.thread.join(timeout=10)
        return self.core_lock.acquire(True, 10)

    def close(self) -> None:
        """Close the selectors and the wakeup sockets (the loop thread stopped; lock held)."""
        self.sel.close()
        self._outer.close()
        self.wake_r.close()
        self.wake_w.close()

    def close_after(self) -> None:
        """After shutdown released the core lock: let a driving thread leave, then close."""
        self.poke_driver()
        deadline = time.monotonic() + 5.0
        while self.driver and time.monotonic() < deadline:
            time.sleep(0.001)
        self._drv_r.close()
        self._drv_w.close()
        self._remove_sigint_shield()

    # -- one step ------------------------------------------------------------------------------

    def step(self, events: Any, now: float) -> bool:
        """Handle I/O `events`, due timers, unpins and queued ops; run and flush the commands.

        Called with ``core_lock`` held. Returns whether anything was handled.
        """
        busy = False
        for key, mask in events:
            handler, arg = key.data
            handler(arg, mask, now)
            busy = True
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, addr, key = heapq.heappop(timers)
            self.components[addr].handle(TimerFired(key), now, self.out)
            busy = True
        if self.objects.unpins:
            with self.objects.lock:
                self.objects.apply_unpins_locked()
        ops = self.ops
        if ops:
            busy = True
            while ops:
                fn, arg = ops.popleft()
                fn(arg, now)
        if self.out:
            self.execute(now)
        pool = self.pool
        if pool.idle and busy:
            pool.steal_prefetched(now)
            if self.out:
                self.execute(now)
        if pool.dirty:
            pool.flush()
        return busy

    # -- the loop thread -------------------------------------------------------------------

    def run(self) -> None:
        """The loop thread: sleep on the wakeup socket, the I/O selector and timers; step."""
        outer, core, ops, timers = self._outer, self.core_lock, self.ops, self.timers
        sel, wake_fd = self.sel, self.wake_r.fileno()
        clock, t0 = time.monotonic, self.t0
        timeout = 0.0
        try:
            while True:
                ready = outer.poll(timeout)
                with core:
                    if self.stopping:
                        return
                    for fd, _ in ready:
                        if fd == wake_fd:
                            self._drain_wake()
                    driving = self.driver
                    events = sel.select(0) if not driving else ()
                    now = clock() - t0
                    if self.step(events, now) and driving:
                        self.poke_driver()
                    if self.stopping:
                        return
                    if ops or self.objects.unpins:
                        timeout, self.wake_at = 0.0, now
                    elif timers:
                        at = timers[0][0]
                        timeout, self.wake_at = max(0.0, at - now), at
                    else:
                        timeout, self.wake_at = -1, _INF
        except BaseException as exc:  # keep user threads from hanging on a dead loop
            self.crashed(exc)

    def _drain_wake(self) -> None:
        # Drain first, then clear the flag: clearing first let a user thread set it and
        # send a byte that this drain swallowed, leaving the flag stuck (no more wakeups;
        # the loop then only woke on timers, ~100 ms per sync call).
        _drain(self.wake_r)
        self.wake_pending = False

    def _on_poke(self, _: Any, mask: int, now: float) -> None:
        _drain(self._drv_r)

    def unregister_io(self, fileobj: Any) -> None:
        """Take `fileobj` out of the I/O selector (core lock held)."""
        self.sel.unregister(fileobj)
        self._sel_gen += 1

    def poke_driver(self) -> None:
        """Wake the program thread driving the loop (a step elsewhere may have resolved its wait)."""
        try:
            self._drv_w.send(b"\0")
        except OSError:
            pass

    def crashed(self, exc: BaseException) -> None:
        """The loop failed: record why and fail every pending object (no waiter hangs)."""
        self.error = exc
        traceback.print_exc()
        self.objects.fail_all_pending(ERR_SHUTDOWN, f"event loop crashed: {exc!r}")

    # -- program threads taking steps --------------------------------------------------------

    def kick(self) -> None:
        """Get queued ops handled: run them on this thread if the loop is free, else wake it."""
        me = _thread.get_ident()
        main = me == self.main_ident
        if main:
            self.main_in_core = True  # before acquiring: a Ctrl-C from here on waits
        core = self.core_lock
        if not core.acquire(False):
            if main:
                self.main_in_core = False
            self.wake()
        elif self.stopping:
            core.release()
            if main:
                self.main_in_core = False
            self.wake()
        else:
            try:
                if self.step((), time.monotonic() - self.t0):
                    driver = self.driver
                    if driver and driver != me:
                        self.poke_driver()
                self._after_guest_step()
            except BaseException as exc:
                self.crashed(exc)
            finally:
                core.release()
                if main:
                    self.main_in_core = False
        if self._sigint_deferred is not None:
            self._deliver_sigint()

    def drive(self, fut: Future, deadline: float | None) -> None:
        """Run the loop on this thread until `fut` is done or `deadline` (monotonic) passes.

        Returns at once if another thread drives; the caller then waits on `fut` as usual
        (and always checks `fut` itself afterwards).
        """
        if self.driver:
            return
        me = _thread.get_ident()
        main = me == self.main_ident
        core = self.core_lock
        if main:
            self.main_in_core = True
        try:
            core.acquire()
        except BaseException:
            if main:
                self.main_in_core = False
            raise
        if self.driver or self.stopping or self.closed:
            core.release()
            if main:
                self.main_in_core = False
            return
        self.driver = me
        self._outer.unregister(self._io_fd)
        sel, t0 = self.sel, self.t0
        clock = time.monotonic
        limit = _INF if deadline is None else deadline - t0
        try:
            events = sel.select(0)
            while True:
                now = clock() - t0
                try:
                    self.step(events, now)
                except BaseException as exc:
                    self.crashed(exc)
                    return
                if fut.needed <= 0 or self.stopping or now >= limit:
                    return
                self._after_guest_step()  # timers stay the loop thread's to wait for
                gen = self._sel_gen
                core.release()
                if main:
                    self.main_in_core = False
                try:
                    if self._sigint_deferred is not None:
                        self._deliver_sigint()
                    # Only the driver reads worker I/O, so it may wait on the selector
                    # without the lock; a step elsewhere meanwhile may only add fds or
                    # drop them (then the events are re-read under the lock).
                    events = sel.select(None if limit == _INF else max(0.0, limit - now))
                finally:
                    if main:
                        self.main_in_core = True
                    core.acquire()
                if self.closed:
                    return
                if self._sel_gen != gen:
                    events = sel.select(0)
        finally:
            self.driver = 0
            if not self.closed:
                self._outer.register(self._io_fd, select.EPOLLIN)
                self._after_guest_step()
            core.release()
            if main:
                self.main_in_core = False
            if self._sigint_deferred is not None:
                self._deliver_sigint()

    def _after_guest_step(self) -> None:
        """Wake the sleeping loop thread if a step on another thread set an earlier timer."""
        timers = self.timers
        if timers and timers[0][0] < self.wake_at:
            self.wake()

    # -- SIGINT shield -----------------------------------------------------------------------

    def _install_sigint_shield(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        original = signal.getsignal(signal.SIGINT)
        if not callable(original):
            return

        def shield(signum: int, frame: Any) -> None:
            if self.main_in_core:
                self._sigint_deferred = (signum, frame)
                return
            original(signum, frame)

        signal.signal(signal.SIGINT, shield)
        self._sigint_original = original
        self._sigint_shield = shield

    def _remove_sigint_shield(self) -> None:
        original, self._sigint_original = self._sigint_original, None
        if original is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is self._sigint_shield:
            signal.signal(signal.SIGINT, original)

    def _deliver_sigint(self) -> None:
        """Run the SIGINT handler deferred during a step (raises KeyboardInterrupt by default)."""
        deferred, self._sigint_deferred = self._sigint_deferred, None
        original = self._sigint_original
        if deferred is not None and original is not None:
            original(*deferred)


def _drain(sock: Any) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass


def _nonblocking_socketpair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b
