"""Who runs the event loop: program threads driving it from get/wait, the loop thread, SIGINT."""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.real import protocol as p


@ray.remote
def sleeper(t):
    time.sleep(t)
    return t


@ray.remote
def square(x):
    return x * x


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


@pytest.fixture
def sigint_handled():
    """SIGINT has Python's own handler here, as in an interactive program: a process started
    in the background by a shell without job control inherits it ignored (then the runtime
    leaves it alone, and these tests' premise does not hold)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals")
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def node():
    ray.init(num_cpus=2, object_store_memory=32 << 20)
    yield _current_node()
    ray.shutdown()


def _record_threads(node, name):
    """Wrap `node.<name>` to record the ident of each thread that calls it."""
    seen: list[int] = []
    inner = getattr(node, name)

    def wrapper(*args):
        seen.append(_thread.get_ident())
        return inner(*args)

    setattr(node, name, wrapper)
    return seen


def test_a_blocking_get_handles_the_reply_on_the_calling_thread(node) -> None:
    handled: list[int] = []
    inner = node._worker_handlers[p.TASK_RESULT]

    def on_result(*args):
        handled.append(_thread.get_ident())
        return inner(*args)

    node._worker_handlers[p.TASK_RESULT] = on_result
    for _ in range(10):
        # the task outlasts the step into get(), so the reply cannot beat the caller there
        assert ray.get(sleeper.remote(0.02)) == 0.02
    me = _thread.get_ident()
    assert handled and handled.count(me) >= len(handled) // 2, (
        f"only {handled.count(me)} of {len(handled)} worker replies were read by the thread "
        "waiting in get()"
    )


def test_submitting_runs_the_submission_on_the_calling_thread_when_the_loop_is_free(node) -> None:
    ran = _record_threads(node.client, "_op_submit")
    refs = []
    for i in range(50):
        refs.append(square.remote(i))
        time.sleep(0.001)
    assert ray.get(refs) == [i * i for i in range(50)]
    assert _thread.get_ident() in ran


def test_many_threads_get_at_once(node) -> None:
    counter = Counter.remote()
    errors: list[BaseException] = []
    results: dict[int, list[int]] = {}

    def client(k: int) -> None:
        try:
            out = []
            for i in range(100):
                out.append(ray.get(square.remote(k * 1000 + i)))
                ray.get(counter.add.remote(1))
            ready, _ = ray.wait([square.remote(k)], num_returns=1, timeout=30)
            assert ready
            results[k] = out
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for k in range(4):
        assert results[k] == [(k * 1000 + i) ** 2 for i in range(100)]
    assert ray.get(counter.add.remote(0)) == 400


def test_a_driver_is_woken_by_a_step_another_thread_takes(node) -> None:
    # Both workers busy: the task below stays queued, and cancelling it resolves it without
    # any worker reply, in a step the loop thread (or the cancelling thread) takes while
    # this thread is asleep driving. It must be woken to see it, not sleep to the timeout.
    busy = [sleeper.remote(20), sleeper.remote(20)]
    queued = square.remote(3)
    threading.Timer(0.2, ray.cancel, args=(queued,)).start()
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(queued, timeout=15)
    for ref in busy:
        ray.cancel(ref, force=True)


def test_shutdown_from_another_thread_ends_a_driving_get(node) -> None:
    outcome: list[BaseException | object] = []

    def waiter() -> None:
        try:
            outcome.append(ray.get(sleeper.remote(30)))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 10
    while not node.loop.driver and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.loop.driver, "the waiting thread never drove the loop"
    ray.shutdown()
    t.join(15)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ray.exceptions.RayError)
    ray.init(num_cpus=1)  # the fixture's shutdown needs a session


def test_sigint_inside_a_step_is_deferred_until_the_step_ends(sigint_handled, node) -> None:
    node.loop.main_in_core = True  # as if the main thread were inside a step
    try:
        signal.raise_signal(signal.SIGINT)  # the shield defers it: no exception here
        assert node.loop._sigint_deferred is not None
    finally:
        node.loop.main_in_core = False
    with pytest.raises(KeyboardInterrupt):
        node.loop._deliver_sigint()
    assert node.loop._sigint_deferred is None


def test_ctrl_c_during_a_get_leaves_the_runtime_usable(sigint_handled, node) -> None:
    slow = sleeper.remote(30)
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        ray.get(slow)
    assert not node.loop.driver and not node.loop.main_in_core
    assert ray.get([square.remote(i) for i in range(10)]) == [i * i for i in range(10)]
    ray.cancel(slow, force=True)


def test_shutdown_restores_the_sigint_handler(sigint_handled) -> None:
    before = signal.getsignal(signal.SIGINT)
    ray.init(num_cpus=1)
    try:
        assert signal.getsignal(signal.SIGINT) is not before
    finally:
        ray.shutdown()  # a failure here must not leave the runtime up for the next test
    assert signal.getsignal(signal.SIGINT) is before
