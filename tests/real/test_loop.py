"""`Loop` driven directly: steps, timers, wakeups, the loop thread and its stop, no node."""

from __future__ import annotations

import heapq
import threading
from typing import Any

import pytest

from runtime.core.messages import TimerFired
from runtime.exceptions import RayError
from runtime.real.futures import Future
from runtime.real.loop import Loop


class StandIns:
    """The object table's unpins and the pool's flush, as a step sees them."""

    def __init__(self) -> None:
        self.unpins: list[int] = []
        self.lock = threading.Lock()
        self.idle: list[Any] = []
        self.dirty = False
        self.flushed = 0
        self.failed: list[str] = []

    def apply_unpins_locked(self) -> None:
        self.unpins.clear()

    def flush(self) -> None:
        self.flushed += 1
        self.dirty = False

    def fail_all_pending(self, kind: str, why: str) -> None:
        self.failed.append(kind)


class Timers:
    def __init__(self) -> None:
        self.fired: list[str] = []

    def handle(self, msg: TimerFired, now: float, out: list[Any]) -> None:
        self.fired.append(msg.key)
        out.append(msg.key)


@pytest.fixture
def loop():
    stand = StandIns()
    out: list[Any] = []
    executed: list[list[Any]] = []

    def execute(now: float) -> None:
        executed.append(list(out))
        out.clear()

    part = Loop(objects=stand, components={3: Timers()}, out=out, execute=execute)
    part.connect(stand)
    part.executed = executed  # type: ignore[attr-defined]
    yield part
    if not part.closed:
        if hasattr(part, "_outer"):  # prepared: the outer epoll and the driver's sockets too
            part._outer.close()
            part._drv_r.close()
            part._drv_w.close()
        part.sel.close()
        part.wake_r.close()
        part.wake_w.close()


def test_a_step_runs_due_timers_unpins_and_ops_in_order_then_the_commands(loop) -> None:
    seen: list[Any] = []
    loop.ops.extend([(lambda a, now: seen.append(a), 1), (lambda a, now: seen.append(a), 2)])
    heapq.heappush(loop.timers, (5.0, next(loop.timer_seq), 3, "late"))
    heapq.heappush(loop.timers, (1.0, next(loop.timer_seq), 3, "due"))
    loop.objects.unpins.append(64)
    loop.objects.dirty = True
    assert loop.step((), 2.0) is True
    assert seen == [1, 2] and not loop.ops and loop.objects.unpins == []
    assert loop.components[3].fired == ["due"] and loop.executed == [["due"]]
    assert [t[3] for t in loop.timers] == ["late"] and loop.objects.flushed == 1
    assert loop.step((), 3.0) is False  # nothing due, nothing queued


def test_wake_writes_once_until_drained(loop) -> None:
    loop.wake()
    loop.wake()
    assert loop.wake_pending and loop.wake_r.recv(16) == b"\0"
    loop.prepare()
    try:
        loop.wake_w.send(b"\0")
        loop._drain_wake()
        assert not loop.wake_pending
    finally:
        loop._remove_sigint_shield()


def test_check_open_and_stopped_follow_the_run_state(loop) -> None:
    loop.check_open()
    assert not loop.stopped() and not loop.is_closed()
    loop.error = ValueError("boom")
    with pytest.raises(RayError, match="event loop crashed"):
        loop.check_open()
    assert loop.stopped()
    loop.error = None
    loop.closed = True
    with pytest.raises(RayError, match="shut down"):
        loop.check_open()
    loop.closed = False


def test_the_thread_runs_queued_ops_and_stops(loop) -> None:
    loop.prepare()
    loop.start()
    done = Future(1)
    loop.ops.append((lambda _, now: done.hit(), None))
    loop.wake()
    assert done.wait(30)

    def op_stop(_: Any, now: float) -> None:
        loop.stopping = True

    held = loop.stop(op_stop)
    try:
        assert held and not loop.thread.is_alive()
        loop.closed = True
        loop.close()
    finally:
        loop.core_lock.release()
    loop.close_after()


def test_a_crash_fails_every_pending_object(loop, capsys) -> None:
    try:
        raise RuntimeError("in a step")
    except RuntimeError as exc:
        loop.crashed(exc)
    assert isinstance(loop.error, RuntimeError) and loop.objects.failed
