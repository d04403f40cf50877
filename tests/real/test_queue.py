"""runtime.util.queue.Queue on the real runtime: FIFO, blocking and timeouts, maxsize, batches, shutdown."""

from __future__ import annotations

import asyncio
import os
import queue as stdlib_queue
import threading
import time

import pytest

import runtime as ray
from runtime.util.queue import Empty, Full, Queue, _QueueActor


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def _not_ready(ref, seconds=0.5) -> bool:
    ready, _ = ray.wait([ref], timeout=seconds)
    return not ready


def test_empty_and_full_are_the_stdlib_exceptions() -> None:
    assert issubclass(Empty, stdlib_queue.Empty)
    assert issubclass(Full, stdlib_queue.Full)


def test_fifo_sizes_and_flags(cluster) -> None:
    q = Queue()
    assert q.empty() and not q.full() and q.size() == 0 and len(q) == 0
    for i in range(5):
        q.put(i)
    assert q.qsize() == q.size() == len(q) == 5
    assert not q.empty() and not q.full()  # unbounded: never full
    assert [q.get() for _ in range(5)] == list(range(5))
    assert q.empty()
    q.shutdown()


def test_maxsize_bounds_the_queue(cluster) -> None:
    q = Queue(maxsize=2)
    q.put("a")
    q.put_nowait("b")
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait("c")
    with pytest.raises(Full):
        q.put("c", block=False)
    with pytest.raises(stdlib_queue.Full):  # a timed-out blocking put, as the stdlib class
        q.put("c", timeout=0.05)
    assert q.get_nowait() == "a"
    q.put("c", timeout=0)  # room now: a zero timeout succeeds at once
    assert q.get_nowait_batch(2) == ["b", "c"]
    q.shutdown()


def test_get_on_an_empty_queue_raises_empty(cluster) -> None:
    q = Queue()
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.05)
    q.put(1)
    assert q.get(timeout=0) == 1  # an item is there: a zero timeout takes it
    q.shutdown()


def test_batches_are_all_or_nothing(cluster) -> None:
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="Cannot add 2 items to queue of size 2 and maxsize 3"):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    q.put_nowait_batch(iter([3]))  # any iterable
    with pytest.raises(Empty, match="Cannot get 4 items from queue of size 3"):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(3) == [1, 2, 3]
    q.shutdown()


def test_bad_arguments_are_refused(cluster) -> None:
    with pytest.raises(TypeError, match="maxsize"):
        Queue(maxsize="3")
    with pytest.raises(TypeError, match="actor_options"):
        Queue(actor_options=[("num_cpus", 0)])
    with pytest.raises(TypeError, match="Invalid option keyword no_such_option"):
        Queue(actor_options={"no_such_option": 1})
    q = Queue()
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-0.5)
    with pytest.raises(TypeError, match="timeout"):
        q.get(timeout="1")
    with pytest.raises(TypeError, match="Iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="int"):
        q.get_nowait_batch(1.0)
    with pytest.raises(ValueError, match="nonnegative"):
        q.get_nowait_batch(-1)
    q.shutdown()


def test_a_blocking_get_is_woken_by_a_put_from_a_task(cluster) -> None:
    q = Queue()

    @ray.remote
    def consume(q):
        return q.get(timeout=60)

    @ray.remote
    def produce(q, item):
        q.put(item)
        return "put"

    waiting = consume.remote(q)
    assert _not_ready(waiting)  # nothing to get yet: it waits
    assert ray.get(produce.remote(q, {"x": 1}), timeout=60) == "put"
    assert ray.get(waiting, timeout=60) == {"x": 1}
    q.shutdown()


def test_a_driver_get_waits_for_a_task_put(cluster) -> None:
    q = Queue()

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i)

    done = produce.remote(q, 20)
    assert [q.get(timeout=60) for _ in range(20)] == list(range(20))
    ray.get(done, timeout=60)
    q.shutdown()


def test_a_full_queue_blocks_the_producer_until_a_get(cluster) -> None:
    q = Queue(maxsize=1)

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i)
        return n

    done = produce.remote(q, 3)
    assert _not_ready(done)  # the second put waits for room
    assert q.get(timeout=60) == 0
    assert q.get(timeout=60) == 1
    assert q.get(timeout=60) == 2
    assert ray.get(done, timeout=60) == 3
    q.shutdown()


def test_a_timed_out_put_from_a_task_raises_full(cluster) -> None:
    q = Queue(maxsize=1)
    q.put(0)

    @ray.remote
    def produce(q):
        try:
            q.put(1, timeout=0.1)
        except Full:
            return "full"
        return "put"

    assert ray.get(produce.remote(q), timeout=60) == "full"
    assert q.qsize() == 1
    q.shutdown()


def test_waiting_calls_hold_no_cpu(cluster) -> None:
    q, left, right = Queue(), Queue(), Queue()
    result: list = []
    getter = threading.Thread(target=lambda: result.append(q.get(timeout=60)))
    getter.start()
    try:
        # two tasks that only finish if they run at the same time: both CPUs are free
        # although three queue actors live and one get waits

        @ray.remote
        def meet(mine, theirs):
            mine.put("here")
            return theirs.get(timeout=60)

        pair = [meet.remote(left, right), meet.remote(right, left)]
        assert ray.get(pair, timeout=90) == ["here", "here"]
    finally:
        q.put("done")
        getter.join(60)
    assert result == ["done"]
    for each in (q, left, right):
        each.shutdown()


def test_many_producers_and_consumers_see_each_item_once(cluster) -> None:
    q = Queue(maxsize=4)

    @ray.remote
    def produce(q, base, n):
        for i in range(n):
            q.put(base + i, timeout=60)

    @ray.remote
    def consume(q, n):
        return [q.get(timeout=60) for _ in range(n)]

    producers = [produce.remote(q, base, 25) for base in (0, 1000)]
    consumers = [consume.remote(q, 10) for _ in range(2)]
    rest = [q.get(timeout=60) for _ in range(30)]
    got = sum(ray.get(consumers, timeout=60), []) + rest
    ray.get(producers, timeout=60)
    assert sorted(got) == sorted(list(range(25)) + list(range(1000, 1025)))
    assert q.empty()
    q.shutdown()


def test_an_actor_uses_a_queue(cluster) -> None:
    q = Queue()

    @ray.remote
    class Relay:
        def __init__(self, q):
            self.q = q

        def forward(self, out):
            item = self.q.get(timeout=60)
            out.put(item * 10)
            return item

    out = Queue()
    relay = Relay.remote(q)
    ref = relay.forward.remote(out)
    q.put(4)
    assert ray.get(ref, timeout=60) == 4
    assert out.get(timeout=60) == 40
    q.shutdown()
    out.shutdown()


def test_actor_options_reach_the_actor(cluster) -> None:
    q = Queue(actor_options={"name": "util-test-queue", "num_cpus": 0})
    q.put("hello")
    handle = ray.get_actor("util-test-queue")
    assert ray.get(handle.qsize.remote()) == 1
    assert q.get() == "hello"
    q.shutdown()


def test_force_shutdown_fails_waiting_calls_and_ends_the_queue(cluster) -> None:
    q = Queue()

    @ray.remote
    def consume(q):
        return q.get(timeout=60)

    waiting = consume.remote(q)
    assert _not_ready(waiting)
    q.shutdown(force=True)
    with pytest.raises(ray.ActorDiedError):
        ray.get(waiting, timeout=60)
    with pytest.raises(AttributeError, match="shut down"):
        q.put(1)
    q.shutdown()  # a second shutdown does nothing


def test_graceful_shutdown_ends_waiting_gets_with_empty(cluster) -> None:
    q = Queue(maxsize=1)
    q.put(0)

    @ray.remote
    def consume(q):
        try:
            q.get(timeout=60)
            q.get(timeout=60)
        except Empty:
            return "empty"
        return "got"

    @ray.remote
    def produce(q):
        try:
            q.put(1, timeout=60)
            q.put(2, timeout=60)
        except Full:
            return "full"
        return "put"

    getter = Queue()
    waiting_get = consume.remote(getter)
    waiting_put = produce.remote(q)
    # Shut down only once both calls wait at their queue's actor: on a loaded machine a task
    # may not have reached its `get`/`put` yet, and a call that arrives after the actor was
    # killed fails with ActorDiedError (in Ray too).
    for queue in (getter, q):
        deadline = time.monotonic() + 60
        while ray.get(queue.actor.waiting_calls.remote()) < 1:
            assert time.monotonic() < deadline, "the call never reached the queue's actor"
            time.sleep(0.02)
    assert _not_ready(waiting_get, 0.0) and _not_ready(waiting_put, 0.0)
    getter.shutdown(grace_period_s=30)
    q.shutdown(grace_period_s=30)
    assert ray.get([waiting_get, waiting_put], timeout=60) == ["empty", "full"]
    assert q.actor is None


def test_put_async_and_get_async_in_a_driver_loop(cluster) -> None:
    q = Queue(maxsize=1)

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i, timeout=60)

    async def main() -> list:
        await q.put_async("first")
        with pytest.raises(Full):
            await q.put_async("no room", block=False)
        with pytest.raises(Full):
            await q.put_async("no room", timeout=0.05)
        got = [await q.get_async()]
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.05)
        done = produce.remote(q, 3)
        # the loop is not blocked while the gets wait for the task's puts
        ticks = asyncio.ensure_future(asyncio.sleep(0))
        got += [await q.get_async(timeout=60) for _ in range(3)]
        assert ticks.done()
        await done
        with pytest.raises(ValueError):
            await q.get_async(timeout=-1)
        return got

    assert asyncio.run(main()) == ["first", 0, 1, 2]
    q.shutdown()


def test_an_async_actor_consumes_with_get_async(cluster) -> None:
    q = Queue()

    @ray.remote
    class Collector:
        async def take(self, q, n):
            return [await q.get_async(timeout=60) for _ in range(n)]

    collector = Collector.remote()
    taken = [collector.take.remote(q, 2), collector.take.remote(q, 2)]
    assert _not_ready(taken[0]) and _not_ready(taken[1], 0.0)
    q.put_nowait_batch([1, 2, 3, 4])
    got = ray.get(taken, timeout=60)
    assert sorted(got[0] + got[1]) == [1, 2, 3, 4]
    q.shutdown()


# -- the actor's logic on a bare event loop (no runtime) ------------------------------------


def test_queue_actor_waits_without_losing_items() -> None:
    async def scenario() -> list:
        actor = _QueueActor(1)
        getter = asyncio.ensure_future(actor.get(timeout=10))
        await asyncio.sleep(0)
        await actor.put("a")  # wakes the waiting get
        assert await getter == "a"
        await actor.put("b")
        putter = asyncio.ensure_future(actor.put("c", timeout=10))
        await asyncio.sleep(0)
        assert not putter.done()  # full: it waits
        assert await actor.get() == "b"
        await putter
        with pytest.raises(Empty):
            actor.get_nowait_batch(2)
        with pytest.raises(Full):
            await actor.put("d", timeout=0)
        late = asyncio.ensure_future(actor.get(timeout=10))
        await asyncio.sleep(0)
        assert late.done() and late.result() == "c"
        with pytest.raises(Empty):
            await actor.get(timeout=0.01)
        # close ends waiting calls: gets with Empty
        waiting = asyncio.ensure_future(actor.get(timeout=10))
        await asyncio.sleep(0)
        await actor.close()
        with pytest.raises(Empty):
            await waiting
        with pytest.raises(Full):  # a closed queue waits no more
            await actor.put("x")
            await actor.put("y")
        return [actor.qsize(), actor.empty(), actor.full()]

    assert asyncio.run(scenario()) == [1, False, True]
