"""Speculative execution in the core: a straggler gets a backup copy on another node, the first copy wins."""

from __future__ import annotations

import pytest

from runtime.core.config import CoreConfig
from runtime.core.messages import CancelTask, Dispatch, Send, SetTimer
from runtime.core.placement import AvoidNodes, NodeAffinity
from runtime.core.speculation import (
    SPECULATION_TIMER,
    SpeculationError,
    SpeculationPolicy,
    eligible,
    quantile_of,
)
from runtime.core.task import ERR_WORKER_DIED, TaskSpec
from tests.core.fake_host import FakeHost

POLICY = SpeculationPolicy(multiplier=2.0, budget=1, min_samples=3)


def cluster(nodes: int, cpus: float, **fields: object) -> FakeHost:
    """A fake cluster with timers, reporting every second (fewer events to check); a task
    that cannot start at once is spilled."""
    config = CoreConfig(report_interval=1.0, spillback_threshold=0)
    return FakeHost(nodes=nodes, cpus=cpus, timers=True, config=config, **fields)


def warm(host: FakeHost, n: int = 3) -> None:
    """Run `n` quick tasks of function "work" on node 1 so the policy has a median (1 s)."""
    for _ in range(n):
        host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=host.now + 5.0)


def backups(host: FakeHost) -> list[Dispatch]:
    return [d for d in host.dispatched if isinstance(d.spec.strategy, AvoidNodes)]


def test_a_straggler_is_backed_up_elsewhere_and_the_backup_wins() -> None:
    host = cluster(2, 1)
    warm(host)
    host.slow = {0: 50.0}  # node 0 (the driver's) turns into a straggler
    start = host.now
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=start + 10.0)
    assert host.ready[ref].error_kind is None
    assert host.ready[ref].node == 1  # the backup's result, long before 50 s
    (backup,) = backups(host)
    assert backup.node == 1 and backup.spec.strategy.nodes == (0,)
    cancels = [
        c.msg for c in host.commands if isinstance(c, Send) and isinstance(c.msg, CancelTask)
    ]
    assert [(c.node, c.force) for c in cancels][-1] == (0, False)  # the loser is interrupted
    speculator = host.owners[0].speculator
    assert speculator is not None and (speculator.launched, speculator.won) == (1, 1)
    assert speculator.backups == 0 and not speculator.tasks
    host.run(until=start + 60.0)  # the interrupted copy never reports a second result
    assert host.owners[0].pending_tasks() == []


def test_no_backup_before_min_samples_or_when_off() -> None:
    host = cluster(2, 1, slow={0: 10.0})
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    (plain,) = host.submit(function="work", duration=1.0)
    host.run(until=host.now + 30.0)
    assert host.ready[ref].error_kind is None and host.ready[plain].error_kind is None
    assert backups(host) == []  # no samples yet for the first, and the second opted out
    timers = [c for c in host.commands if isinstance(c, SetTimer) and c.key == SPECULATION_TIMER]
    assert timers == []


def test_the_budget_bounds_backups_running_at_once() -> None:
    host = cluster(3, 2)
    warm(host)
    host.slow = {0: 10.0, 2: 10.0}  # two slow nodes out of three
    refs = [host.submit(function="work", duration=1.0, speculation=POLICY)[0] for _ in range(6)]
    host.run(until=host.now + 2.5)
    speculator = host.owners[0].speculator
    assert speculator is not None and speculator.backups <= POLICY.budget
    host.run(until=host.now + 40.0)
    assert all(host.ready[r].error_kind is None for r in refs)
    assert speculator.launched >= 2  # one after the other, as the budget freed up


def test_a_failed_backup_leaves_the_primary_running() -> None:
    def kill_backups(spec: TaskSpec) -> str | None:
        return ERR_WORKER_DIED if isinstance(spec.strategy, AvoidNodes) else None

    host = cluster(2, 1)
    warm(host)
    host.slow = {0: 4.0}
    host.fail_hook = kill_backups
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=host.now + 30.0)
    assert host.ready[ref].error_kind is None and host.ready[ref].node == 0
    assert host.owners[0].retries == 0  # the backup's death was not the task's failure


def test_the_primarys_node_dying_leaves_the_task_to_its_backup() -> None:
    host = cluster(3, 1)
    warm(host)
    host.submit(function="block", duration=100.0)  # node 0 is full: the next task spills
    host.slow = {1: 10.0, 2: 10.0}
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=host.now + 2.5)
    speculator = host.owners[0].speculator
    assert speculator is not None and speculator.backups == 1
    spec = host.owners[0].pending_task(ref >> 8)
    assert spec is not None and spec.node in (1, 2)
    primary = spec.node
    host.kill_node(primary)
    host.run(until=host.now + 20.0)
    assert host.ready[ref].error_kind is None
    assert host.ready[ref].node == 3 - primary  # the backup's result
    assert host.owners[0].retries == 0  # no third copy: the backup carried on


def test_no_other_node_means_no_backup_and_no_failure() -> None:
    host = cluster(1, 2)
    warm(host)
    host.slow = {0: 5.0}
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=host.now + 30.0)
    assert host.ready[ref].error_kind is None and host.ready[ref].node == 0
    assert host.owners[0].speculator.launched == 1  # tried; unschedulable; dropped


def test_a_cluster_default_policy_applies_to_eligible_tasks_only() -> None:
    host = FakeHost(nodes=2, cpus=1, config=CoreConfig(speculation=POLICY))
    host.submit(function="work", duration=1.0)
    host.submit(function="work", duration=1.0, strategy=NodeAffinity(1))
    host.run()
    specs = {d.spec.strategy is None: d.spec for d in host.dispatched}
    assert specs[True].speculation is POLICY
    assert specs[False].speculation is None  # a node affinity: never copied elsewhere


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"multiplier": 1.0}, "speculation multiplier: expected a number > 1, got 1.0"),
        ({"quantile": 1}, "speculation quantile"),
        ({"budget": 0}, "speculation budget: expected an integer >= 1, got 0"),
        ({"min_samples": 2.5}, "speculation min_samples"),
        ({"window": 2, "min_samples": 3}, "speculation window: expected >= min_samples"),
        ({"budget": True}, "speculation budget"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(fields: dict, error: str) -> None:
    with pytest.raises(SpeculationError, match=error):
        SpeculationPolicy(**fields)


def test_option_values() -> None:
    assert SpeculationPolicy.from_value(True) == SpeculationPolicy()
    assert SpeculationPolicy.from_value(False) is None
    assert SpeculationPolicy.from_value({"budget": 3}).budget == 3
    with pytest.raises(SpeculationError, match=r"unknown field\(s\) \['k'\]"):
        SpeculationPolicy.from_value({"k": 2})
    with pytest.raises(SpeculationError, match="expected True, False, None, a dict"):
        SpeculationPolicy.from_value(2)
    assert quantile_of([5.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert eligible(TaskSpec(0, 0, 0, kind=2)) is not None
    assert eligible(TaskSpec(0, 0, 0)) is None


def test_cancelling_a_speculated_task_stops_both_copies() -> None:
    host = cluster(2, 1)
    warm(host)
    host.slow = {0: 10.0}
    (ref,) = host.submit(function="work", duration=1.0, speculation=POLICY)
    host.run(until=host.now + 2.5)
    speculator = host.owners[0].speculator
    assert speculator is not None and speculator.backups == 1
    out: list = []
    assert host.owners[0].cancel(ref, False, host.now, out)
    host._effect(out)
    host.run(until=host.now + 20.0)
    assert host.ready[ref].error_kind == "cancelled"
    cancels = {
        c.msg.node for c in host.commands if isinstance(c, Send) and isinstance(c.msg, CancelTask)
    }
    assert cancels == {0, 1}  # the primary and its backup
    assert speculator.backups == 0 and not speculator.tasks
    assert not host.raylets[0].running_tasks() and not host.raylets[1].running_tasks()
