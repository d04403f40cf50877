"""A streaming pipeline of actors: a producer, a stage on bounded queues, an ActorPool stage.

    producer --q_in--> N "decode" actors --q_mid--> ActorPool of M "classify" actors --> driver

Items flow one by one; nothing waits for the whole stream. The queues are
`runtime.util.queue.Queue(maxsize)`: when the slowest stage falls behind, the queue in front
of it fills, the puts into it wait, and the wait travels upstream until the producer itself
slows to the pipeline's pace (backpressure). The driver feeds the pool stage from `q_mid`
and takes a new item only when a pool actor is free, so the pool adds no unbounded buffer
either. Every put that finds its queue full is counted, a monitor actor samples both queues'
depth, and every stage stamps each item it finishes: `run_pipeline` returns all that in a
`PipelineReport` and shuts every actor and queue down, whatever happens.

    python -m runtime.examples.streaming        # a run on 2 CPUs, summarised
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime import api
from runtime.util.actor_pool import ActorPool
from runtime.util.queue import Empty, Full, Queue

__all__ = [
    "EndOfStream",
    "PipelineReport",
    "Producer",
    "PutStats",
    "StageStats",
    "classify",
    "decode",
    "make_frame",
    "run_pipeline",
]


@dataclass(frozen=True)
class EndOfStream:
    """The marker a producer (or a stage worker) puts after its last item."""


@dataclass
class PutStats:
    """What a writer saw of its output queue: puts, the ones that found it full, time waited."""

    puts: int = 0
    blocked_puts: int = 0
    """Puts that found the queue full and had to wait for room: backpressure, counted."""
    wait_s: float = 0.0

    def put(self, queue: Queue, item: Any) -> None:
        """Put `item`, waiting for room if needed, and count it."""
        try:
            queue.put_nowait(item)
        except Full:
            self.blocked_puts += 1
            began = time.monotonic()
            queue.put(item)
            self.wait_s += time.monotonic() - began
        self.puts += 1


@dataclass
class StageStats:
    """One stage worker's account: items done, when each finished, busy time, its puts."""

    stage: str
    items: int = 0
    done_at: list[float] = field(default_factory=list)
    """`time.monotonic()` when each item was finished (one clock for the whole machine)."""
    busy_s: float = 0.0
    out: PutStats = field(default_factory=PutStats)


@dataclass
class PipelineReport:
    """The outcome of `run_pipeline`: results in stream order and how the stream flowed."""

    results: list[Any]
    maxsize: int
    producer: PutStats
    stages: dict[str, list[StageStats]]
    """Per stage name, the stats of each of its workers."""
    depth: dict[str, list[tuple[float, int]]]
    """Per queue name, `(seconds since start, items in the queue)` samples."""
    started_at: float
    elapsed_s: float

    def max_depth(self, queue: str) -> int:
        """The largest depth sampled on `queue`."""
        return max((d for _, d in self.depth[queue]), default=0)

    def finish_times(self, stage: str) -> list[float]:
        """Seconds since the start at which `stage` finished each item, sorted."""
        return sorted(t - self.started_at for w in self.stages[stage] for t in w.done_at)

    def throughput(self, stage: str) -> float:
        """Items/s of `stage` over the run."""
        return sum(w.items for w in self.stages[stage]) / self.elapsed_s

    def summary(self) -> str:
        """A few lines: per-stage throughput, queue depths against the bound, backpressure."""
        lines = [
            f"{len(self.results)} items in {self.elapsed_s:.2f} s (queues bounded at {self.maxsize})"
        ]
        for name in self.stages:
            lines.append(f"  {name:<9} {self.throughput(name):8.1f} items/s")
        for name in self.depth:
            lines.append(f"  {name:<9} max depth {self.max_depth(name)} of {self.maxsize}")
        p = self.producer
        lines.append(
            f"  producer  {p.blocked_puts} of {p.puts} puts found the queue full, "
            f"waited {p.wait_s:.2f} s in all"
        )
        return "\n".join(lines)


# -- the work of each stage (module functions: they pickle by reference) ----------------------


def make_frame(index: int) -> np.ndarray:
    """The producer's item: a small 'frame' of pixels, reproducible from its index."""
    return np.random.default_rng(index).integers(0, 256, size=(16, 16), dtype=np.uint8)


def decode(frame: np.ndarray, work_s: float = 0.005) -> np.ndarray:
    """First stage: pixels to normalised floats (plus `work_s` of simulated I/O)."""
    time.sleep(work_s)
    return frame.astype(np.float32) / 255.0


def classify(pixels: np.ndarray, work_s: float = 0.02) -> int:
    """Second stage, the slow one: a 'label' from the pixels (plus `work_s` of model time)."""
    time.sleep(work_s)
    return int(pixels.mean() * 10)


def expected_label(index: int) -> int:
    """What the pipeline must answer for item `index` (the stages run in-process)."""
    return classify(decode(make_frame(index), 0.0), 0.0)


# -- the actors -------------------------------------------------------------------------------


class Producer:
    """Makes the stream's items and puts them into the first queue, then end markers.

    Create it with ``max_concurrency=2`` to read `progress` while `run` waits on a full queue.
    """

    def __init__(self) -> None:
        self.stats = PutStats()

    def run(self, out: Queue, n_items: int, make: Callable[[int], Any], n_ends: int) -> PutStats:
        """Put `(i, make(i))` for each i, then `n_ends` end markers; the puts' stats."""
        for index in range(n_items):
            self.stats.put(out, (index, make(index)))
        for _ in range(n_ends):
            out.put(EndOfStream())
        return self.stats

    def progress(self) -> PutStats:
        """The puts' stats so far."""
        return self.stats


class _StageWorker:
    """A stage worker: `run` loops queue to queue; `process` serves one item (for a pool)."""

    def __init__(self, stage: str, fn: Callable[..., Any], work_s: float) -> None:
        self.fn = fn
        self.work_s = work_s
        self.stats = StageStats(stage)

    def _apply(self, value: Any) -> Any:
        began = time.monotonic()
        result = self.fn(value, self.work_s)
        now = time.monotonic()
        self.stats.busy_s += now - began
        self.stats.items += 1
        self.stats.done_at.append(now)
        return result

    def run(self, inp: Queue, out: Queue) -> StageStats:
        """Take items from `inp` until an end marker, put their results into `out`; stats."""
        while True:
            item = inp.get()
            if isinstance(item, EndOfStream):
                out.put(item)  # one marker per worker: downstream counts them
                return self.stats
            index, value = item
            self.stats.out.put(out, (index, self._apply(value)))

    def process(self, item: tuple[int, Any]) -> tuple[int, Any]:
        """One item, for a pool: `(index, result)`."""
        index, value = item
        return index, self._apply(value)

    def report(self) -> StageStats:
        """This worker's stats so far."""
        return self.stats


class _DepthMonitor:
    """An async actor sampling queue depths until told to stop (measurement, not control)."""

    def __init__(self) -> None:
        self.stopped = False

    async def watch(self, queues: dict[str, Queue], interval_s: float) -> dict[str, list]:
        """Sample every queue's size each `interval_s` until `stop`; `(monotonic, size)` lists."""
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in queues}
        while not self.stopped:
            for name, queue in queues.items():
                size = await queue.actor.qsize.remote()
                samples[name].append((time.monotonic(), size))
            await asyncio.sleep(interval_s)
        return samples

    async def stop(self) -> None:
        """End `watch` after its current sample."""
        self.stopped = True


_UPSTREAM_CHECK_S = 0.5
"""How long the driver waits on an empty middle queue before checking upstream for errors."""


# -- the pipeline -----------------------------------------------------------------------------


def run_pipeline(
    n_items: int = 150,
    maxsize: int = 4,
    decoders: int = 2,
    classifiers: int = 2,
    decode_s: float = 0.005,
    classify_s: float = 0.02,
    sample_s: float = 0.01,
    decode_fn: Callable[[Any, float], Any] = decode,
    classify_fn: Callable[[Any, float], Any] = classify,
) -> PipelineReport:
    """Stream `n_items` frames through decode (queue stage) and classify (pool stage).

    Needs a running twinray session. The two queues hold at most `maxsize` items;
    `decoders` actors loop between them, `classifiers` actors form the ActorPool the driver
    feeds. `decode_fn(item, decode_s)` and `classify_fn(item, classify_s)` are the stages'
    work (by default `decode` and `classify`, whose `*_s` is simulated work per item). An
    error in any stage (or the producer) is raised here; every actor and queue is shut down
    before this returns or raises.
    """
    for name, value in (("n_items", n_items), ("maxsize", maxsize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'{name}' must be a positive int, got {value!r}")
    for name, value in (("decoders", decoders), ("classifiers", classifiers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'{name}' must be a positive int, got {value!r}")
    if not api.is_initialized():
        raise RuntimeError("run_pipeline needs a running session: call runtime.init() first")
    worker_class = api.remote(_StageWorker)
    q_in, q_mid = Queue(maxsize), Queue(maxsize)
    actors: list[Any] = []
    try:
        monitor = api.remote(_DepthMonitor).remote()
        producer = api.remote(Producer).options(max_concurrency=2).remote()
        decode_workers = [
            worker_class.remote("decode", decode_fn, decode_s) for _ in range(decoders)
        ]
        pool_workers = [
            worker_class.remote("classify", classify_fn, classify_s) for _ in range(classifiers)
        ]
        actors = [monitor, producer, *decode_workers, *pool_workers]
        api.get([w.report.remote() for w in decode_workers + pool_workers])  # all started
        started = time.monotonic()
        watching = monitor.watch.remote({"q_in": q_in, "q_mid": q_mid}, sample_s)
        produced = producer.run.remote(q_in, n_items, make_frame, decoders)
        decoding = [w.run.remote(q_in, q_mid) for w in decode_workers]
        upstream = [produced, *decoding]
        results = _drain_into_pool(q_mid, ActorPool(pool_workers), upstream, decoders, n_items)
        elapsed = time.monotonic() - started
        api.get(monitor.stop.remote())
        samples = api.get(watching)
        producer_stats = api.get(produced)
        decode_stats = api.get(decoding)
        classify_stats = api.get([w.report.remote() for w in pool_workers])
    finally:
        for queue in (q_in, q_mid):
            queue.shutdown(force=True)
        for actor in actors:
            api.kill(actor)
    return PipelineReport(
        results=results,
        maxsize=maxsize,
        producer=producer_stats,
        stages={"decode": decode_stats, "classify": classify_stats},
        depth={q: [(t - started, d) for t, d in s] for q, s in samples.items()},
        started_at=started,
        elapsed_s=elapsed,
    )


def _drain_into_pool(
    q_mid: Queue, pool: ActorPool, upstream: list[Any], n_ends: int, n_items: int
) -> list[Any]:
    """Feed `q_mid`'s items to `pool` (a new one only when an actor is free); results in order.

    While `q_mid` is empty, the `upstream` calls (producer, decoders) are checked: one that
    failed never sends its end marker, so its error is raised here instead of waiting forever.
    """
    results: list[Any] = [None] * n_items
    ends = 0

    def collect() -> None:
        index, label = pool.get_next_unordered()
        results[index] = label

    while ends < n_ends:
        try:
            item = q_mid.get(timeout=_UPSTREAM_CHECK_S)
        except Empty:
            finished, _ = api.wait(upstream, num_returns=len(upstream), timeout=0)
            api.get(finished)  # raises the error of a failed producer or decoder
            continue
        if isinstance(item, EndOfStream):
            ends += 1
            continue
        if not pool.has_free():
            collect()  # wait for an actor: the pool holds no queue of its own
        pool.submit(lambda actor, value: actor.process.remote(value), item)
    while pool.has_next():
        collect()
    return results


def main() -> int:
    """Run the pipeline on 2 CPUs, check every label, print the summary."""
    api.init(num_cpus=2)
    try:
        report = run_pipeline()
    finally:
        api.shutdown()
    if report.results != [expected_label(i) for i in range(len(report.results))]:
        raise RuntimeError("the pipeline returned wrong labels")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
