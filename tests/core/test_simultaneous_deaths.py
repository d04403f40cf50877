"""Two nodes dying at the same instant: an actor being restarted onto the second one is not lost."""

from __future__ import annotations

from runtime.core.placement import NodeAffinity
from tests.core.fake_host import FakeHost


def test_an_actor_restarted_onto_a_node_that_died_with_its_own_is_restarted_again() -> None:
    host = FakeHost(nodes=3, cpus=1, extra_resources={0: {"Y": 1}}, timers=True)
    # node 0 runs a task (so it looks loaded and is not chosen first) but has a CPU free
    host.submit(node=0, name="busy", duration=1000.0, resources={"Y": 1.0})
    actor = host.create_actor(max_restarts=-1, strategy=NodeAffinity(1, soft=True))
    host.run(until=1.0)
    assert host.gcs.actors[actor].state == "ALIVE" and host.gcs.actors[actor].node == 1
    host.kill_node(1)  # the actor's node ...
    host.kill_node(2)  # ... and, at the same instant, the one its restart will be sent to
    host.run(until=5.0)
    record = host.gcs.actors[actor]
    assert record.state == "ALIVE", f"the actor was lost while {record.state}"
    assert record.node == 0  # the one node left
    assert record.restarts == 2  # onto node 2 (dead on arrival), then onto node 0
    states = [e.state for e in host.actor_events if e.actor_id == actor]
    assert states[0] == "ALIVE" and states[-1] == "ALIVE"


def test_with_no_node_left_to_host_it_the_actor_dies_with_the_reason() -> None:
    host = FakeHost(nodes=3, cpus=1, extra_resources={1: {"X": 1}, 2: {"X": 1}})
    actor = host.create_actor(max_restarts=-1, resources={"X": 1.0})
    host.run(until=1.0)
    first = host.gcs.actors[actor].node
    assert host.gcs.actors[actor].state == "ALIVE" and first in (1, 2)
    host.kill_node(first)
    host.kill_node(3 - first)  # the only other node with X, at the same instant
    host.run(until=5.0)
    record = host.gcs.actors[actor]
    assert record.state == "DEAD", f"the actor was lost while {record.state}"
    assert "X" in str(record.error)
