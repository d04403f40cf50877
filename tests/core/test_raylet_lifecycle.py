"""The raylet's explicit task lifecycle: states, checked moves, check(), and the interruption rule."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.config import CoreConfig
from runtime.core.invariants import InvariantError
from runtime.core.messages import (
    INTERRUPT_CANCELLED,
    INTERRUPT_KILLED,
    INTERRUPT_UNSTARTED,
    WorkerBlocked,
    WorkerInterrupted,
    WorkerUnblocked,
)
from runtime.core.raylet import (
    BLOCKED,
    DONE,
    ENTRY_STATES,
    FETCHING,
    HELD_IN,
    QUEUED,
    RUNNING,
    STATES,
    TRANSITIONS,
)
from runtime.core.task import ERR_ACTOR_DIED, ERR_APPLICATION, ERR_CANCELLED, ERR_WORKER_DIED
from tests.core.fake_host import FakeHost

MB = 1 << 20


def test_the_table_names_every_state_and_only_known_ones() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert all(targets <= set(STATES) for targets in TRANSITIONS.values())
    assert set(STATES) >= ENTRY_STATES and DONE not in ENTRY_STATES
    assert set(HELD_IN) == set(STATES) - {DONE}


def test_a_task_goes_queued_running_blocked_running_done() -> None:
    host = FakeHost(nodes=1, cpus=1)
    raylet = host.raylets[0]
    (a,) = host.submit(duration=1.0, name="a")
    (b,) = host.submit(duration=1.0, name="b")
    host.run(until=host.now + 0.1)
    assert raylet.task_state(a >> 8) == RUNNING and raylet.task_state(b >> 8) == QUEUED
    assert "queued on node 0" in raylet.explain(b >> 8)
    host.inject(0, WorkerBlocked(a >> 8))
    assert raylet.task_state(a >> 8) == BLOCKED and raylet.task_state(b >> 8) == RUNNING
    host.inject(0, WorkerUnblocked(a >> 8))
    assert raylet.task_state(a >> 8) == RUNNING
    host.run()
    assert raylet.task_state(a >> 8) is None and raylet.task_state(b >> 8) is None
    assert host.ready[a].error_kind is None and raylet.explain(a >> 8) == "not known to node 0"


def test_a_task_pulling_its_input_is_fetching() -> None:
    host = FakeHost(nodes=2, transfer_time=1.0, extra_resources={1: {"B": 1.0}})
    (a,) = host.submit(node=0, output_sizes=(2 * MB,), name="a", resources={"CPU": 1.0})
    host.run()
    (b,) = host.submit(node=0, arg_refs=(a,), name="b", resources={"B": 1.0})
    host.run(until=host.now + 0.5)
    raylet = host.raylets[1]
    assert raylet.task_state(b >> 8) == FETCHING
    assert "waiting on node 1 for inputs" in raylet.explain(b >> 8)
    host.run()
    assert host.ready[b].error_kind is None


def test_check_catches_a_task_in_two_containers() -> None:
    host = FakeHost(nodes=1, cpus=1)
    host.submit(duration=1.0)
    (b,) = host.submit(duration=1.0)
    host.run(until=host.now + 0.1)
    raylet = host.raylets[0]
    raylet.check()
    queued = next(iter(raylet.queues.values()))[0]
    raylet.running[queued.task_id] = queued  # corrupt: queued and running at once
    with pytest.raises(InvariantError, match="in state 'queued' is in"):
        raylet.check()
    del raylet.running[queued.task_id]
    raylet.check()
    del b


def test_check_catches_resources_that_do_not_add_up() -> None:
    host = FakeHost(nodes=1, cpus=2)
    host.submit(duration=1.0)
    host.run(until=host.now + 0.1)
    raylet = host.raylets[0]
    raylet.check()
    raylet.available["CPU"] += 1.0  # a leak: more free than total - running
    with pytest.raises(InvariantError, match="available CPU"):
        raylet.check()


def test_check_catches_a_pin_nobody_holds_and_a_lost_task() -> None:
    host = FakeHost(nodes=1)
    out: list[Any] = []
    oid = host.owners[0].put(2 * MB, None, True, host.now, out)
    host._effect(out)
    host.run()
    raylet = host.raylets[0]
    raylet.store.pin(oid)
    with pytest.raises(InvariantError, match="pin"):
        raylet.check()
    raylet.store.unpin(oid)
    raylet.check()
    (a,) = host.submit(duration=1.0)
    host.run(until=host.now + 0.1)
    del raylet.running[a >> 8]  # held but in no container
    with pytest.raises(InvariantError, match="nowhere"):
        raylet.check()


def test_check_mode_refuses_a_move_outside_the_table() -> None:
    host = FakeHost(nodes=1, config=CoreConfig(check_transitions=True))
    (a,) = host.submit(duration=1.0)
    host.run(until=host.now + 0.1)
    raylet = host.raylets[0]
    spec = raylet.held[a >> 8]
    with pytest.raises(InvariantError, match="cannot go from running to queued"):
        raylet._move(spec, QUEUED)


def test_an_interrupted_body_ends_by_the_cores_rule() -> None:
    host = FakeHost(nodes=1, cpus=2)
    (a,) = host.submit(duration=5.0, name="a")
    (b,) = host.submit(duration=5.0, name="b", max_retries=0)
    host.run(until=host.now + 0.1)
    host.interrupted.update({a >> 8, b >> 8})  # the fake host never ends these bodies
    host.inject(0, WorkerInterrupted(a >> 8, INTERRUPT_CANCELLED))
    host.inject(0, WorkerInterrupted(b >> 8, INTERRUPT_KILLED, "worker killed (test)"))
    host.run()
    assert host.ready[a].error_kind == ERR_APPLICATION
    assert "KeyboardInterrupt" in str(host.ready[a].error)
    assert host.ready[b].error_kind == ERR_WORKER_DIED  # no retries left: it failed
    assert "worker killed (test)" in str(host.ready[b].error)
    assert host.raylets[0].task_state(b >> 8) is None


def test_an_unstarted_interruption_cancels_and_a_bad_cause_is_refused() -> None:
    host = FakeHost(nodes=1, cpus=1)
    (a,) = host.submit(duration=5.0, name="a", max_retries=0)
    host.run(until=host.now + 0.1)
    host.interrupted.add(a >> 8)
    host.inject(0, WorkerInterrupted(a >> 8, INTERRUPT_UNSTARTED))
    host.run()
    assert host.ready[a].error_kind == ERR_CANCELLED
    with pytest.raises(ValueError, match="unknown cause 'nope'"):
        host.inject(0, WorkerInterrupted(1, "nope"))


def test_the_victim_of_a_worker_kill_is_the_oldest_body_not_excluded() -> None:
    host = FakeHost(nodes=1, cpus=2)
    actor = host.create_actor(resources={"CPU": 1.0})
    host.run()
    (call,) = host.call(actor, duration=5.0)
    (task,) = host.submit(duration=5.0, max_retries=0)
    host.run(until=host.now + 0.1)
    raylet = host.raylets[0]
    running = raylet.running_tasks()
    assert [r.task_id for r in running] == [call >> 8, task >> 8]
    hit = raylet.victim()
    assert hit is not None and hit.task_id == call >> 8 and hit.actor_id == actor
    assert raylet.victim({call >> 8}) == running[1]
    assert raylet.victim({call >> 8, task >> 8}) is None
    host.interrupted.add(call >> 8)
    host.inject(0, WorkerInterrupted(hit.task_id, INTERRUPT_KILLED, "killed", hit.actor_id))
    host.run()
    assert host.ready[call].error_kind == ERR_ACTOR_DIED  # the actor's worker died with it
    assert host.ready[task].error_kind is None
