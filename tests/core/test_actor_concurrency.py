"""The raylet's per-actor concurrency limit and the owner's actor-call retries, on the fake host."""

from __future__ import annotations

from runtime.core.config import CoreConfig
from runtime.core.messages import ActorWorkerDied
from runtime.core.task import ACTOR_METHOD, ERR_ACTOR_DIED, ERR_APPLICATION, ActorError
from tests.core.fake_host import FakeHost


def _raises(spec, when: bool) -> str | None:
    """A fail hook's answer: a method call raises when `when`."""
    return ERR_APPLICATION if spec.kind == ACTOR_METHOD and when else None


def _running_calls(host: FakeHost) -> int:
    return sum(1 for s in host.raylets[0].running.values() if s.kind == ACTOR_METHOD)


def test_the_raylet_dispatches_up_to_max_concurrency_calls_at_once() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(max_concurrency=3)
    host.run()
    calls = [host.call(actor, duration=1.0, name=f"m{i}")[0] for i in range(9)]
    host.run(until=host.now + 0.5)
    assert _running_calls(host) == 3
    host.run()
    assert all(host.ready[c].error_kind is None for c in calls)
    starts = sorted({round(d.spec.started_at, 3) for d in host.dispatched if d.spec.kind == 2})
    assert len(starts) == 3  # three waves of three


def test_a_default_actor_runs_one_call_at_a_time() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    host.run()
    for i in range(4):
        host.call(actor, duration=1.0, name=f"m{i}")
    host.run(until=host.now + 0.5)
    assert _running_calls(host) == 1


def test_the_pipeline_adds_to_max_concurrency() -> None:
    host = FakeHost(nodes=1, config=CoreConfig(actor_pipeline=4))
    actor = host.create_actor(max_concurrency=2)
    host.run()
    for i in range(10):
        host.call(actor, duration=1.0, name=f"m{i}")
    host.run(until=host.now + 0.5)
    assert _running_calls(host) == 2 + 4 - 1


def test_more_concurrency_finishes_an_actor_bound_workload_sooner() -> None:
    ends = {}
    for limit in (1, 4):
        host = FakeHost(nodes=1)
        actor = host.create_actor(max_concurrency=limit)
        host.run()
        start = host.now
        for i in range(8):
            host.call(actor, duration=1.0, name=f"m{i}")
        host.run()
        ends[limit] = host.now - start
    assert ends[4] < ends[1] / 3


def test_a_call_is_retried_on_the_restarted_actor_within_max_retries() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(max_restarts=1)
    host.run()
    (call,) = host.call(actor, duration=1.0, name="work", max_retries=2)
    host.run(until=host.now + 0.5)
    host.inject(0, ActorWorkerDied(actor, "killed by the test"))
    host.run()
    assert host.ready[call].error_kind is None
    assert [d.spec.name for d in host.dispatched if d.spec.kind == 2] == ["work", "work"]
    assert host.owners[0].retries == 1


def test_without_retries_a_call_fails_with_actor_died() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(max_restarts=1)
    host.run()
    (call,) = host.call(actor, duration=1.0, name="work", max_retries=0)
    host.run(until=host.now + 0.5)
    host.inject(0, ActorWorkerDied(actor, "killed by the test"))
    host.run()
    assert host.ready[call].error_kind == ERR_ACTOR_DIED


def test_retries_end_when_the_actor_is_dead_for_good() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(max_restarts=0)
    host.run()
    (call,) = host.call(actor, duration=1.0, name="work", max_retries=-1)
    host.run(until=host.now + 0.5)
    host.inject(0, ActorWorkerDied(actor, "killed by the test"))
    host.run()
    assert host.ready[call].error_kind == ERR_ACTOR_DIED
    assert host.gcs.actors[actor].state == "DEAD"


def test_retry_exceptions_retries_a_raising_call() -> None:
    host = FakeHost(nodes=1, fail_hook=lambda s: _raises(s, s.attempt < 2))
    actor = host.create_actor()
    host.run()
    kept = host.call(actor, name="flaky", max_retries=3, retry_exceptions=True)[0]
    short = host.call(actor, name="flaky", max_retries=1, retry_exceptions=True)[0]
    plain = host.call(actor, name="flaky", max_retries=3)[0]  # not retry_exceptions
    host.run()
    assert host.ready[kept].error_kind is None
    assert host.ready[short].error_kind == ERR_APPLICATION
    assert host.ready[plain].error_kind == ERR_APPLICATION


def test_later_calls_still_run_after_a_retried_one() -> None:
    host = FakeHost(nodes=1, fail_hook=lambda s: _raises(s, s.name == "a" and not s.attempt))
    actor = host.create_actor()
    host.run()
    first = host.call(actor, name="a", max_retries=1, retry_exceptions=True)[0]
    later = [host.call(actor, name=f"b{i}")[0] for i in range(3)]
    host.run()
    assert all(host.ready[o].error_kind is None for o in [first, *later])


def test_a_raising_constructor_kills_the_actor_with_its_error_as_the_cause() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(function="fail", max_restarts=3)
    (call,) = host.call(actor, name="m")
    host.run()
    error = host.ready[call].error
    assert isinstance(error, ActorError)
    assert error.cause == "application in fail" or "application" in str(error.cause)
    assert "constructor" in str(error)
    assert host.gcs.actors[actor].restarts == 0  # a constructor error is final
