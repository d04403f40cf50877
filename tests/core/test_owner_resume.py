"""A driver's owner rebuilt from its lineage after a head restart, then settled (`runtime.core.owner_resume`)."""

from __future__ import annotations

from typing import Any

from runtime.core import owner_resume
from runtime.core.ids import object_id
from runtime.core.messages import (
    ACTOR_ALIVE,
    ActorUpdate,
    ObjectReady,
    Send,
    SubmitActorTask,
    SubmitTask,
    TaskDone,
    TasksHeld,
)
from runtime.core.owner import Owner
from runtime.core.task import (
    ACTOR_METHOD,
    ERR_NODE_DIED,
    ERR_OBJECT_LOST,
    ResultInfo,
    TaskSpec,
)

ADDR, RAYLET, GCS = 100, 2, 0
WORKER_NODE, ACTOR = 1, 77
ACTOR_ADDR = 1 << 32


def _owner() -> Owner:
    return Owner(ADDR, 0, 1, RAYLET, GCS)


def _task(n: int, *args: int, max_retries: int = 3) -> TaskSpec:
    return TaskSpec(
        task_id=(1 << 40) | n, owner=-1, owner_node=-1, name=f"t{n}",
        arg_refs=tuple(args), max_retries=max_retries,
    )  # fmt: skip


def _call(n: int, seq: int, max_retries: int = 0) -> TaskSpec:
    spec = _task(n, max_retries=max_retries)
    spec.kind, spec.actor_id, spec.seq, spec.resources = ACTOR_METHOD, ACTOR, seq, {}
    return spec


def _sent(out: list[Any], kind: type) -> list[Any]:
    return [c.msg.spec for c in out if isinstance(c, Send) and isinstance(c.msg, kind)]


def _ready(out: list[Any]) -> dict[int, ObjectReady]:
    return {c.oid: c for c in out if isinstance(c, ObjectReady)}


def test_held_stored_lost_and_fetched_tasks_are_settled_apart() -> None:
    owner = _owner()
    held, stored, lost, fetched = _task(1), _task(2), _task(3), _task(4)
    chained = _task(5, object_id(lost.task_id, 1))  # takes the lost task's value
    out: list[Any] = []
    specs = [held, stored, lost, fetched, chained]
    refs = {object_id(s.task_id, 1): 1 for s in specs}
    values = {object_id(fetched.task_id, 1): b"16"}
    owner_resume.resume(owner, specs, refs, values, [], 0, {}, 0.0, out)
    owner.check()
    assert not _sent(out, SubmitTask)  # nothing goes out before the nodes said
    assert _ready(out)[object_id(fetched.task_id, 1)].result.payload == b"16"
    owner.handle(TasksHeld(WORKER_NODE, [(held.task_id, 0, 0)], {}), 1.0, out)
    out.clear()
    directory = {object_id(stored.task_id, 1): (WORKER_NODE, 300 << 10)}
    finished, rerun = owner_resume.settle(owner, directory, {0, WORKER_NODE}, 2.0, out)
    owner.check()
    assert (finished, rerun) == (1, 2)  # the stored one found; the lost one and its consumer
    assert [s.task_id for s in _sent(out, SubmitTask)] == [lost.task_id]  # the consumer waits
    assert lost.attempt == 1 and owner.retries == 2
    ready = _ready(out)[object_id(stored.task_id, 1)]
    assert ready.result.stored and ready.node == WORKER_NODE
    assert owner.pending_task(held.task_id) is held  # still running on the worker node
    out.clear()
    result = ResultInfo(object_id(lost.task_id, 1), 2, False, b"9")
    owner.handle(TaskDone(lost.task_id, WORKER_NODE, [result]), 3.0, out)
    assert [s.task_id for s in _sent(out, SubmitTask)] == [chained.task_id]
    assert chained.attempt == 1  # it may have run before: counted as a retry
    owner.check()


def test_a_lost_task_without_retries_fails_and_its_result_came_meanwhile_counts() -> None:
    owner = _owner()
    spent, late = _task(1, max_retries=0), _task(2, max_retries=0)
    out: list[Any] = []
    refs = {object_id(s.task_id, 1): 1 for s in (spent, late)}
    owner_resume.resume(owner, [spent, late], refs, {}, [], 0, {}, 0.0, out)
    result = ResultInfo(object_id(late.task_id, 1), 1, False, b"x")
    owner.handle(TaskDone(late.task_id, WORKER_NODE, [result]), 1.0, out)  # kept by the node
    out.clear()
    assert owner_resume.settle(owner, {}, {0, WORKER_NODE}, 2.0, out) == (0, 0)
    ready = _ready(out)
    assert ready[object_id(spent.task_id, 1)].error_kind == ERR_NODE_DIED
    assert object_id(late.task_id, 1) not in ready  # answered already, not run again
    assert not _sent(out, SubmitTask)
    owner.check()


def test_actor_calls_go_again_only_if_the_actor_never_accepted_them() -> None:
    owner = _owner()
    accepted, unsent, in_flight = _call(1, 1), _call(2, 2), _call(3, 0)  # 0: no reply came
    specs = [accepted, unsent, in_flight]
    out: list[Any] = []
    refs = {object_id(s.task_id, 1): 1 for s in specs}
    owner_resume.resume(owner, specs, refs, {}, [], 1 << 40 | 100, {ACTOR: 2}, 0.0, out)
    owner.handle(ActorUpdate(ACTOR, ACTOR_ALIVE, WORKER_NODE, ACTOR_ADDR), 0.5, out)
    later = _call(50, 0)  # the program calls the actor before the owner settled
    later.seq = 0
    owner.submit(later, 0.6, out)
    assert not _sent(out, SubmitActorTask)  # held until the numbering is known
    owner.check()
    owner.handle(TasksHeld(WORKER_NODE, [], {ACTOR: 2}), 1.0, out)  # it accepted call 1
    out.clear()
    owner_resume.settle(owner, {}, {0, WORKER_NODE}, 2.0, out)
    sent = _sent(out, SubmitActorTask)
    assert [(s.task_id, s.seq) for s in sent] == [
        (unsent.task_id, 2), (in_flight.task_id, 3), (later.task_id, 4)
    ]  # fmt: skip
    assert _ready(out)[object_id(accepted.task_id, 1)].error_kind == ERR_OBJECT_LOST
    owner.check()
    assert owner.new_task_id() >= 1 << 40 | 100  # ids the old owner gave are not given again
