"""`WorkerPool` driven directly: real worker processes from a zygote, a stand-in raylet, no node."""

from __future__ import annotations

import os
import selectors
import time
from typing import Any

import pytest

from runtime.core.messages import TaskFinished
from runtime.core.task import ERR_APPLICATION, ERR_WORKER_DIED, TaskSpec
from runtime.real import protocol as p
from runtime.real.arena import Arena
from runtime.real.claims import Claims
from runtime.real.objects import ObjectTable
from runtime.real.pool import WorkerPool
from runtime.real.serialization import dumps, dumps_function, loads
from runtime.real.spill import SpillFile
from runtime.real.worker import CANCEL_SLOTS
from runtime.real.zygote import start_zygote

TIMEOUT = 60.0


class StandInRaylet:
    """Records what the pool tells the raylet; nothing is blocked."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.blocked: set[int] = set()

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.events.append(msg)


class Harness:
    """A pool with the smallest world around it: an arena, a selector, a stand-in raylet."""

    def __init__(self, size: int) -> None:
        self.arena = Arena(16 << 20, prefault_bytes=0)
        self.arena.control = self.arena.allocate(CANCEL_SLOTS * 8)
        self.claims = self.arena.claims = Claims(self.arena, CANCEL_SLOTS)
        self.raylet = StandInRaylet()
        self.sel = selectors.EpollSelector()
        self.spill = SpillFile(None)
        self.objects = ObjectTable(self.arena, self.spill)
        self.handlers: dict[int, Any] = {}
        self.pool = WorkerPool(
            size,
            start_zygote(self.arena, 100_000),
            raylet=self.raylet,
            out=[],
            claims=self.claims,
            arena=self.arena,
            objects=self.objects,
            allocate=self._allocate,
            selector=self.sel,
            unregister_io=self.sel.unregister,
            handlers=self.handlers,
        )
        self.dropped: list[int] = []
        self.pool.connect_owners(lambda w, now: self.dropped.append(w.worker_id))
        self.pool.connect_actors(
            actor_worker_died=_unexpected,
            actor_task_done=_unexpected,
            adopt_actor_worker=_unexpected,
            actor_spawn_failed=_unexpected,
        )
        self.fn_ids = iter(range(1, 1000))
        self.task_ids = iter(range(1 << 8, 1 << 20, 1 << 8))

    def _allocate(self, nbytes: int, now: float) -> int:
        return self.objects.allocate_now(nbytes)  # ObjectStoreFullError when full

    def step_until(self, done: Any) -> None:
        """Run the pool's I/O until `done()` (the test fails after TIMEOUT s)."""
        deadline = time.monotonic() + TIMEOUT
        while not done():
            assert time.monotonic() < deadline, "the pool did not get there in time"
            for key, mask in self.sel.select(0.05):
                handler, arg = key.data
                handler(arg, mask, time.monotonic())
            if self.pool.dirty:
                self.pool.flush()

    def spec(self, fn: Any, *args: Any) -> TaskSpec:
        fn_id = next(self.fn_ids)
        self.pool.functions[fn_id] = dumps_function(fn)
        wire = tuple((p.VALUE_INLINE, dumps(a)) for a in args)
        return TaskSpec(
            next(self.task_ids), 0, 0, function=fn_id, args=(wire, {}), name=fn.__name__
        )

    def finished(self) -> list[TaskFinished]:
        return [e for e in self.raylet.events if type(e) is TaskFinished]

    def close(self) -> None:
        self.pool.stopping = True
        self.pool.teardown()
        self.sel.close()
        self.arena.close()
        self.spill.close()


def _unexpected(*args: Any) -> None:
    raise AssertionError("no actor in these tests")


def _add(a, b):
    return a + b


def _exit_now():
    os._exit(3)


def _fail():
    raise ValueError("no")


@pytest.fixture
def harness():
    h = Harness(2)
    h.pool.start()
    try:
        h.step_until(lambda: len(h.pool.idle) == 2)
        yield h
    finally:
        h.close()


def test_the_pool_starts_its_workers_from_the_zygote(harness) -> None:
    pids = {w.pid for w in harness.pool.workers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert harness.pool.spawning == 0 and harness.pool.alive()


def test_a_dispatched_task_runs_and_its_result_reaches_the_raylet(harness) -> None:
    spec = harness.spec(_add, 2, 3)
    harness.pool.dispatch(spec, 0.0)
    harness.pool.flush()
    harness.step_until(lambda: harness.finished())
    (event,) = harness.finished()
    assert event.task_id == spec.task_id and event.error_kind is None
    assert loads(event.outputs[0][1]) == 5
    assert len(harness.pool.idle) == 2  # the worker came back
    (span,) = harness.pool.spans
    assert span[0] == "_add" and span[-1] == "ok"


def test_tasks_beyond_the_idle_workers_wait_in_the_backlog(harness) -> None:
    specs = [harness.spec(_add, i, 1) for i in range(5)]
    for spec in specs:
        harness.pool.dispatch(spec, 0.0)
    assert len(harness.pool.backlog) == 3 and not harness.pool.idle
    harness.pool.flush()
    harness.step_until(lambda: len(harness.finished()) == 5)
    got = {e.task_id: loads(e.outputs[0][1]) for e in harness.finished()}
    assert got == {s.task_id: i + 1 for i, s in enumerate(specs)}
    assert not harness.pool.backlog


def test_an_error_is_reported_as_an_application_error(harness) -> None:
    spec = harness.spec(_fail)
    harness.pool.dispatch(spec, 0.0)
    harness.pool.flush()
    harness.step_until(lambda: harness.finished())
    (event,) = harness.finished()
    assert event.error_kind == ERR_APPLICATION


def test_a_dead_worker_fails_its_task_and_is_replaced(harness) -> None:
    spec = harness.spec(_exit_now)
    harness.pool.dispatch(spec, 0.0)
    harness.pool.flush()
    harness.step_until(lambda: harness.finished())
    (event,) = harness.finished()
    assert event.error_kind == ERR_WORKER_DIED and "died while running _exit_now()" in event.error
    assert len(harness.dropped) == 1  # its references were dropped
    harness.step_until(lambda: len(harness.pool.idle) == 2)  # a replacement joined
    assert sum(w.alive for w in harness.pool.workers) == 2


def test_teardown_reaps_every_worker() -> None:
    h = Harness(1)
    h.pool.start()
    try:
        h.step_until(lambda: len(h.pool.idle) == 1)
        pid = h.pool.workers[0].pid
    finally:
        h.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
