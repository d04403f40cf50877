"""Node failures in the core: retries of lost tasks, lineage reconstruction of lost objects, actors."""

from __future__ import annotations

import pytest

from runtime.core.config import CoreConfig
from runtime.core.task import ERR_NODE_DIED, ERR_OBJECT_LOST
from tests.core.fake_host import FakeHost

BIG = 1 << 20


def _special(host: FakeHost, node: int) -> None:
    """Give ``node`` a resource no other node has, so tests can pin tasks to it."""
    host.raylets[node].total["pin"] = 100.0
    host.raylets[node].available["pin"] = 100.0
    host.gs.views[node].total["pin"] = 100.0
    host.gs._feasible.clear()


def test_tasks_running_on_a_dead_node_are_retried_elsewhere() -> None:
    host = FakeHost(nodes=3, cpus=1, config=CoreConfig(spillback_threshold=0))
    oids = [host.submit(node=0, duration=5.0, name=f"t{i}")[0] for i in range(3)]
    host.run(until=1.0)
    victim = next(n for n in (1, 2) if host.raylets[n].running)
    host.kill_node(victim)
    host.run()
    assert all(host.ready[o].error_kind is None for o in oids)
    assert all(host.ready[o].node != victim for o in oids)
    assert host.owners[0].retries >= 1
    assert victim not in host.gs.views


def test_a_task_without_retries_fails_with_node_died() -> None:
    host = FakeHost(nodes=2, cpus=1, config=CoreConfig(spillback_threshold=0))
    host.submit(node=0, duration=5.0)
    (lost,) = host.submit(node=0, duration=5.0, max_retries=0, name="fragile")
    host.run(until=1.0)
    host.kill_node(1)
    host.run()
    assert host.ready[lost].error_kind == ERR_NODE_DIED
    assert "node 1 died" in host.ready[lost].error


def test_a_lost_object_is_recomputed_from_lineage_with_its_lost_inputs() -> None:
    host = FakeHost(nodes=2)
    _special(host, 1)
    (a,) = host.submit(node=0, resources={"pin": 1.0}, name="a", output_sizes=(BIG,))
    (b,) = host.submit(node=0, resources={"pin": 1.0}, arg_refs=(a,), name="b", output_sizes=(BIG,))
    host.run()
    host.release(a)  # a's value is freed, but its lineage stays: b was computed from it
    host.run()
    assert host.owners[0].objects[a].state == 3  # FREED
    # node 1 dies; b (and a) must be recomputed where "pin" is... give node 0 the resource
    _special(host, 0)
    host.kill_node(1)
    host.run()
    assert host.owners[0].reconstructions == 2
    assert host.ready[b].error_kind is None and host.ready[b].node == 0
    names = [d.spec.name for d in host.dispatched]
    assert names == ["a", "b", "a", "b"]
    (c,) = host.submit(node=0, arg_refs=(b,), name="c")
    host.run()
    assert host.ready[c].error_kind is None
    # releasing b releases the whole lineage
    host.release(b)
    host.release(c)
    host.run()
    assert not host.owners[0].objects


def test_a_task_whose_input_died_mid_pull_waits_for_the_recomputed_input() -> None:
    host = FakeHost(nodes=3, transfer_time=1.0)
    _special(host, 1)
    _special(host, 2)
    (a,) = host.submit(node=0, resources={"pin": 1.0}, name="a", output_sizes=(BIG,))
    host.run()
    producer = host.ready[a].node
    consumer = 3 - producer  # the other "pin" node
    host.raylets[consumer].total["only"] = 1.0
    host.raylets[consumer].available["only"] = 1.0
    host.gs.views[consumer].total["only"] = 1.0
    host.gs._feasible.clear()
    (b,) = host.submit(node=0, resources={"only": 1.0}, arg_refs=(a,), name="b")
    host.run(until=host.now + 0.01)
    host.kill_node(producer)  # the pull of a fails; a is recomputed on the consumer's node
    host.run()
    assert host.ready[b].error_kind is None
    assert host.owners[0].reconstructions == 1


def test_an_object_without_lineage_budget_is_reported_lost() -> None:
    host = FakeHost(nodes=2)
    _special(host, 1)
    (a,) = host.submit(node=0, resources={"pin": 1.0}, max_retries=0, output_sizes=(BIG,))
    host.run()
    host.kill_node(1)
    host.run()
    assert host.owners[0].objects[a].error_kind == ERR_OBJECT_LOST
    assert host.ready[a].error_kind == ERR_OBJECT_LOST


def test_an_actor_on_a_dead_node_restarts_elsewhere() -> None:
    host = FakeHost(nodes=2)
    _special(host, 1)
    actor = host.create_actor(node=0, max_restarts=1, resources={"pin": 1.0})
    host.run()
    assert host.gcs.actors[actor].node == 1
    (call,) = host.call(actor, node=0, duration=10.0, name="inflight", max_retries=0)
    host.run(until=host.now + 1.0)
    _special(host, 0)
    host.kill_node(1)
    host.run()
    assert host.gcs.actors[actor].state == "ALIVE"
    assert host.gcs.actors[actor].node == 0
    assert host.ready[call].error_kind == "actor_died"
    (after,) = host.call(actor, node=0, name="after")
    host.run()
    assert host.ready[after].error_kind is None


def test_a_failure_cascade_reaching_a_released_object_twice_frees_it_once() -> None:
    # regression: the failed task's output was freed by its dependent's release of
    # arguments, then freed again by the outer resolution (KeyError in _maybe_free)
    host = FakeHost(nodes=1)
    (a,) = host.submit(function="fail", name="a")
    (b,) = host.submit(arg_refs=(a,), name="b")
    host.release(a)
    host.run()
    assert host.ready[b].error_kind == "application"
    assert a not in host.owners[0].objects


def test_an_input_recomputed_on_the_puller_node_is_used_instead_of_declared_lost() -> None:
    # regression: the pull's source died, the input was recomputed on this very node, and
    # the GCS's answer (only this node holds it) was read as "no copy left"
    from runtime.core.ids import object_id
    from runtime.core.messages import (
        Dispatch,
        LocateObject,
        ObjectLocations,
        ScheduleTask,
        Send,
        TaskFinished,
        TransferFailed,
    )
    from runtime.core.raylet import Raylet
    from runtime.core.task import DepInfo, TaskSpec

    raylet = Raylet(0, 100, 0, 1, {"CPU": 2.0}, 1 << 30)
    producer = TaskSpec(task_id=7, owner=1000, owner_node=0)
    lost = object_id(7, 1)
    consumer = TaskSpec(task_id=8, owner=1000, owner_node=0, deps=(DepInfo(lost, BIG, (1,)),))
    out: list = []
    raylet.handle(ScheduleTask(consumer), 0.0, out)
    raylet.handle(TransferFailed(lost, 1), 0.1, out)
    assert any(isinstance(c, Send) and isinstance(c.msg, LocateObject) for c in out)
    raylet.handle(ScheduleTask(producer), 0.2, out)  # lineage re-execution lands here
    raylet.handle(TaskFinished(7, [(BIG, None)]), 0.3, out)
    dispatched = [c.spec.task_id for c in out if isinstance(c, Dispatch)]
    assert dispatched == [7, 8]  # the consumer ran as soon as its input was computed here
    out.clear()
    raylet.handle(ObjectLocations(lost, [0]), 0.4, out)  # the late answer changes nothing
    assert out == []


@pytest.mark.unchecked_raylets  # the forged report leaves the task running on node 0 too
def test_a_task_told_its_input_is_lost_while_the_owner_sees_it_ready_is_sent_again() -> None:
    # regression: the GCS, backlogged, had not yet registered a recomputed copy and
    # answered "no copy"; the owner saw every input ready and failed the task for good
    from runtime.core.messages import TaskDone

    host = FakeHost(nodes=2)
    (a,) = host.submit(node=0, name="a", output_sizes=(BIG,))
    host.run()
    (b,) = host.submit(node=0, arg_refs=(a,), duration=5.0, name="b")
    host.run(until=host.now + 0.5)
    out: list = []
    host.owners[0].handle(TaskDone(b >> 8, 1, [], ERR_OBJECT_LOST, "no copy"), host.now, out)
    host._effect(out)
    host.run()
    assert host.ready[b].error_kind is None
    assert host.owners[0].retries == 1
