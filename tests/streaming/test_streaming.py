"""The streaming example: a producer, actor stages on bounded queues, an ActorPool; backpressure."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest

import runtime
from runtime.examples import streaming
from runtime.util import state
from runtime.util.queue import Queue


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    before = set(os.listdir("/dev/shm"))
    runtime.init(num_cpus=2)
    yield
    runtime.shutdown()
    assert set(os.listdir("/dev/shm")) <= before  # no shared memory left behind


def _alive_actors() -> list[dict]:
    return state.list_actors(filters=[("state", "=", "ALIVE")])


def _until(condition, what: str, deadline_s: float = 60.0) -> None:
    """Poll `condition` until true (a generous deadline, for a loaded machine)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_the_pipeline_needs_a_session() -> None:
    assert not runtime.is_initialized()  # this test runs before the module's session starts
    with pytest.raises(RuntimeError, match="init"):
        streaming.run_pipeline()


def test_every_item_comes_out_once_with_its_label_and_the_bounds_hold(cluster: None) -> None:
    report = streaming.run_pipeline(n_items=60, maxsize=3, decoders=2, classifiers=2)
    assert report.results == [streaming.expected_label(i) for i in range(60)]
    assert sum(w.items for w in report.stages["decode"]) == 60
    assert sum(w.items for w in report.stages["classify"]) == 60
    assert report.producer.puts == 60
    for queue in ("q_in", "q_mid"):
        assert report.depth[queue], queue
        assert report.max_depth(queue) <= 3, queue  # never above the bound
    assert len(report.finish_times("classify")) == 60
    assert report.throughput("classify") > 0
    assert "items/s" in report.summary()
    assert _alive_actors() == []  # producer, stages, monitor and both queues are gone


def test_a_full_queue_makes_the_producer_wait_until_items_are_taken(cluster: None) -> None:
    queue = Queue(maxsize=3)
    producer = runtime.remote(streaming.Producer).options(max_concurrency=2).remote()
    try:
        produced = producer.run.remote(queue, 10, streaming.make_frame, 1)
        # the producer's fourth put finds the queue full and waits there
        _until(lambda: runtime.get(producer.progress.remote()).blocked_puts >= 1, "a blocked put")
        assert queue.size() == 3
        assert runtime.get(producer.progress.remote()).puts == 3
        ready, _ = runtime.wait([produced], timeout=0)
        assert not ready  # still waiting for room
        taken = []
        for _ in range(10):
            taken.append(queue.get(timeout=60))
            assert queue.size() <= 3
        assert [index for index, _ in taken] == list(range(10))  # FIFO
        np.testing.assert_array_equal(taken[4][1], streaming.make_frame(4))
        assert isinstance(queue.get(timeout=60), streaming.EndOfStream)
        stats = runtime.get(produced, timeout=60)
        assert stats.puts == 10 and stats.blocked_puts >= 1 and stats.wait_s > 0
    finally:
        queue.shutdown(force=True)
        runtime.kill(producer)


def failing_decode(frame: np.ndarray, work_s: float) -> np.ndarray:
    if frame[0, 0] < 8:
        raise ValueError("corrupt frame")
    return streaming.decode(frame, 0.0)


def failing_classify(pixels: np.ndarray, work_s: float) -> int:
    raise KeyError("no such class")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"decode_fn": failing_decode}, ValueError, "corrupt frame"),
        ({"classify_fn": failing_classify}, KeyError, "no such class"),
    ],
)
def test_an_error_in_a_stage_reaches_the_driver_and_nothing_is_left_running(
    cluster: None, kwargs: dict, error: type, match: str
) -> None:
    assert min(streaming.make_frame(i)[0, 0] for i in range(60)) < 8  # failing_decode raises
    with pytest.raises(error, match=match):
        streaming.run_pipeline(n_items=60, maxsize=2, **kwargs)
    assert _alive_actors() == []


def test_bad_arguments_are_refused(cluster: None) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        streaming.run_pipeline(maxsize=0)
    with pytest.raises(ValueError, match="classifiers"):
        streaming.run_pipeline(classifiers=0)
