"""End-to-end tests of the public API on the real single-node runtime (forked workers)."""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
def add(a, b=0):
    return a + b


@ray.remote
def fail(msg):
    raise ValueError(msg)


@ray.remote
def make_array(n):
    return np.arange(n, dtype=np.int64)


@ray.remote
def total(arr):
    return int(arr.sum()), bool(arr.flags.writeable)


@ray.remote
def sleep_then(t, value):
    time.sleep(t)
    return value


@ray.remote(num_returns=2)
def pair(x):
    return x, x * 2


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=256 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def test_tasks_and_kwargs(cluster) -> None:
    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get(add.remote("a", b="b")) == "ab"
    assert ray.get([add.remote(i, i) for i in range(20)]) == [2 * i for i in range(20)]


def test_object_ref_repr_hash_and_copy(cluster) -> None:
    import copy

    ref = ray.put(1)
    assert repr(ref).startswith("ObjectRef(") and len(ref.hex()) == 32
    assert {ref: 1}[ref] == 1 and ref == ref and copy.deepcopy(ref) is ref
    assert ray.get(add.remote([ref], [])) == [ref]  # nested refs travel as (oid, owner)


def test_object_refs_as_arguments_and_chains(cluster) -> None:
    ref = add.remote(1, 1)
    for _ in range(10):
        ref = add.remote(ref, 1)
    assert ray.get(ref) == 12
    assert ray.get(add.remote(ray.put(5), b=ray.put(6))) == 11
    a, b = pair.remote(21)
    assert ray.get([a, b]) == [21, 42]


def test_large_values_through_the_arena(cluster) -> None:
    ref = make_array.remote(2_000_000)
    arr = ray.get(ref)
    assert arr[-1] == 1_999_999 and not arr.flags.writeable
    assert ray.get(total.remote(ref)) == (sum(range(2_000_000)), False)
    big_arg = np.ones(300_000)
    assert ray.get(total.remote(big_arg))[0] == 300_000


def test_put_get_100mb_is_zero_copy_and_read_only(cluster) -> None:
    value = np.random.default_rng(1).random(100 * 1024 * 1024 // 8)
    ref = ray.put(value)
    out = ray.get(ref)
    np.testing.assert_array_equal(out, value)
    assert out.flags.writeable is False
    arena = np.frombuffer(cluster.arena.view(0, cluster.arena.capacity), dtype=np.uint8)
    assert np.shares_memory(out, arena)
    again = ray.get(ref)
    assert np.shares_memory(out, again)
    with pytest.raises(ValueError):
        out[0] = 1.0


def test_arena_freed_after_last_reference_and_value_die(cluster) -> None:
    _settle(cluster)  # earlier tests' releases
    used = cluster.arena.allocator.used_bytes
    ref = ray.put(np.zeros(1 << 20))
    arr = ray.get(ref)
    del ref
    _settle(cluster)
    assert cluster.arena.allocator.used_bytes > used  # the array still aliases it
    del arr
    _settle(cluster, lambda: cluster.arena.allocator.used_bytes == used)
    assert cluster.arena.allocator.used_bytes == used


def test_get_timeout(cluster) -> None:
    ref = sleep_then.remote(0.3, "late")
    with pytest.raises(ray.GetTimeoutError):
        ray.get(ref, timeout=0.05)
    with pytest.raises(TimeoutError):
        ray.get([ref, add.remote(1)], timeout=0.01)
    assert ray.get(ref, timeout=10) == "late"


def test_wait_num_returns_and_timeout(cluster) -> None:
    fast = [add.remote(i) for i in range(3)]
    slow = sleep_then.remote(0.3, None)
    ready, not_ready = ray.wait(fast + [slow], num_returns=3, timeout=10)
    assert ready == fast and not_ready == [slow]
    ready, not_ready = ray.wait([slow], num_returns=1, timeout=0.05)
    assert ready == [] and not_ready == [slow]
    ready, not_ready = ray.wait(fast, num_returns=2)
    assert ready == fast[:2] and not_ready == fast[2:]
    ray.get(slow)


def test_task_exception_is_reraised_with_remote_traceback(cluster) -> None:
    ref = fail.remote("bad input")
    with pytest.raises(ValueError, match="bad input") as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, ray.RayTaskError)
    assert "raise ValueError(msg)" in str(err) and "test_api.py" in str(err)
    with pytest.raises(ray.RayTaskError):  # dependents fail with the same error
        ray.get(add.remote(ref, 1))


def test_unpicklable_argument_is_rejected_at_remote_time(cluster) -> None:
    with pytest.raises(ray.UnserializableArgumentError, match="argument 'b' of add"):
        add.remote(1, b=threading.Lock())
    with pytest.raises(ray.UnserializableArgumentError, match="argument 0 of add"):
        add.remote(threading.Lock())


def test_options_and_infeasible_request(cluster) -> None:
    assert ray.get(add.options(num_cpus=2).remote(1, 1)) == 2
    with pytest.raises(ray.TaskUnschedulableError, match="CPU"):
        ray.get(add.options(num_cpus=64).remote(1), timeout=10)
    with pytest.raises(TypeError):
        add(1, 2)


def test_worker_crash_is_retried_then_reported(cluster) -> None:
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(ray.WorkerCrashedError):
        ray.get(die.remote(), timeout=10)
    with pytest.raises(ray.WorkerCrashedError):
        ray.get(die.options(max_retries=2).remote(), timeout=10)  # 3 workers die
    # the zygote replaced every dead worker: the pool is back to two
    assert ray.get([sleep_then.remote(0.05, i) for i in range(4)], timeout=10) == [0, 1, 2, 3]
    assert sum(w.alive for w in cluster.pool.workers) == 2


def test_shutdown_and_reinit_leave_nothing_behind() -> None:
    ray.shutdown()  # the module cluster may be up; restart twice from scratch
    before = set(os.listdir("/dev/shm"))
    for _ in range(2):
        ray.init(num_cpus=1, object_store_memory=64 << 20)
        assert ray.is_initialized()
        node = _current_node()
        pids = [w.pid for w in node.pool.workers] + [node.pool.zygote_pid]
        assert ray.get(add.remote(2, 3)) == 5
        ray.shutdown()
        assert not ray.is_initialized()
        for pid in pids:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    assert set(os.listdir("/dev/shm")) <= before
    with pytest.raises(ray.RayError):
        ray.get(ray.ObjectRef(1, None))


def _settle(node, done=None, timeout: float = 5.0) -> None:
    """Let the event loop apply queued releases (wake it, then poll until `done()`)."""
    if done is None:

        def done():
            return not node._ops and not node.objects.unpins

    deadline = time.monotonic() + timeout
    gc.collect()
    while time.monotonic() < deadline:
        node._wake_pending = False
        node._wake()
        time.sleep(0.02)
        if done():
            return


def test_workers_die_with_a_killed_driver(tmp_path) -> None:
    import signal
    import subprocess
    import sys

    script = (
        "import os, sys, time, runtime as ray\n"
        "ray.init(num_cpus=2, object_store_memory=32 << 20)\n"
        "node = ray.api._current_node()\n"
        "deadline = time.monotonic() + 60\n"
        "while len(node.pool.workers) < 2 and time.monotonic() < deadline:\n"  # the zygote forks them
        "    time.sleep(0.01)\n"
        "print(' '.join(str(w.pid) for w in node.pool.workers), node.pool.zygote_pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.02)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
