"""Timeline spans are the worker's own measure of each body, however late the driver reads it."""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.real import protocol as p

SLOW_S = 0.03
"""How long the driver dawdles before handling each task result in the slow-driver test."""


@ray.remote
def timed_nap(seconds):
    """Sleep; return when the body ran, by this process's monotonic clock, and its pid."""
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic(), os.getpid()


@ray.remote(max_concurrency=4)
class ThreadedNapper:
    def nap(self, seconds):
        start = time.monotonic()
        time.sleep(seconds)
        return start, time.monotonic()


@ray.remote
class AsyncNapper:
    async def nap(self, seconds):
        start = time.monotonic()
        await asyncio.sleep(seconds)
        return start, time.monotonic()


@pytest.fixture(scope="module")
def node():
    ray.init(num_cpus=2, object_store_memory=32 << 20)
    yield _current_node()
    ray.shutdown()


def _spans(node, suffix: str) -> list[tuple[float, float, int]]:
    """(start, end, pid) of the timeline events named ``*suffix``, in the driver's clock."""
    t0 = node._t0
    return [
        (t0 + e["ts"] / 1e6, t0 + (e["ts"] + e["dur"]) / 1e6, e["tid"])
        for e in ray.timeline()
        if e["name"].endswith(suffix)
    ]


def _covers(span: tuple, body: tuple) -> bool:
    slack = 1e-6  # microseconds in the trace: allow for their rounding
    return span[0] <= body[0] + slack and span[1] >= body[1] - slack


def test_spans_of_prefetched_tasks_cover_their_bodies_under_a_slow_driver(node) -> None:
    # the driver handles each result late: a task prefetched behind another starts on its
    # worker well before the driver learns that the one before it ended
    inner = node._worker_handlers[p.TASK_RESULT]

    def slow(*args):
        time.sleep(SLOW_S)
        return inner(*args)

    node._worker_handlers[p.TASK_RESULT] = slow
    try:
        bodies = ray.get([timed_nap.remote(0.01) for _ in range(8)], timeout=60)
    finally:
        node._worker_handlers[p.TASK_RESULT] = inner
    spans = _spans(node, "timed_nap")
    assert len(spans) == 8
    spans_of: dict[int, list[tuple]] = defaultdict(list)
    bodies_of: dict[int, list[tuple]] = defaultdict(list)
    for span in spans:
        spans_of[span[2]].append(span)
    for body in bodies:
        bodies_of[body[2]].append(body)
    assert spans_of.keys() == bodies_of.keys()
    for pid, mine in spans_of.items():
        # one body at a time per worker: its n-th span is its n-th body's
        mine.sort()
        for before, after in zip(mine, mine[1:], strict=False):
            assert after[0] >= before[1] - 1e-6, f"spans of worker {pid} overlap: {mine}"
        for span, body in zip(mine, sorted(bodies_of[pid]), strict=True):
            assert _covers(span, body), f"worker {pid}: {span} does not cover its body {body}"


@pytest.mark.parametrize("cls", [ThreadedNapper, AsyncNapper], ids=["threaded", "async"])
def test_spans_of_concurrent_actor_calls_overlap_and_cover_their_bodies(node, cls) -> None:
    actor = cls.remote()
    ray.get(actor.nap.remote(0), timeout=60)  # constructed before the calls go out
    # the first call sent ends first: the driver moves on to the next while two still run
    bodies = ray.get([actor.nap.remote(0.2 * (i + 1)) for i in range(3)], timeout=60)
    spans = _spans(node, f"{cls.__name__}.nap")
    spans = sorted(spans)[-3:]  # the three calls (the warm-up call came first)
    # naps of 0.2, 0.4 and 0.6 s: pair spans and bodies by length
    by_length = sorted(spans, key=lambda s: s[1] - s[0])
    for span, body in zip(by_length, bodies, strict=True):
        assert _covers(span, body), f"{span} does not cover the body {body}: {spans}"
    assert max(s[0] for s in spans) < min(s[1] for s in spans), f"no overlap: {spans}"
    ray.kill(actor)


@ray.remote
def timed_stream(n, seconds):
    """Yield the start of the body, ``n`` naps later its end, and the pid."""
    start = time.monotonic()
    for _ in range(n):
        time.sleep(seconds)
    yield start
    yield time.monotonic()
    yield os.getpid()


def test_spans_of_generator_tasks_cover_their_bodies_under_a_slow_driver(node) -> None:
    inner = node._worker_handlers[p.TASK_RESULT]

    def slow(*args):
        time.sleep(SLOW_S)
        return inner(*args)

    node._worker_handlers[p.TASK_RESULT] = slow
    try:
        gens = [timed_stream.remote(2, 0.01) for _ in range(6)]
        bodies = [tuple(ray.get(list(g), timeout=60)) for g in gens]
    finally:
        node._worker_handlers[p.TASK_RESULT] = inner
    spans = _spans(node, "timed_stream")
    assert len(spans) == 6
    for pid in {b[2] for b in bodies}:
        mine = sorted(s for s in spans if s[2] == pid)
        theirs = sorted(b for b in bodies if b[2] == pid)
        for span, body in zip(mine, theirs, strict=True):
            assert _covers(span, body), f"worker {pid}: {span} does not cover its body {body}"
