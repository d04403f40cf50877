"""Actor checkpoints: when an actor's state is saved, what a restart restores, which calls it replays.

An actor created with a `CheckpointPlan` (``TaskSpec.checkpoint``) is recoverable the
way the Ray paper's actors are (Moritz et al., OSDI 2018, section 4.2.3): its state is
rebuilt on restart by restoring the last checkpoint and replaying the calls that
finished after it. The three components each do one part, all decided here:

* the **raylet** hosting the actor counts its finished calls; after every ``every`` of
  them it stops dispatching, and once none is running it asks the host to save the state
  (``SaveCheckpoint``); the host answers ``CheckpointSaved`` and the raylet tells the GCS
  (``ActorCheckpointed``: the state and, per caller, the last call it includes);
* the **GCS** keeps the last checkpoint in the actor's plan (the creation spec it
  resubmits on restart carries it, so the new worker restores it) and tells the callers;
* each **owner** keeps a replay log of its finished calls that no checkpoint includes
  (their arguments stay referenced); when the actor restarts it resubmits them, in order
  and ahead of its other calls, as replays whose return values are discarded.

Calls that were running when the actor died are retried as usual (``max_task_retries``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runtime.core.messages import ActorCheckpointed, CheckpointSaved, SaveCheckpoint, Send
from runtime.core.task import GEN_NONE, TaskSpec

if TYPE_CHECKING:
    from runtime.core.gcs import Gcs
    from runtime.core.owner import ActorHandleState, Owner
    from runtime.core.raylet import LocalActor, Raylet

__all__ = [
    "dispatch_room",
    "call_finished",
    "on_checkpoint_saved",
    "gcs_on_checkpointed",
    "owner_on_checkpointed",
    "log_call",
    "replays_for_restart",
]


# -- raylet ---------------------------------------------------------------------------------


def dispatch_room(actor: LocalActor) -> int:
    """How many calls the raylet may have in flight on a checkpointed actor now: none while
    it saves, and never past the next checkpoint's boundary."""
    plan = actor.spec.checkpoint
    if plan is None or plan.every == 0:
        return actor.depth
    if actor.saving:
        return 0
    return min(actor.depth, plan.every - actor.since_checkpoint)


def call_finished(raylet: Raylet, actor: LocalActor, spec: TaskSpec, out: list[Any]) -> None:
    """A call of a checkpointed actor finished: count it; save when the interval is reached."""
    plan = actor.spec.checkpoint
    if plan is None:
        return
    actor.since_checkpoint += 1
    covered = actor.covered
    if covered.get(spec.owner, 0) < spec.seq:
        covered[spec.owner] = spec.seq
    if plan.every and actor.since_checkpoint >= plan.every and not actor.inflight:
        actor.saving = True
        out.append(SaveCheckpoint(raylet.node, spec.actor_id, actor.spec))


def on_checkpoint_saved(raylet: Raylet, msg: CheckpointSaved, now: float, out: list[Any]) -> None:
    """The host saved (or failed to save) the actor's state: tell the GCS, resume its calls."""
    actor = raylet.actors.get(msg.actor_id)
    if actor is None or not actor.saving:
        return  # the actor died (or was killed) meanwhile
    actor.saving = False
    actor.since_checkpoint = 0
    if msg.error is None:
        saved = ActorCheckpointed(msg.actor_id, dict(actor.covered), msg.state, msg.size)
        out.append(Send(raylet.gcs_addr, saved, 128 + msg.size))
    raylet.resume_actor(actor, now, out)


# -- GCS ------------------------------------------------------------------------------------


def gcs_on_checkpointed(gcs: Gcs, msg: ActorCheckpointed, now: float, out: list[Any]) -> None:
    """Keep the actor's last checkpoint (its restart restores it); tell its callers."""
    rec = gcs.actors.get(msg.actor_id)
    if rec is None or rec.spec.checkpoint is None:
        return
    plan = rec.spec.checkpoint
    rec.spec.checkpoint = replace(
        plan, state=msg.state, size=msg.size, covered=msg.covered, saves=plan.saves + 1
    )
    note = ActorCheckpointed(msg.actor_id, msg.covered)
    for addr in rec.subscribers:
        out.append(Send(addr, note, 64 + 16 * len(msg.covered)))


# -- owner ----------------------------------------------------------------------------------


def log_call(owner: Owner, handle: ActorHandleState, spec: TaskSpec) -> bool:
    """Keep a finished call in its actor's replay log; True: kept (its arguments stay
    referenced until a checkpoint includes it). Replays and generator calls are not kept."""
    if handle.log is None or spec.generator != GEN_NONE:
        return False
    if spec.task_id in owner.replaying:
        owner.replaying.discard(spec.task_id)
        original = handle.log_seq.pop(spec.task_id, None)
        if original is not None:
            handle.replay_seqs[original] = spec.seq  # the replay stands for it now
        return True  # the log already holds the original
    handle.log.append(spec)
    return True


def owner_on_checkpointed(owner: Owner, msg: ActorCheckpointed, now: float, out: list[Any]) -> None:
    """Drop the logged calls a checkpoint includes and release their arguments."""
    handle = owner.actors.get(msg.actor_id)
    if handle is None or not handle.log:
        return
    upto = msg.covered.get(owner.addr, 0)
    kept: list[TaskSpec] = []
    for spec in handle.log:
        seq = handle.replay_seqs.get(spec.task_id, spec.seq)
        if seq <= upto:
            handle.replay_seqs.pop(spec.task_id, None)
            owner.release_call_args(spec, out)
        else:
            kept.append(spec)
    handle.log = kept


def replays_for_restart(owner: Owner, handle: ActorHandleState) -> list[TaskSpec]:
    """Copies of the logged calls to run on the restarted actor, oldest first: same
    function and arguments, a new task id, no return values (the originals' stand)."""
    copies: list[TaskSpec] = []
    for spec in handle.log or ():
        copy = replace(
            spec,
            task_id=owner.new_task_id(),
            num_returns=0,
            output_sizes=(),
            attempt=spec.attempt + 1,
            node=-1,
            rstate="",
        )
        owner.replaying.add(copy.task_id)
        handle.log_seq[copy.task_id] = spec.task_id
        copies.append(copy)
    return copies
