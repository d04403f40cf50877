"""Tests of the worker loop in a forked process, driven over a socketpair like the runtime does."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from runtime.exceptions import ObjectStoreFullError, RayTaskError
from runtime.real import protocol as p
from runtime.real.arena import Arena
from runtime.real.serialization import deserialize_from_arena, dumps, dumps_function, loads
from runtime.real.transport import Connection
from runtime.real.worker import fork_worker


def add(a, b=0):
    return a + b


def boom(msg):
    raise ValueError(msg)


def big_array(n):
    return np.arange(n, dtype=np.uint8)


def array_sum(arr):
    return int(arr.sum()), arr.flags.writeable


def pair():
    return 1, "two"


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("nope")


def raise_unpicklable():
    raise Unpicklable("custom message")


def nap(seconds):
    time.sleep(seconds)
    return seconds


FUNCTIONS = {
    1: add,
    2: boom,
    3: big_array,
    4: array_sum,
    5: pair,
    6: raise_unpicklable,
    7: nap,
}


class FakeDriver:
    """Just enough driver: owns the allocator, answers ALLOC_REQUEST, collects results."""

    def __init__(self, arena: Arena, conn: Connection) -> None:
        self.arena, self.conn = arena, conn
        self.results: dict = {}
        self.spans: dict = {}
        """task id -> (start, end) of its body, as the worker measured it."""
        self.allocations: dict = {}

    def run_until(self, task_ids: set) -> None:
        while not task_ids <= self.results.keys():
            replies = []
            for msg in self.conn.recv_many():
                if msg[0] == p.ALLOC_REQUEST:
                    _, task_id, nbytes = msg
                    try:
                        off = self.arena.allocate(nbytes)
                        self.allocations[task_id] = off
                    except ObjectStoreFullError:
                        off = -1
                    replies.append(p.alloc_reply(off))
                else:
                    assert msg[0] == p.TASK_RESULT
                    self.results[msg[1]] = msg[2:4]
                    self.spans[msg[1]] = msg[4:6]
            if replies:
                self.conn.send_many(replies)

    def value(self, task_id, index: int = 0):
        ok, payload = self.results[task_id]
        if not ok:
            raise p.decode_error(payload)
        enc = payload[index]
        if enc[0] == p.VALUE_INLINE:
            return loads(enc[1])
        return deserialize_from_arena(self.arena, enc[1], enc[2])


def inline(value) -> tuple:
    return (p.VALUE_INLINE, dumps(value))


@pytest.fixture
def worker():
    arena = Arena(64 << 20, prefault_bytes=0)
    pid, conn = fork_worker(arena, worker_id=0)
    driver = FakeDriver(arena, conn)
    conn.send_many([p.register_function(i, dumps_function(f)) for i, f in FUNCTIONS.items()])
    yield driver, pid
    if not conn.closed:
        try:
            conn.send_many([p.shutdown()])
        except OSError:
            pass
        conn.close()
    _reap(pid)
    arena.close()


def _reap(pid: int) -> int:
    """Wait for `pid` (killing it after 10 s); 0 if it was already reaped."""
    try:
        return _wait(pid)
    except ChildProcessError:
        return 0


def _wait(pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def test_tasks_errors_and_large_results(worker) -> None:
    driver, pid = worker
    conn = driver.conn
    conn.send_many(
        [
            p.execute_task("t1", 1, (inline(2), inline(3)), {}),
            p.execute_task("t2", 1, (inline("a"),), {"b": inline("b")}),
            p.execute_task("t3", 2, (inline("bad value"),), {}),
            p.execute_task("t4", 3, (inline(20_000_000),), {}),
            p.execute_task("t5", 5, (), {}, n_returns=2),
            p.execute_task("t6", 6, (), {}),
            p.execute_task("t7", 99, (), {}),
        ]
    )
    driver.run_until({"t1", "t2", "t3", "t4", "t5", "t6", "t7"})
    assert driver.value("t1") == 5
    assert driver.value("t2") == "ab"

    with pytest.raises(ValueError, match="bad value") as info:
        driver.value("t3")
    err = info.value
    assert isinstance(err, RayTaskError)
    assert "in boom" in str(err) and "raise ValueError(msg)" in str(err)
    assert "_execute" not in err.traceback_str

    arr = driver.value("t4")
    assert driver.results["t4"][1][0][0] == p.VALUE_ARENA
    assert "t4" in driver.allocations
    assert arr.shape == (20_000_000,) and arr.flags.writeable is False
    assert arr[255] == 255 and arr[256] == 0
    assert driver.value("t5", 0) == 1 and driver.value("t5", 1) == "two"

    with pytest.raises(RayTaskError, match="Unpicklable raised") as info:
        driver.value("t6")
    assert "custom message" in str(info.value)
    with pytest.raises(KeyError):
        driver.value("t7")


def test_each_result_carries_the_span_of_its_body(worker) -> None:
    # the worker times its bodies: queued ones, a failing one and one with an arena result
    driver, _ = worker
    ids = ["n1", "n2", "bad", "big", "n3"]
    sent = time.monotonic()
    driver.conn.send_many(
        [
            p.execute_task("n1", 7, (inline(0.02),), {}),
            p.execute_task("n2", 7, (inline(0.02),), {}),
            p.execute_task("bad", 2, (inline("x"),), {}),
            p.execute_task("big", 3, (inline(2_000_000),), {}),
            p.execute_task("n3", 7, (inline(0.02),), {}),
        ]
    )
    driver.run_until(set(ids))
    received = time.monotonic()
    spans = [driver.spans[t] for t in ids]
    for t, (start, end) in zip(ids, spans, strict=True):
        assert type(start) is float and type(end) is float, t
        assert sent <= start <= end <= received, (t, sent, start, end, received)
    for t in ("n1", "n2", "n3"):
        start, end = driver.spans[t]
        assert end - start >= 0.02, (t, end - start)  # covers the whole 20 ms sleep
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end  # one body at a time, in order


def test_arena_argument_is_read_zero_copy(worker) -> None:
    driver, _ = worker
    from runtime.real.serialization import serialize, write_to_arena

    arr = np.ones(1 << 20, dtype=np.uint8)
    obj = serialize(arr)
    off = driver.arena.allocate(obj.total_size)
    write_to_arena(driver.arena, off, obj)
    driver.conn.send_many([p.execute_task("s", 4, ((p.VALUE_ARENA, off, obj.total_size),), {})])
    driver.run_until({"s"})
    assert driver.value("s") == (1 << 20, False)


def test_store_full_is_reported_as_task_error(worker) -> None:
    driver, _ = worker
    hog = driver.arena.allocate(driver.arena.capacity - 1024)
    driver.conn.send_many([p.execute_task("f", 3, (inline(1 << 20),), {})])
    driver.run_until({"f"})
    driver.arena.free(hog)
    with pytest.raises(ObjectStoreFullError):
        driver.value("f")


def test_worker_exits_on_shutdown(worker) -> None:
    driver, pid = worker
    driver.conn.send_many([p.execute_task("x", 1, (inline(1),), {}), p.shutdown()])
    driver.run_until({"x"})
    status = _wait(pid)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    driver.conn.close()


def test_worker_exits_on_driver_eof(worker) -> None:
    driver, pid = worker
    driver.conn.close()
    status = _wait(pid)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_task_error_types_and_pickling() -> None:
    import pickle

    from runtime.exceptions import GetTimeoutError, RayError, TwinrayError

    err = RayTaskError("f", "Traceback: ...\nOSError: gone", FileNotFoundError(2, "gone"))
    combined = err.as_instanceof_cause()
    assert isinstance(combined, FileNotFoundError) and isinstance(combined, RayTaskError)
    assert combined.errno == 2 and combined.cause_type_name == "FileNotFoundError"
    assert "OSError: gone" in str(combined)
    back = pickle.loads(pickle.dumps(combined))
    assert isinstance(back, RayTaskError) and back.traceback_str == err.traceback_str
    assert issubclass(GetTimeoutError, TimeoutError) and TwinrayError is RayError
    no_cause = RayTaskError("g", "tb", None, "Weird")
    assert no_cause.as_instanceof_cause() is no_cause and "Weird raised in task g()" in str(
        no_cause
    )
