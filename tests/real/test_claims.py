"""Claims on prefetched tasks: offer/take/steal decide once who runs a task, across processes."""

from __future__ import annotations

import os
import time

import pytest

import runtime as ray
from runtime.real.arena import Arena
from runtime.real.claims import Claims


@pytest.fixture
def claims():
    with Arena(1 << 20, prefault_bytes=1 << 16) as arena:
        yield Claims(arena, 8)


def test_the_worker_takes_what_was_offered_and_the_host_can_no_longer_steal_it(claims) -> None:
    assert claims.offer(3, 41)
    assert claims.take(3, 41)
    assert not claims.steal(3, 41)


def test_a_stolen_task_is_skipped_by_the_worker(claims) -> None:
    assert claims.offer(3, 41)
    assert claims.steal(3, 41)
    assert not claims.take(3, 41)


def test_an_undecided_offer_is_never_overwritten(claims) -> None:
    # The bug this guards: the host offered the next task while the worker had not yet
    # reached the previous one; the overwrite made the worker skip a task nobody else
    # ran, and the program's get() hung.
    assert claims.offer(3, 41)
    assert not claims.offer(3, 42)
    assert claims.take(3, 41)
    assert claims.offer(3, 42)


def test_slots_are_per_worker_and_clear_forgets_an_offer(claims) -> None:
    assert claims.offer(1, 10)
    assert claims.offer(2, 20)
    assert not claims.take(1, 20)
    claims.clear(1)
    assert not claims.take(1, 10)
    assert claims.take(2, 20)


def _slot(claims, worker_id):
    return claims._slots[worker_id]


def test_take_and_steal_race_across_processes_with_exactly_one_winner(claims) -> None:
    rounds = 2000
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "worker": claim whatever is on offer until the host says stop
        try:
            won = 0
            while _slot(claims, 7) == 0:
                tid = _slot(claims, 0)
                if tid > 0 and claims.take(0, tid):
                    won += 1
            os.write(w, str(won).encode())
        finally:
            os._exit(0)
    os.close(w)
    stolen = 0
    for tid in range(1, rounds + 1):
        assert claims.offer(0, tid)  # the last one was decided: the slot is free
        if tid % 4 == 0:  # give the worker its chance, so both sides surely win some
            deadline = time.monotonic() + 2.0
            while _slot(claims, 0) == tid and time.monotonic() < deadline:
                time.sleep(0.0001)
        else:
            for _ in range(tid % 50):
                pass  # vary the head start the worker gets: a real race
        if claims.steal(0, tid):
            stolen += 1
    assert claims.offer(7, 1)  # stop
    worker_won = int(os.read(r, 64))
    os.close(r)
    os.waitpid(pid, 0)
    assert worker_won + stolen == rounds
    assert worker_won > 0 and stolen > 0  # both sides won some: the race was real


def test_short_tasks_behind_a_long_one_do_not_wait_for_it() -> None:
    # Prefetching queues a task behind a running one; before claims, a task queued behind
    # a 20-s sleeper waited for it while the other worker sat idle.
    ray.init(num_cpus=2)
    try:

        @ray.remote
        def sleeper(t):
            time.sleep(t)
            return t

        @ray.remote
        def square(x):
            return x * x

        long = sleeper.remote(20)
        time.sleep(0.2)  # it is running
        refs = [square.remote(i) for i in range(10)]
        assert ray.get(refs, timeout=10) == [i * i for i in range(10)]
        ray.cancel(long, force=True)
    finally:
        ray.shutdown()


def test_many_short_tasks_all_finish_with_prefetching() -> None:
    ray.init(num_cpus=2)
    try:

        @ray.remote
        def tick(i):
            time.sleep(0.001)
            return i

        for n in (1, 5, 50, 500):
            assert ray.get([tick.remote(i) for i in range(n)], timeout=60) == list(range(n))
    finally:
        ray.shutdown()


@ray.remote
def _sleep(t):
    time.sleep(t)
    return t


@pytest.mark.parametrize("force", [False, True])
def test_cancel_reaches_a_prefetched_task_its_worker_has_just_started(force) -> None:
    # The bug this guards: the host cancelled a task queued behind another one (prefetched)
    # with a REVOKE message. If the worker had started it before the host read the first
    # task's result, the worker read that REVOKE only once the cancelled body ended: the
    # task ran to its end, holding its CPU (test_resources_and_nodes saw 1 of 2 CPUs).
    # Here the host's loop is held while the worker goes on to the prefetched task, then
    # the cancel is handled before the host reads anything, exactly as in that race.
    from runtime.api import _current_node
    from runtime.real.futures import Future

    ray.init(num_cpus=1)
    node = _current_node()
    try:
        assert ray.get(_sleep.remote(0), timeout=60) == 0  # the worker is up
        first = _sleep.remote(0.5)
        second = _sleep.remote(120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(w.queue for w in node.pool.workers):
            time.sleep(0.01)
        (w,) = [w for w in node.pool.workers if w.queue]  # second waits behind first
        with node._core_lock:  # the host reads no worker message meanwhile
            while time.monotonic() < deadline and node.claims._slots[w.worker_id] != 0:
                time.sleep(0.01)  # until the worker has taken the second task
            assert node.claims._slots[w.worker_id] == 0
            assert [s.task_id for s in w.queue] == [second.task_id()]  # the host has not seen it
            slot = [Future(1), None]
            node._ops.append((node.introspection.op_cancel, (second.id, force, slot)))
            node._step((), time.monotonic() - node._t0)
            assert slot[0].wait(0) and slot[1] is None
        assert ray.get(first, timeout=60) == 0.5
        with pytest.raises(ray.TaskCancelledError):
            ray.get(second, timeout=30)  # its owner fails it at once, even before the fix
        deadline = time.monotonic() + 30  # the task would hold its CPU for 120 s
        while time.monotonic() < deadline and ray.available_resources().get("CPU") != 1.0:
            time.sleep(0.01)
        assert ray.available_resources().get("CPU") == 1.0  # its CPU is back: it stopped
        assert ray.get(_sleep.remote(0), timeout=60) == 0  # a worker (a new one after force)
    finally:
        ray.shutdown()
