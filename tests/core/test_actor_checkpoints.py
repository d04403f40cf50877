"""Actor checkpoints in the core: saves every N calls, restore on restart, replay of the later calls only."""

from __future__ import annotations

from runtime.core.messages import ActorWorkerDied
from runtime.core.task import ACTOR_CREATION, ACTOR_METHOD, CheckpointPlan
from tests.core.fake_host import FakeHost


def _methods(host: FakeHost) -> list[str]:
    return [d.spec.name for d in host.dispatched if d.spec.kind == ACTOR_METHOD]


def _actor(host: FakeHost, every: int, **fields: object) -> int:
    return host.create_actor(max_restarts=2, checkpoint=CheckpointPlan(every), **fields)


def test_the_raylet_saves_after_every_n_calls_and_the_gcs_keeps_the_last() -> None:
    host = FakeHost(nodes=1)
    actor = _actor(host, 3)
    calls = [host.call(actor, duration=0.1, name=f"m{i}")[0] for i in range(10)]
    host.run()
    assert all(host.ready[c].error_kind is None for c in calls)
    assert len(host.checkpoints) == 3  # after calls 3, 6 and 9
    plan = host.gcs.actors[actor].spec.checkpoint
    assert plan is not None and plan.saves == 3
    assert plan.state == 2  # the fake host's state: saves made before this one
    assert plan.covered == {host.owners[0].addr: 9}
    handle = host.owners[0].actor_state(actor)
    assert handle is not None and [s.name for s in handle.log or ()] == ["m9"]


def test_no_call_runs_while_the_state_is_saved() -> None:
    host = FakeHost(nodes=1)
    actor = _actor(host, 2)
    for i in range(4):
        host.call(actor, duration=0.1, name=f"m{i}")
    host.run()
    # each save came after the calls before it had finished, and before the next started
    saves_at = [i for i, c in enumerate(host.checkpoints)]
    assert saves_at == [0, 1]
    assert _methods(host) == ["m0", "m1", "m2", "m3"]


def test_a_restart_restores_the_checkpoint_and_replays_only_the_later_calls() -> None:
    host = FakeHost(nodes=2)
    actor = _actor(host, 4)
    calls = [host.call(actor, duration=0.1, name=f"m{i}")[0] for i in range(10)]
    host.run()
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    assert host.gcs.actors[actor].state == "ALIVE"
    owner = host.owners[0]
    assert owner.replays == 2  # m8 and m9: m0..m7 are in the checkpoint
    assert _methods(host)[10:] == ["m8", "m9"]
    restored = [d.spec for d in host.dispatched if d.spec.kind == ACTOR_CREATION][-1]
    assert restored.checkpoint is not None and restored.checkpoint.state == 1
    assert [host.ready[c].result.payload for c in calls] == [f"value-of-m{i}" for i in range(10)]
    after = host.call(actor, duration=0.1, name="after")[0]
    host.run()
    assert host.ready[after].error_kind is None
    assert _methods(host)[-1] == "after"


def test_without_checkpoints_a_restart_replays_every_call() -> None:
    host = FakeHost(nodes=2)
    actor = _actor(host, 0)
    for i in range(6):
        host.call(actor, duration=0.1, name=f"m{i}")
    host.run()
    assert host.checkpoints == []
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    assert host.owners[0].replays == 6
    assert _methods(host)[6:] == [f"m{i}" for i in range(6)]
    # a second death replays them again (the replays stand for the originals)
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    assert host.owners[0].replays == 12


def test_a_call_running_at_the_death_is_retried_after_the_replays() -> None:
    host = FakeHost(nodes=2)
    actor = _actor(host, 2)
    for i in range(3):
        host.call(actor, duration=0.1, name=f"m{i}")
    host.run()
    (running,) = host.call(actor, duration=5.0, name="long", max_retries=1)
    host.run(until=host.now + 1.0)
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    assert host.ready[running].error_kind is None
    assert _methods(host)[3:] == ["long", "m2", "long"]


def test_replayed_calls_keep_their_arguments_until_a_checkpoint_includes_them() -> None:
    host = FakeHost(nodes=2)
    actor = _actor(host, 2)
    (arg,) = host.submit(duration=0.1, name="arg", output_sizes=(1 << 20,))
    host.call(actor, duration=0.1, name="uses", arg_refs=(arg,))
    host.release(arg)
    host.run()
    owner = host.owners[0]
    assert arg in owner.objects  # the log holds it: a restart would need it
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    assert owner.replays == 1 and _methods(host)[-1] == "uses"
    host.call(actor, duration=0.1, name="next")
    host.run()  # the second call since the restore: a checkpoint includes both
    assert arg not in owner.objects


def test_a_node_death_restarts_the_actor_elsewhere_and_replays() -> None:
    host = FakeHost(nodes=3)
    for node in (1, 2):
        host.raylets[node].total["pin"] = host.raylets[node].available["pin"] = 1.0
        host.gs.views[node].total["pin"] = 1.0
    host.gs._feasible.clear()
    actor = _actor(host, 3, resources={"pin": 1.0})
    calls = [host.call(actor, duration=0.1, name=f"m{i}", max_retries=-1)[0] for i in range(5)]
    host.run()
    first = host.gcs.actors[actor].node
    assert first in (1, 2)
    (late,) = host.call(actor, duration=5.0, name="late", max_retries=-1)
    host.run(until=host.now + 1.0)
    host.kill_node(first)
    host.run()
    assert host.gcs.actors[actor].state == "ALIVE"
    assert host.gcs.actors[actor].node == 3 - first
    assert host.owners[0].replays == 2  # m3, m4
    assert host.ready[late].error_kind is None
    assert all(host.ready[c].error_kind is None for c in calls)
