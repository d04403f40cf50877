"""The node's event loop, run by its own thread or, while a program thread waits, by that thread.

Everything that touches core objects, worker sockets or the I/O selector runs in a *step*
(`_step`) under one lock, ``_core_lock``. Three kinds of thread take steps:

* the loop thread, which sleeps in an outer epoll on the wakeup socket and on the I/O
  selector's own epoll descriptor, then takes a step;
* a program thread submitting work (`_kick`): if nobody holds the lock it runs the queued
  operations itself and writes to the worker at once, so no wakeup of the loop thread is
  needed;
* a program thread blocked in ``get``/``wait`` (`_drive`): it takes the I/O selector out of
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
import select
import selectors
import signal
import socket
import threading
import time
import traceback
from typing import Any

from runtime.core.messages import TimerFired
from runtime.real.futures import ERR_SHUTDOWN, Future

__all__ = ["LoopMixin"]

_INF = float("inf")


class LoopMixin:
    """The event loop of a `Node`: steps, the loop thread, driving from `get`, SIGINT shield."""

    def _init_loop(self) -> None:
        """Create the lock, the selectors and the sockets the loop sleeps on (before start)."""
        self._core_lock = _thread.allocate_lock()
        self._main_ident = threading.main_thread().ident
        self._main_in_core = False
        """The main thread holds (or is about to take) the core lock: SIGINT waits."""
        self._driver = 0
        """Ident of the program thread driving the loop from get/wait (0 when none)."""
        self._loop_wake_at = 0.0
        """When the sleeping loop thread will wake on its own (seconds since `_t0`)."""
        self._sigint_original: Any = None
        self._sigint_deferred: tuple[int, Any] | None = None
        self._io_fd = self._sel.fileno()
        self._outer = select.epoll()
        self._outer.register(self._wake_r.fileno(), select.EPOLLIN)
        self._outer.register(self._io_fd, select.EPOLLIN)
        self._drv_r, self._drv_w = _nonblocking_socketpair()
        self._sel.register(self._drv_r, selectors.EVENT_READ, (self._on_poke, None))
        self._sel_gen = 0
        """Bumped when an fd leaves the I/O selector: events read before are then stale."""
        self._install_sigint_shield()

    def _close_loop(self) -> None:
        """Close the outer epoll (the loop thread has stopped; core lock held)."""
        self._outer.close()

    def _close_loop_after(self) -> None:
        """After shutdown released the core lock: let a driving thread leave, then close."""
        self._poke_driver()
        deadline = time.monotonic() + 5.0
        while self._driver and time.monotonic() < deadline:
            time.sleep(0.001)
        self._drv_r.close()
        self._drv_w.close()
        self._remove_sigint_shield()

    # -- one step ------------------------------------------------------------------------------

    def _step(self, events: Any, now: float) -> bool:
        """Handle I/O `events`, due timers, unpins and queued ops; run and flush the commands.

        Called with ``_core_lock`` held. Returns whether anything was handled.
        """
        busy = False
        for key, mask in events:
            handler, arg = key.data
            handler(arg, mask, now)
            busy = True
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, addr, key = heapq.heappop(timers)
            self.components[addr].handle(TimerFired(key), now, self._out)
            busy = True
        if self.objects.unpins:
            with self.objects.lock:
                self.objects.apply_unpins_locked()
        ops = self._ops
        if ops:
            busy = True
            while ops:
                fn, arg = ops.popleft()
                fn(arg, now)
        if self._out:
            self._execute(now)
        pool = self.pool
        if pool.idle and busy:
            pool.steal_prefetched(now)
            if self._out:
                self._execute(now)
        if pool.dirty:
            pool.flush()
        return busy

    # -- the loop thread -------------------------------------------------------------------

    def _loop(self) -> None:
        outer, core, ops, timers = self._outer, self._core_lock, self._ops, self._timers
        sel, wake_fd = self._sel, self._wake_r.fileno()
        clock, t0 = time.monotonic, self._t0
        timeout = 0.0
        try:
            while True:
                ready = outer.poll(timeout)
                with core:
                    if self._stopping:
                        return
                    for fd, _ in ready:
                        if fd == wake_fd:
                            self._drain_wake()
                    driving = self._driver
                    events = sel.select(0) if not driving else ()
                    now = clock() - t0
                    if self._step(events, now) and driving:
                        self._poke_driver()
                    if self._stopping:
                        return
                    if ops or self.objects.unpins:
                        timeout, self._loop_wake_at = 0.0, now
                    elif timers:
                        at = timers[0][0]
                        timeout, self._loop_wake_at = max(0.0, at - now), at
                    else:
                        timeout, self._loop_wake_at = -1, _INF
        except BaseException as exc:  # keep user threads from hanging on a dead loop
            self._crashed(exc)

    def _drain_wake(self) -> None:
        # Drain first, then clear the flag: clearing first let a user thread set it and
        # send a byte that this drain swallowed, leaving the flag stuck (no more wakeups;
        # the loop then only woke on timers, ~100 ms per sync call).
        _drain(self._wake_r)
        self._wake_pending = False

    def _on_poke(self, _: Any, mask: int, now: float) -> None:
        _drain(self._drv_r)

    def _unregister_io(self, fileobj: Any) -> None:
        """Take `fileobj` out of the I/O selector (core lock held)."""
        self._sel.unregister(fileobj)
        self._sel_gen += 1

    def _poke_driver(self) -> None:
        try:
            self._drv_w.send(b"\0")
        except OSError:
            pass

    def _crashed(self, exc: BaseException) -> None:
        self.loop_error = exc
        traceback.print_exc()
        self.objects.fail_all_pending(ERR_SHUTDOWN, f"event loop crashed: {exc!r}")

    # -- program threads taking steps --------------------------------------------------------

    def _kick(self) -> None:
        """Get queued ops handled: run them on this thread if the loop is free, else wake it."""
        me = _thread.get_ident()
        main = me == self._main_ident
        if main:
            self._main_in_core = True  # before acquiring: a Ctrl-C from here on waits
        core = self._core_lock
        if not core.acquire(False):
            if main:
                self._main_in_core = False
            self._wake()
        elif self._stopping:
            core.release()
            if main:
                self._main_in_core = False
            self._wake()
        else:
            try:
                if self._step((), time.monotonic() - self._t0):
                    driver = self._driver
                    if driver and driver != me:
                        self._poke_driver()
                self._after_guest_step()
            except BaseException as exc:
                self._crashed(exc)
            finally:
                core.release()
                if main:
                    self._main_in_core = False
        if self._sigint_deferred is not None:
            self._deliver_sigint()

    def _drive(self, fut: Future, deadline: float | None) -> None:
        """Run the loop on this thread until `fut` is done or `deadline` (monotonic) passes.

        Returns at once if another thread drives; the caller then waits on `fut` as usual
        (and always checks `fut` itself afterwards).
        """
        if self._driver:
            return
        me = _thread.get_ident()
        main = me == self._main_ident
        core = self._core_lock
        if main:
            self._main_in_core = True
        try:
            core.acquire()
        except BaseException:
            if main:
                self._main_in_core = False
            raise
        if self._driver or self._stopping or self.closed:
            core.release()
            if main:
                self._main_in_core = False
            return
        self._driver = me
        self._outer.unregister(self._io_fd)
        sel, t0 = self._sel, self._t0
        clock = time.monotonic
        limit = _INF if deadline is None else deadline - t0
        try:
            events = sel.select(0)
            while True:
                now = clock() - t0
                try:
                    self._step(events, now)
                except BaseException as exc:
                    self._crashed(exc)
                    return
                if fut.needed <= 0 or self._stopping or now >= limit:
                    return
                self._after_guest_step()  # timers stay the loop thread's to wait for
                gen = self._sel_gen
                core.release()
                if main:
                    self._main_in_core = False
                try:
                    if self._sigint_deferred is not None:
                        self._deliver_sigint()
                    # Only the driver reads worker I/O, so it may wait on the selector
                    # without the lock; a step elsewhere meanwhile may only add fds or
                    # drop them (then the events are re-read under the lock).
                    events = sel.select(None if limit == _INF else max(0.0, limit - now))
                finally:
                    if main:
                        self._main_in_core = True
                    core.acquire()
                if self.closed:
                    return
                if self._sel_gen != gen:
                    events = sel.select(0)
        finally:
            self._driver = 0
            if not self.closed:
                self._outer.register(self._io_fd, select.EPOLLIN)
                self._after_guest_step()
            core.release()
            if main:
                self._main_in_core = False
            if self._sigint_deferred is not None:
                self._deliver_sigint()

    def _after_guest_step(self) -> None:
        """Wake the sleeping loop thread if a step on another thread set an earlier timer."""
        timers = self._timers
        if timers and timers[0][0] < self._loop_wake_at:
            self._wake()

    # -- SIGINT shield -----------------------------------------------------------------------

    def _install_sigint_shield(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        original = signal.getsignal(signal.SIGINT)
        if not callable(original):
            return

        def shield(signum: int, frame: Any) -> None:
            if self._main_in_core:
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
