"""Worker prefetch driven by the fake host: tasks handed ahead of resources, taken over exactly."""

from __future__ import annotations

from runtime.core.config import CoreConfig
from runtime.core.messages import CancelTask, Unassigned
from tests.core.fake_host import FakeHost


def _host(**kw) -> FakeHost:
    return FakeHost(nodes=1, cpus=2, config=CoreConfig(worker_prefetch=2), **kw)


def test_queued_tasks_are_prefetched_and_take_over_resources_without_a_round_trip() -> None:
    host = _host()
    refs = [host.submit(name=f"t{i}", duration=1.0)[0] for i in range(6)]
    raylet = host.raylets[0]
    host.run(until=host.now + 0.5)
    assert len(raylet.running) == 2 and len(raylet.ahead) == 2 and raylet.queued == 2
    host.run()
    assert all(host.ready[r].error_kind is None for r in refs)
    assert not raylet.ahead and not raylet.running and raylet.available == {"CPU": 2.0}
    # back to back: 6 one-second tasks on 2 CPUs end at 3 s (plus message latency only)
    assert host.now < 3.1
    assert [d.spec.name for d in host.dispatched] == [f"t{i}" for i in range(6)]


def test_a_prefetched_task_handed_back_runs_normally() -> None:
    host = _host()
    host.refuse_prefetch = True
    refs = [host.submit(name=f"t{i}", duration=1.0)[0] for i in range(5)]
    host.run()
    assert all(host.ready[r].error_kind is None for r in refs)
    assert not host.raylets[0].ahead and host.raylets[0].queued == 0


def test_cancelling_a_prefetched_task_takes_it_back() -> None:
    host = _host()
    refs = [host.submit(name=f"t{i}", duration=1.0)[0] for i in range(4)]
    victim = refs[2]
    host.run(until=host.now + 0.5)
    assert victim >> 8 in host.raylets[0].ahead
    out: list = []
    host.owners[0].cancel(victim, False, host.now, out)
    host._effect(out)
    host.run()
    assert host.ready[victim].error_kind == "cancelled"
    assert "t2" not in [d.spec.name for d in host.dispatched]
    assert all(host.ready[r].error_kind is None for r in refs if r != victim)
    assert host.raylets[0].available == {"CPU": 2.0}


def test_prefetch_is_off_by_default() -> None:
    host = FakeHost(nodes=1, cpus=2)
    for i in range(5):
        host.submit(name=f"t{i}", duration=1.0)
    host.run(until=host.now + 0.5)
    assert not host.raylets[0].ahead and host.raylets[0].queued == 3


def test_a_cancelled_prefetched_task_handed_back_is_dropped_not_rerun() -> None:
    host = _host()
    refs = [host.submit(name=f"t{i}", duration=1.0)[0] for i in range(4)]
    host.run(until=host.now + 0.5)
    raylet = host.raylets[0]
    victim = refs[3]
    tid = victim >> 8
    assert tid in raylet.ahead
    ignored: list = []  # the host's CancelRunning is lost: it hands the task back instead
    raylet.handle(CancelTask(tid, False, 0), host.now, ignored)
    host.prefetched[0] = [d for d in host.prefetched[0] if d.spec.task_id != tid]
    host.inject(0, Unassigned(tid))
    host.run()
    assert host.ready[victim].error_kind == "cancelled"
    assert "t3" not in [d.spec.name for d in host.dispatched]
    assert raylet.available == {"CPU": 2.0} and not raylet.ahead and not raylet.queued
