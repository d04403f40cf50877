"""A connected driver's owner rebuilt on a restarted head from the lineage the driver kept, and settled once the nodes said what they hold.

The owner of a driver connected to a cluster lives on the head (see docs/design.md,
"Multi-node real mode"); when the head process dies its tables die with it. The driver
keeps, client side, the specs of its tasks whose refs it still holds (Ray's lineage,
which Ray keeps in the driver too) and, once the restarted head took it back under its
old owner index, hands them to the new `Owner` at the same address:

* `resume` puts every task back in the owner's table as held somewhere unknown (its
  returns pending; an actor call in flight under the sequence number it had);
* each node that rejoins sends the owner a ``TasksHeld`` (`on_tasks_held`): the attempts
  it holds (they simply finish later: their ``TaskDone`` reaches the same address) and,
  per actor, the next call it will accept from this owner; results that finished while
  the head was away come as the ``TaskDone`` the node kept for the owner;
* `settle`, once every node the head knew rejoined or was declared dead, decides for what
  is left: a task whose returns the object directory holds on a live node is finished
  (its values are read from there); any other task was lost with the head (queued on its
  raylet, in its scheduler, or finished with a value held inline by the dead owner and
  never fetched) and runs again, a retry within its ``max_retries`` as after a node's
  death. An actor call neither held nor finished never reached the actor when it has no
  number yet (it was in flight) or a number the actor has not accepted: it is sent now,
  its first run. One the actor accepted whose result died with the old owner cannot run
  again unless its ``max_task_retries`` allows it, and fails with ``ERR_OBJECT_LOST``
  otherwise. Until then no call of the driver's actors is sent (`held_actors`): the
  calls made meanwhile are numbered after the ones sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from runtime.core.ids import NodeId, ObjectId, TaskId
from runtime.core.messages import ACTOR_ALIVE, Command, TaskDone, TasksHeld
from runtime.core.placement import apply_strategy
from runtime.core.task import (
    ACTOR_METHOD,
    ERR_ACTOR_DIED,
    ERR_NODE_DIED,
    ERR_OBJECT_LOST,
    ResultInfo,
    TaskSpec,
)

__all__ = ["ResumeState", "on_tasks_held", "resume", "settle", "unsettled_returns"]

LOST_WITH_HEAD: Final = "its value was held by this driver's owner on the head, which died"


@dataclass(slots=True)
class ResumeState:
    """A resumed owner's tasks not yet known to be held, finished or lost."""

    unsettled: dict[TaskId, TaskSpec] = field(default_factory=dict)
    next_seqs: dict[int, int] = field(default_factory=dict)
    """Actor id -> the next call sequence number its node will accept from this owner."""
    held_actors: set[int] = field(default_factory=set)
    """Actors this owner calls whose calls wait for `settle` (their numbering is not
    known before)."""


def resume(
    owner: Any,
    specs: list[TaskSpec],
    refs: dict[ObjectId, int],
    values: dict[ObjectId, Any],
    borrowed: list[tuple[ObjectId, int]],
    next_task: TaskId,
    actor_seqs: dict[int, int],
    now: float,
    out: list[Command],
) -> None:
    """Rebuild `owner`'s tables from `specs` (the driver's lineage, any order).

    `refs`: the handles the driver holds to each return (absent: none; such a return is
    kept only while its task is pending or its lineage is needed). `borrowed`: objects of
    other owners the driver holds, with their owners' addresses (borrowed again first:
    specs may take them). `values`: inline values the driver fetched (opaque payloads,
    sized by ``len``): a task whose every return is there is finished at once. An argument neither produced by the lineage nor borrowed (a
    ``put`` whose value lived in the dead head's store) is an object lost with the head.
    `next_task`: no task id below it is handed out again; `actor_seqs`: the last call
    sequence number the driver was given per actor.
    """
    from runtime.core.owner import FAILED, INFLIGHT, SUBMITTED, OwnedObject

    state = owner.resume_state = ResumeState()
    objects = owner.objects
    for oid, owner_addr in borrowed:
        owner.borrow(oid, owner_addr, now, out)
    ordered = sorted(specs, key=lambda s: s.task_id)
    for spec in ordered:
        for oid in spec.return_ids():
            objects[oid] = OwnedObject()
    for spec in ordered:
        spec.owner, spec.owner_node = owner.addr, owner.node
        if spec.strategy is not None:
            apply_strategy(spec)
        spec.submitted_at = spec.since = now
        for ref in (*spec.arg_refs, *spec.held_refs):
            obj = objects.get(ref)
            if obj is None:
                obj = objects[ref] = OwnedObject(
                    state=FAILED, refs=0, error_kind=ERR_OBJECT_LOST, error=LOST_WITH_HEAD
                )
            obj.task_refs += 1
        owner.pending[spec.task_id] = spec
        state.unsettled[spec.task_id] = spec
        if spec.kind == ACTOR_METHOD:
            owner.attach_actor(spec.actor_id, out)
            state.held_actors.add(spec.actor_id)
            handle = owner.actors[spec.actor_id]
            spec.owner_state = INFLIGHT  # as far as this owner knows: settled later
            if not spec.seq:  # in flight when the head died: numbered at `settle`
                spec.seq = -spec.task_id
            if handle.inflight is None:
                handle.inflight = {}
            handle.inflight[spec.seq] = spec
            handle.seq = max(handle.seq, spec.seq)
        else:
            spec.owner_state = SUBMITTED
    for actor_id, seq in actor_seqs.items():
        owner.attach_actor(actor_id, out)
        state.held_actors.add(actor_id)
        handle = owner.actors[actor_id]
        handle.seq = max(handle.seq, seq)
    ids = owner.ids
    ids._next = max(ids._next, next_task)
    for spec in ordered:
        returns = spec.return_ids()
        if returns and all(oid in values for oid in returns):
            results = [ResultInfo(oid, len(values[oid]), False, values[oid]) for oid in returns]
            owner.handle(TaskDone(spec.task_id, -1, results), now, out)
            state.unsettled.pop(spec.task_id, None)
    for spec in ordered:
        for oid in spec.return_ids():
            obj = objects[oid]
            obj.refs = max(0, refs.get(oid, 0))
            if obj.refs == 0:
                owner._maybe_free(oid, obj, out)


def on_tasks_held(owner: Any, msg: TasksHeld, now: float, out: list[Command]) -> None:
    """A rejoined node holds these attempts of `owner`'s tasks: they are not lost."""
    state = owner.resume_state
    if state is None:
        return  # not resumed, or settled already: the node's tasks report as usual
    state.next_seqs.update(msg.next_seqs)
    for task_id, attempt, seq in msg.tasks:
        spec = state.unsettled.pop(task_id, None)
        if spec is None or owner.pending.get(task_id) is not spec:
            continue
        spec.attempt, spec.node = attempt, msg.node
        if spec.kind == ACTOR_METHOD and seq != spec.seq:
            handle = owner.actors[spec.actor_id]
            if handle.inflight is not None and handle.inflight.get(spec.seq) is spec:
                del handle.inflight[spec.seq]
            spec.seq = seq
            handle.inflight = dict(sorted({**(handle.inflight or {}), seq: spec}.items()))
            handle.seq = max(handle.seq, seq)


def unsettled_returns(owner: Any) -> list[ObjectId]:
    """The return ids of the resumed tasks not yet known held or finished (the host looks
    them up in the object directory before `settle`)."""
    state = owner.resume_state
    if state is None:
        return []
    return [
        oid
        for tid, spec in state.unsettled.items()
        if owner.pending.get(tid) is spec and spec.kind != ACTOR_METHOD
        for oid in spec.return_ids()
    ]


def settle(
    owner: Any,
    stored: dict[ObjectId, tuple[NodeId, int]],
    alive: set[NodeId],
    now: float,
    out: list[Command],
) -> tuple[int, int]:
    """Every node rejoined or was declared dead: finish, re-run or fail what is unsettled.

    `stored` maps return ids to ``(node, size)`` where the object directory holds them on
    a live node; `alive`: the live nodes. Returns ``(finished from the directory, run
    again)``; calls sent again for the first time count in neither.
    """
    from runtime.core.owner import FAILED, PENDING, WAITING_ARGS

    state = owner.resume_state
    if state is None:
        return 0, 0
    finished = rerun = 0
    objects = owner.objects
    calls: dict[int, list[TaskSpec]] = {}
    for tid, spec in sorted(state.unsettled.items()):
        if owner.pending.get(tid) is not spec:
            continue  # its TaskDone came meanwhile
        if spec.kind == ACTOR_METHOD:
            calls.setdefault(spec.actor_id, []).append(spec)
            continue
        returns = spec.return_ids()
        if returns and all(oid in stored for oid in returns):
            node = stored[returns[0]][0]
            results = [ResultInfo(oid, stored[oid][1], True) for oid in returns]
            owner.handle(TaskDone(tid, node, results), now, out)
            finished += 1
            continue
        if not owner._should_retry(spec, ERR_NODE_DIED):
            error = f"task {spec.name}: lost with the head, and its max_retries is spent"
            owner._finish_failed(spec, ERR_NODE_DIED, error, now, out)
            continue
        rerun += 1
        owner.retries += 1
        spec.attempt += 1
        spec.node = -1
        spec.since = now
        failed = next((objects[r] for r in spec.arg_refs if objects[r].state == FAILED), None)
        if failed is not None:
            owner._finish_failed(spec, failed.error_kind, failed.error, now, out)
            continue
        waiting = [r for r in spec.arg_refs if objects[r].state == PENDING]
        if waiting:
            for ref in waiting:
                obj = objects[ref]
                if obj.dependents is None:
                    obj.dependents = []
                obj.dependents.append(spec)
            spec.owner_state = WAITING_ARGS
            owner._blocked[tid] = len(waiting)
        else:
            owner._send(spec, out)
    for actor_id in sorted(state.held_actors):
        rerun += _settle_calls(owner, state, actor_id, calls.get(actor_id, []), alive, now, out)
    owner.resume_state = None
    for actor_id in sorted(state.held_actors):
        owner._flush_actor(actor_id, out)
    return finished, rerun


def _settle_calls(
    owner: Any,
    state: ResumeState,
    actor_id: int,
    lost: list[TaskSpec],
    alive: set[NodeId],
    now: float,
    out: list[Command],
) -> int:
    """Send again the calls of one actor that never reached it, numbered after what it
    accepted, then the calls made since the resume; fail (or retry) the others. Returns
    the calls run again as retries."""
    from runtime.core.owner import UNSENT

    handle = owner.actors[actor_id]
    nxt = state.next_seqs.get(actor_id, 1)  # absent: it accepted nothing from us
    reachable = handle.state == ACTOR_ALIVE and handle.node in alive
    resend: list[TaskSpec] = []
    retried = 0
    for spec in lost:
        if handle.inflight is not None:
            handle.inflight.pop(spec.seq, None)
        if reachable and (spec.seq < 0 or spec.seq >= nxt):
            resend.append(spec)  # the actor never got it: its first run
            continue
        if handle.sent_to:
            handle.sent_to.pop(spec.task_id, None)
        budget = spec.max_retries < 0 or spec.attempt < spec.max_retries
        if reachable and budget:  # it ran, its result is gone: ``max_task_retries`` allows
            spec.attempt += 1  # running it again
            owner.retries += 1
            retried += 1
            resend.append(spec)
            continue
        if not reachable and owner._retry_call(spec, ERR_ACTOR_DIED, None, out):
            retried += 1  # the actor died with the head: as for any actor death
            continue
        kind = ERR_OBJECT_LOST if reachable else ERR_ACTOR_DIED
        error = f"actor call {spec.name}: {LOST_WITH_HEAD}, and it may not run again"
        owner._finish_failed(spec, kind, error, now, out)
    later = [s for s in handle.unsent or () if s.task_id in owner.pending]
    seq = max(nxt, max(handle.inflight or (0,), default=0) + 1)
    for spec in [*resend, *later]:
        spec.seq = seq
        spec.owner_state = UNSENT
        seq += 1
    handle.seq = seq - 1
    handle.unsent = [*resend, *later]
    return retried
