"""A streaming pipeline's backpressure: a producer actor blocked by a full Queue, under twinray and Ray."""

from __future__ import annotations

import importlib
import time

import pytest


def _queue_module(ray):
    return importlib.import_module(f"{ray.__name__}.util.queue")


def _until(condition, what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_full_bounded_queue_holds_the_producer_back(ray_started) -> None:
    ray = ray_started
    queue_module = _queue_module(ray)

    @ray.remote(max_concurrency=2)
    class Producer:
        def __init__(self):
            self.puts = 0
            self.blocked = 0

        def run(self, q, n):
            for i in range(n):
                try:
                    q.put_nowait(i)
                except queue_module.Full:
                    self.blocked += 1
                    q.put(i)  # waits for room
                self.puts += 1
            q.put(None)
            return self.puts, self.blocked

        def progress(self):
            return self.puts, self.blocked

    @ray.remote
    class Stage:
        def run(self, q_in, q_out):
            while (x := q_in.get()) is not None:
                q_out.put(x * x)
            q_out.put(None)

    q_in, q_out = queue_module.Queue(maxsize=3), queue_module.Queue(maxsize=2)
    producer = Producer.remote()
    produced = producer.run.remote(q_in, 12)
    _until(lambda: ray.get(producer.progress.remote()) == (3, 1), "the fourth put to wait")
    assert q_in.size() == 3
    assert not ray.wait([produced], timeout=0)[0]
    stage = Stage.remote()
    staged = stage.run.remote(q_in, q_out)
    out = []
    while (y := q_out.get(timeout=60)) is not None:
        assert q_out.size() <= 2
        out.append(y)
    assert out == [i * i for i in range(12)]
    puts, blocked = ray.get(produced, timeout=60)
    assert puts == 12 and blocked >= 1
    ray.get(staged, timeout=60)
    for q in (q_in, q_out):
        q.shutdown()
    for actor in (producer, stage):
        ray.kill(actor)
    with pytest.raises(AttributeError):
        q_in.size()  # a shut-down queue has no actor, in both
