"""Spilling on the real node: more than the store holds comes back equal, and nothing stays on disk."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import runtime as ray
from runtime.api import _current_node

MB = 1 << 20


@ray.remote
def checksum(arr):
    return int(arr.sum()), arr.shape[0]


@ray.remote
def make(n, seed):
    return np.full(n, seed, dtype=np.uint8)


@ray.remote
def checksum_all(arrs):
    return [int(a.sum()) for a in arrs]


@pytest.fixture
def spill_node(tmp_path):
    ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=16 * MB, spill_dir=str(tmp_path))
    node = _current_node()
    yield node
    fd = node.spill.fd
    ray.shutdown()
    assert node.spill.fd == -1
    if fd >= 0:
        with pytest.raises(OSError):
            os.fstat(fd)
    assert os.listdir(tmp_path) == []  # the spill file never had a name


def test_put_more_than_the_store_holds_and_get_everything_back(spill_node, tmp_path) -> None:
    arrays = [np.full(3 * MB, i, dtype=np.uint8) for i in range(12)]  # 36 MiB into 16
    refs = [ray.put(a) for a in arrays]
    node = spill_node
    assert node.spilled, "some objects must have been spilled"
    assert node.raylet.store.spills >= len(node.spilled)
    assert node.raylet.store.used <= node.raylet.store.capacity
    assert os.listdir(tmp_path) == []
    for a, r in zip(arrays, refs):
        assert np.array_equal(ray.get(r), a)
    del refs
    gc.collect()
    ray.get(checksum.remote(np.zeros(10, dtype=np.uint8)))  # the loop handled the releases
    assert node.spilled == {} and node.spill.bytes == 0
    assert node.raylet.store.spilled_bytes == 0


def test_a_spilled_argument_is_restored_before_the_task_runs(spill_node) -> None:
    node = spill_node
    first = ray.put(np.full(4 * MB, 7, dtype=np.uint8))
    others = [ray.put(np.full(4 * MB, i, dtype=np.uint8)) for i in range(5)]
    assert first._oid in node.spilled
    assert ray.get(checksum.remote(first)) == (7 * 4 * MB, 4 * MB)
    assert node.raylet.store.restores >= 1
    assert first._oid in node.arena_objects  # back in the arena
    del others


def test_task_outputs_spill_and_come_back(spill_node) -> None:
    refs = [make.remote(3 * MB, i) for i in range(10)]
    values = ray.get(refs)
    assert [int(v[0]) for v in values] == list(range(10))
    del values
    assert spill_node.raylet.store.spills > 0
    assert ray.get(checksum_all.remote([ray.get(r) for r in refs[:2]])) == [0, 3 * MB]


def test_with_spilling_off_a_full_store_raises(tmp_path) -> None:
    ray.shutdown()
    ray.init(num_cpus=1, object_store_memory=8 * MB, object_spilling=False, spill_dir=str(tmp_path))
    try:
        keep = [ray.put(np.zeros(3 * MB, dtype=np.uint8)) for _ in range(2)]
        with pytest.raises(ray.ObjectStoreFullError):
            ray.put(np.zeros(3 * MB, dtype=np.uint8))
        assert _current_node().spilled == {}
        del keep
    finally:
        ray.shutdown()


def test_a_killed_driver_leaves_no_spill_file(tmp_path) -> None:
    script = (
        "import os, signal, sys, numpy as np, runtime as ray\n"
        f"ray.init(num_cpus=1, object_store_memory=8 << 20, spill_dir={str(tmp_path)!r})\n"
        "refs = [ray.put(np.ones(3 << 20, dtype=np.uint8)) for _ in range(6)]\n"
        "from runtime.api import _current_node\n"
        "node = _current_node()\n"
        "assert node.spilled, 'nothing spilled'\n"
        "print(node._zygote_pid, *[w.pid for w in node.workers], flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert os.listdir(tmp_path) == []
    pids = [int(x) for x in proc.stdout.split()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_dropped_objects_make_room_before_anything_is_spilled(spill_node) -> None:
    array = np.ones(5 * MB, dtype=np.uint8)  # three fit in the 16 MiB store
    for _ in range(20):
        ref = ray.put(array)
        value = ray.get(ref)
        assert value[-1] == 1
        del value, ref  # the frees are still queued for the loop when the next put runs
    assert spill_node.raylet.store.spills == 0


@ray.remote
def first_byte(arr):
    return int(arr[0])


@ray.remote
def first_bytes(a, b):
    return int(a[0]), int(b[0])


def test_many_tasks_on_spilled_arguments_wait_for_room(tmp_path) -> None:
    # 20 spilled 20 MiB objects, a 64 MiB store, 20 tasks at once: at most three arguments
    # fit in memory together, so restores must wait for room (they used to fail 13 of 20)
    ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=64 * MB, spill_dir=str(tmp_path))
    try:
        refs = [ray.put(np.full(20 * MB, i, dtype=np.uint8)) for i in range(20)]
        assert len(_current_node().spilled) >= 15
        assert ray.get([first_byte.remote(r) for r in refs], timeout=300) == list(range(20))
        # two spilled arguments that can never be in memory together fail clearly
        big = [ray.put(np.full(40 * MB, i, dtype=np.uint8)) for i in range(2)]
        with pytest.raises(ray.ObjectStoreFullError, match="can never fit"):
            ray.get(first_bytes.remote(*big), timeout=300)
        assert ray.get(first_bytes.remote(refs[3], refs[4]), timeout=300) == (3, 4)
    finally:
        ray.shutdown()


@ray.remote
class Summer:
    def total(self, arr):
        return int(arr.sum()), arr.shape[0]


def test_a_spilled_argument_of_an_actor_call_is_restored_by_the_raylet(spill_node) -> None:
    node = spill_node
    actor = Summer.remote()
    assert ray.get(actor.total.remote(np.ones(4, dtype=np.uint8))) == (4, 4)
    first = ray.put(np.full(4 * MB, 5, dtype=np.uint8))
    others = [ray.put(np.full(4 * MB, i, dtype=np.uint8)) for i in range(5)]
    assert first._oid in node.spilled
    restores = node.raylet.store.restores
    assert ray.get(actor.total.remote(first)) == (5 * 4 * MB, 4 * MB)
    assert node.raylet.store.restores > restores  # the raylet restored it, not the host
    assert first._oid in node.arena_objects  # back in the arena, read from there
    del others
