"""`ActorWorkers` driven directly over a real `WorkerPool`: constructor, calls, kills, deaths."""

from __future__ import annotations

import os

import pytest

from runtime.core.messages import ActorWorkerDied, KillWorker, TaskFinished
from runtime.core.task import ACTOR_CREATION, ACTOR_METHOD, TaskSpec
from runtime.real.actor_workers import ActorWorkers
from runtime.real.serialization import dumps_function, loads
from tests.real.test_pool import Harness


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n

    def die(self) -> None:
        os._exit(5)


@pytest.fixture
def world():
    h = Harness(1)
    actors = ActorWorkers(h.pool, h.raylet, h.pool.out)
    h.pool.start()
    try:
        h.step_until(lambda: len(h.pool.idle) == 1)
        yield h, actors
    finally:
        h.close()


def _create(h: Harness, actors: ActorWorkers) -> TaskSpec:
    fn_id = next(h.fn_ids)
    h.pool.functions[fn_id] = dumps_function(Counter)
    tid = next(h.task_ids)
    spec = TaskSpec(
        tid, 0, 0, function=fn_id, args=((), {}), kind=ACTOR_CREATION, actor_id=tid, name="Counter"
    )
    actors.dispatch_creation(spec, 0.0)
    return spec


def _call(h: Harness, actors: ActorWorkers, actor_id: int, method: str) -> TaskSpec:
    spec = TaskSpec(
        next(h.task_ids), 0, 0, function=method, args=((), {}), kind=ACTOR_METHOD,
        actor_id=actor_id, name=f"Counter.{method}",
    )  # fmt: skip
    actors.dispatch_call(spec, 0.0)
    h.pool.flush()
    return spec


def _finished(h: Harness, task_id: int) -> TaskFinished | None:
    return next((e for e in h.finished() if e.task_id == task_id), None)


def test_an_actor_gets_its_own_worker_and_its_calls_run_there(world) -> None:
    h, actors = world
    spec = _create(h, actors)
    h.step_until(lambda: _finished(h, spec.task_id))
    assert _finished(h, spec.task_id).error_kind is None
    w = actors.workers[spec.actor_id]
    assert w.actor_id == spec.actor_id and w not in h.pool.idle
    calls = [_call(h, actors, spec.actor_id, "incr") for _ in range(3)]
    h.step_until(lambda: all(_finished(h, c.task_id) for c in calls))
    assert [loads(_finished(h, c.task_id).outputs[0][1]) for c in calls] == [1, 2, 3]


def test_a_killed_actor_worker_is_not_reported_as_a_death(world) -> None:
    h, actors = world
    spec = _create(h, actors)
    h.step_until(lambda: _finished(h, spec.task_id))
    w = actors.workers[spec.actor_id]
    actors.kill(KillWorker(0, spec.actor_id), 0.0)
    h.step_until(lambda: not w.alive)
    assert spec.actor_id not in actors.workers
    assert not [e for e in h.raylet.events if type(e) is ActorWorkerDied]


def test_an_unexpected_death_is_reported_to_the_raylet(world) -> None:
    h, actors = world
    spec = _create(h, actors)
    h.step_until(lambda: _finished(h, spec.task_id))
    _call(h, actors, spec.actor_id, "die")
    h.step_until(lambda: [e for e in h.raylet.events if type(e) is ActorWorkerDied])
    (died,) = [e for e in h.raylet.events if type(e) is ActorWorkerDied]
    assert died.actor_id == spec.actor_id and "while running Counter.die()" in died.reason
    _call(h, actors, spec.actor_id, "incr")  # its worker is gone: the call reports that
    assert len([e for e in h.raylet.events if type(e) is ActorWorkerDied]) == 2


def test_an_actor_killed_before_its_worker_arrives_never_runs_its_constructor(world) -> None:
    h, actors = world
    spec = _create(h, actors)
    actors.kill(KillWorker(0, spec.actor_id), 0.0)  # the zygote has not answered yet
    assert spec.actor_id in actors.killed_early
    h.step_until(lambda: len(h.pool.workers) == 2 and not h.pool.workers[1].alive)
    assert _finished(h, spec.task_id) is None and not actors.workers
