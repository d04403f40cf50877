"""A streaming pipeline end to end: producer task -> bounded Queue -> ActorPool stage -> bounded Queue -> sink actor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import runtime as ray
from runtime.util import ActorPool
from runtime.util.queue import Queue

README = Path(__file__).resolve().parents[2] / "README.md"


@ray.remote
def produce(q, n):
    for i in range(n):
        q.put(i, timeout=120)  # waits while the queue is full: backpressure
    q.put(None, timeout=120)  # end of stream
    return n


@ray.remote
class Square:
    def apply(self, x):
        return x * x


@ray.remote
class Sink:
    def __init__(self):
        self.items = []

    def drain(self, q):
        while (x := q.get(timeout=120)) is not None:
            self.items.append(x)
        return self.items


def run_stage(source, pool, downstream) -> int:
    """The parallel stage: fan items from `source` out on `pool`, pass results on in order."""
    n = 0
    while (x := source.get(timeout=120)) is not None:
        pool.submit(lambda a, v: a.apply.remote(v), x)
        n += 1
        while not pool.has_free() and pool.has_next():
            downstream.put(pool.get_next(), timeout=120)
    while pool.has_next():
        downstream.put(pool.get_next(), timeout=120)
    downstream.put(None, timeout=120)
    return n


@ray.remote
class Stage:
    """The parallel stage as an actor of its own: it drives an ActorPool of workers."""

    def __init__(self, workers):
        self.pool = ActorPool(workers)

    def run(self, source, downstream):
        return run_stage(source, self.pool, downstream)


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def test_a_bounded_pipeline_streams_every_item_in_order(cluster) -> None:
    n = 60
    source, results = Queue(maxsize=2), Queue(maxsize=2)
    done = produce.remote(source, n)
    # nobody consumes yet: the producer fills the 2 slots and waits
    ready, _ = ray.wait([done], timeout=1.0)
    assert not ready
    assert source.qsize() <= 2
    sink = Sink.remote()
    collected = sink.drain.remote(results)
    pool = ActorPool([Square.remote(), Square.remote()])
    assert run_stage(source, pool, results) == n
    assert ray.get(done, timeout=120) == n
    assert ray.get(collected, timeout=120) == [x * x for x in range(n)]
    assert source.empty() and results.empty()
    source.shutdown()
    results.shutdown()


def test_every_stage_runs_in_the_cluster(cluster) -> None:
    n = 40
    source, results = Queue(maxsize=3), Queue(maxsize=3)
    stage = Stage.remote([Square.remote() for _ in range(3)])
    collected = Sink.remote().drain.remote(results)
    passed = stage.run.remote(source, results)
    done = produce.remote(source, n)
    assert ray.get([done, passed], timeout=120) == [n, n]
    assert ray.get(collected, timeout=120) == [x * x for x in range(n)]
    source.shutdown()
    results.shutdown()


def test_the_readme_pipeline_example_runs_and_prints_what_it_says(cluster) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(b for b in blocks if "from runtime.util.queue import Queue" in b)
    expected = re.findall(r"# (\[.*?\]|\d+)$", code, re.M)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split("\n")[: len(expected)] == expected
