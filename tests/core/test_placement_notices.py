"""Owners told where the global scheduler placed their tasks (`TasksPlaced`), with specs copied as between processes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from runtime.core.config import CoreConfig
from runtime.core.messages import Send, TasksPlaced
from runtime.core.task import ERR_NODE_DIED
from tests.core.fake_host import FakeHost

PIN = {2: {"pin": 1.0}, 3: {"pin": 1.0}}
"""Only nodes 2 and 3 have "pin": a task of node 1's owner needing it is placed by the scheduler."""


@dataclass
class CopyingHost(FakeHost):
    """Every message is copied on delivery, as if each component lived in its own process.

    No component then sees another's writes to a shared spec: an owner knows where its
    task went only from what it is told.
    """

    def _send(self, cmd: Send) -> None:
        self._push(self.now + self.latency, (cmd.dst, copy.deepcopy(cmd.msg)))


def _placed(host: FakeHost) -> list[TasksPlaced]:
    return [c.msg for c in host.commands if isinstance(c, Send) and isinstance(c.msg, TasksPlaced)]


def _running_on(host: FakeHost, name: str) -> int:
    return next(
        n for n, r in enumerate(host.raylets) if any(s.name == name for s in r.running.values())
    )


def test_a_task_placed_on_a_third_node_that_dies_is_retried() -> None:
    host = CopyingHost(nodes=4, cpus=1, extra_resources=PIN)
    (oid,) = host.submit(node=1, duration=5.0, resources={"pin": 1.0}, name="far")
    host.run(until=1.0)
    victim = _running_on(host, "far")
    assert victim in (2, 3)
    spec = next(iter(host.owners[1].pending.values()))
    assert spec.node == -1  # the owner's copy does not show the scheduler's placement
    host.kill_node(victim)
    host.run()
    assert host.ready[oid].error_kind is None
    assert host.ready[oid].node == 5 - victim  # the other "pin" node
    assert host.owners[1].retries == 1
    (batch,) = _placed(host)  # the dead node's batch, sent at its death
    assert batch.node == victim and [a for _, a in batch.tasks] == [0]


def test_without_retries_the_placed_task_fails_with_node_died() -> None:
    host = CopyingHost(nodes=4, cpus=1, extra_resources=PIN)
    (oid,) = host.submit(node=1, duration=5.0, resources={"pin": 1.0}, max_retries=0)
    host.run(until=1.0)
    host.kill_node(_running_on(host, ""))
    host.run()
    assert host.ready[oid].error_kind == ERR_NODE_DIED


def test_full_batches_tell_the_owner_before_any_death() -> None:
    config = CoreConfig(placement_batch=2)
    host = CopyingHost(nodes=3, cpus=4, extra_resources={2: {"pin": 4.0}}, config=config)
    oids = [host.submit(node=1, duration=5.0, resources={"pin": 1.0})[0] for _ in range(3)]
    host.run(until=1.0)
    (batch,) = _placed(host)  # two placements on node 2 filled a batch
    assert batch.node == 2 and len(batch.tasks) == 2
    nodes = sorted(s.node for s in host.owners[1].pending.values())
    assert nodes == [-1, 2, 2]  # the third waits in the next batch
    host.run()
    assert all(host.ready[o].error_kind is None for o in oids)
    assert not host.owners[1].pending


def test_a_batch_for_an_attempt_already_retried_changes_nothing() -> None:
    host = CopyingHost(nodes=4, cpus=1, extra_resources=PIN)
    (oid,) = host.submit(node=1, duration=5.0, resources={"pin": 1.0})
    host.run(until=1.0)
    owner = host.owners[1]
    spec: Any = next(iter(owner.pending.values()))
    out: list[Any] = []
    owner.handle(TasksPlaced(3, [(spec.task_id, spec.attempt + 1)]), host.now, out)
    assert spec.node == -1 and not out  # not this attempt: ignored
    owner.dead_nodes.add(7)
    owner.handle(TasksPlaced(7, [(spec.task_id, spec.attempt - 1)]), host.now, out)
    assert not out and owner.retries == 0
    host.run()
    assert host.ready[oid].error_kind is None


def test_a_task_sent_by_a_strategy_is_reported_too() -> None:
    from runtime.core.placement import NodeAffinity

    host = CopyingHost(nodes=4, cpus=1)
    affinity = NodeAffinity(node=2, soft=True)  # placed by the scheduler's strategy path
    (oid,) = host.submit(node=1, duration=5.0, strategy=affinity, name="pinned")
    host.run(until=1.0)
    assert _running_on(host, "pinned") == 2
    host.kill_node(2)
    host.run()
    assert host.ready[oid].error_kind is None and host.ready[oid].node in (0, 1, 3)
    assert host.owners[1].retries == 1
