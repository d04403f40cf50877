"""Speculative execution of stragglers (opt-in, owner side): a backup copy on another node, the first copy to finish wins.

The policy is MapReduce's and Spark's: when a task has run longer than ``multiplier`` times
the ``quantile`` (the median by default) of its function's recent run times, and fewer
than ``budget`` backups of this owner are running, the owner starts a backup copy of it on
another node (``AvoidNodes``). The copy that finishes first is the task's result; the
other is cancelled through the core's cancellation path (a running body is interrupted)
and whatever it reports later is discarded as a duplicate. Side effects of the body are
the user's responsibility (both copies may run some of it), as in MapReduce and Spark.

Only tasks that opted in are watched (``TaskSpec.speculation``): their raylet reports
when they start (``TaskStarted``), so the owner times them from their start, not from
their submission (queueing is not straggling). Run times are measured between those two
arrivals at the owner (both cross the same channel, so its latency cancels). The core
reads no clock: a check is a ``SetTimer`` at the earliest time a watched task would
become a straggler, with the threshold known when it started; the check recomputes it.
Everything here is per owner, so ``budget`` bounds one driver's backups at a time.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from runtime.core.ids import Address, NodeId, TaskId
from runtime.core.messages import CancelTask, Command, Send, SetTimer, SubmitTask
from runtime.core.placement import AvoidNodes, Spread
from runtime.core.task import GEN_NONE, TASK, TaskSpec

__all__ = [
    "SPECULATION_TIMER",
    "SpeculationError",
    "SpeculationPolicy",
    "Speculator",
    "eligible",
    "quantile_of",
]

SPECULATION_TIMER: Final = "speculation"
"""The owner's timer key for straggler checks."""


class SpeculationError(ValueError):
    """A speculation policy field is out of range (the message names the field)."""


@dataclass(slots=True, frozen=True)
class SpeculationPolicy:
    """When a backup copy of a straggling task is started (all fields checked when built).

    ``multiplier`` > 1: a task straggles once it has run this many times the
    ``quantile`` (0 < q < 1; 0.5: the median) of its function's last ``window`` run
    times, known once ``min_samples`` (>= 1) of them finished; at most ``budget`` (>= 1)
    backups of one owner run at once.
    """

    multiplier: float = 1.5
    quantile: float = 0.5
    budget: int = 1
    min_samples: int = 5
    window: int = 100

    def __post_init__(self) -> None:
        # values as given (Any): typed float, a compiled build would turn an int into a float
        checks: tuple[tuple[str, Any, Callable[[Any], bool], str], ...] = (
            ("multiplier", self.multiplier, lambda v: v > 1, "a number > 1"),
            ("quantile", self.quantile, lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
            ("budget", self.budget, lambda v: v >= 1, "an integer >= 1"),
            ("min_samples", self.min_samples, lambda v: v >= 1, "an integer >= 1"),
            ("window", self.window, lambda v: v >= 1, "an integer >= 1"),
        )
        for name, value, ok, expected in checks:
            integer = name in ("budget", "min_samples", "window")
            typed = isinstance(value, int) if integer else isinstance(value, int | float)
            if isinstance(value, bool) or not typed or not ok(value) or value != value:
                raise SpeculationError(f"speculation {name}: expected {expected}, got {value!r}")
        if self.window < self.min_samples:
            raise SpeculationError(
                f"speculation window: expected >= min_samples ({self.min_samples}),"
                f" got {self.window}"
            )

    @classmethod
    def from_value(cls, value: Any) -> SpeculationPolicy | None:
        """A policy from an option value: True (the defaults), False/None (off), a dict of
        fields, or a policy; anything else raises `SpeculationError`."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise SpeculationError(
                    f"speculation: unknown field(s) {unknown}; expected some of"
                    f" {sorted(cls.__dataclass_fields__)}"
                )
            return cls(**value)
        raise SpeculationError(
            "speculation: expected True, False, None, a dict of SpeculationPolicy fields or a"
            f" SpeculationPolicy, got {type(value).__name__} ({value!r})"
        )


def eligible(spec: TaskSpec) -> str | None:
    """Why `spec` cannot be speculated (None: it can): only plain, non-generator tasks
    placed by default or SPREAD have a copy that may run on any other node."""
    if spec.kind != TASK:
        return "only plain tasks are speculated, not actor creations or calls"
    if spec.generator != GEN_NONE:
        return "generator tasks are not speculated (their items would come twice)"
    if spec.strategy is not None and not isinstance(spec.strategy, Spread):
        return "tasks with a placement group or node affinity are not speculated"
    return None


def quantile_of(samples: Iterable[float], q: float) -> float:
    """The `q` quantile of `samples` (nearest rank, the lower of two middles for a median)."""
    ordered = sorted(samples)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[rank]


@dataclass(slots=True, eq=False)
class Copies:
    """A watched task: where its copies run and since when (NaN: not started yet)."""

    spec: TaskSpec
    node: NodeId
    started: float
    backup: bool = False
    """A backup copy was sent and has not ended."""
    backup_node: NodeId = -1
    backup_started: float = math.nan


class Speculator:
    """One owner's speculation state: recent run times per function, the watched tasks,
    the backups running, and the next check. ``Owner`` calls it for watched tasks only."""

    def __init__(self, owner_addr: Address, raylet_addr: Address) -> None:
        self.owner_addr = owner_addr
        self.raylet_addr = raylet_addr
        self.samples: dict[Any, deque[float]] = {}
        """Per function: its last run times (``policy.window`` of them)."""
        self.tasks: dict[TaskId, Copies] = {}
        """Watched tasks that started and have not ended."""
        self._due: list[tuple[float, TaskId]] = []
        """Heap of (when a task would straggle, task id), as estimated when it started."""
        self._unscored: list[TaskId] = []
        """Started while its function had too few samples for a threshold."""
        self._blocked: deque[TaskId] = deque()
        """Straggling while the budget was spent: backed up first when a backup ends."""
        self._armed = math.inf
        """The earliest check asked of the host (inf: none)."""
        self.backups = 0
        """Backup copies running now."""
        self.launched = 0
        """Backup copies started so far (a counter for metrics)."""
        self.won = 0
        """Tasks whose backup copy finished first (a counter for metrics)."""

    # -- events from the owner ------------------------------------------------------------

    def started(self, spec: TaskSpec, node: NodeId, now: float, out: list[Command]) -> None:
        """A copy of watched task `spec` started on `node`."""
        tid = spec.task_id
        copies = self.tasks.get(tid)
        if copies is not None and copies.backup and node != copies.node:
            copies.backup_node, copies.backup_started = node, now
            return
        if copies is None:
            copies = self.tasks[tid] = Copies(spec, node, now)
        else:  # the primary copy after a promotion, or again after a retry
            copies.node, copies.started = node, now
        spec.node = node
        threshold = self.threshold(spec)
        if threshold is None:
            self._unscored.append(tid)
            return
        self._watch(tid, now + threshold, now, out)

    def done(self, task_id: TaskId, node: NodeId, ok: bool, now: float, out: list[Command]) -> bool:
        """A copy of a watched task reported from `node` (-1: it was never placed); True:
        the report is consumed here (a copy failed while another still runs); False: the
        owner handles it as the task's end (this copy won, or it was the only one)."""
        copies = self.tasks[task_id]
        from_backup = copies.backup and node != copies.node
        if not ok and copies.backup:
            self._end_backup()
            if not from_backup:  # the primary failed: the backup carries on as the task
                copies.node, copies.started = copies.backup_node, copies.backup_started
                copies.spec.node = copies.backup_node
            copies.backup, copies.backup_node, copies.backup_started = False, -1, math.nan
            self._unblock(now, out)
            return True
        del self.tasks[task_id]
        if not ok:
            return False
        started = copies.backup_started if from_backup else copies.started
        if started == started:  # not NaN
            self._sample(copies.spec, now - started, now, out)
        if copies.backup:
            self._end_backup()
            loser = copies.node if from_backup else copies.backup_node
            self.won += from_backup
            if from_backup:
                copies.spec.node = node
            out.append(Send(self.raylet_addr, CancelTask(task_id, False, loser, exact=True), 64))
            self._unblock(now, out)
        return False

    def take_backup(self, task_id: TaskId, force: bool) -> CancelTask | None:
        """The program cancels a watched task: stop watching it; the cancellation of its
        backup copy, if one runs, for the owner to send (``exact``: the local raylet may
        hold the other copy, which the owner's own cancellation stops)."""
        copies = self.tasks.pop(task_id, None)
        if copies is None or not copies.backup:
            return None
        self._end_backup()
        return CancelTask(task_id, force, copies.backup_node, exact=True)

    def forget(self, task_id: TaskId, out: list[Command]) -> None:
        """A watched task ended at its owner (a failure decided there): stop watching it,
        and cancel its backup copy if one runs."""
        cancel = self.take_backup(task_id, False)
        if cancel is not None:
            out.append(Send(self.raylet_addr, cancel, 64))

    def node_removed(self, node: NodeId, now: float, out: list[Command]) -> None:
        """`node` died: a backup there is gone; a primary there is replaced by its backup."""
        freed = False
        for copies in self.tasks.values():
            if not copies.backup:
                continue
            if copies.backup_node == node:
                freed = True
            elif copies.node == node:
                freed = True
                copies.node, copies.started = copies.backup_node, copies.backup_started
                copies.spec.node = copies.backup_node  # not retried: its backup runs on
            else:
                continue
            copies.backup, copies.backup_node, copies.backup_started = False, -1, math.nan
            self.backups -= 1
        if freed:
            self._unblock(now, out)

    def on_timer(self, now: float, out: list[Command]) -> None:
        """A check is due: back up every watched task that straggles now, budget allowing."""
        self._armed = math.inf
        due = self._due
        while due and due[0][0] <= now:
            _, tid = heapq.heappop(due)
            copies = self.tasks.get(tid)
            if copies is None or copies.backup or copies.started != copies.started:
                continue
            threshold = self.threshold(copies.spec)
            if threshold is None:
                continue
            at = copies.started + threshold
            if at > now:
                heapq.heappush(due, (at, tid))  # the threshold grew since it started
            elif self.backups < copies.spec.speculation.budget:
                self._launch(copies, now, out)
            else:
                self._blocked.append(tid)
        if due:
            self._arm(due[0][0], now, out)

    # -- the policy ------------------------------------------------------------------------

    def threshold(self, spec: TaskSpec) -> float | None:
        """How long a copy of `spec` may run before it straggles (None: too few samples)."""
        policy: SpeculationPolicy = spec.speculation
        samples = self.samples.get(spec.function)
        if samples is None or len(samples) < policy.min_samples:
            return None
        return policy.multiplier * quantile_of(samples, policy.quantile)

    def _sample(self, spec: TaskSpec, run: float, now: float, out: list[Command]) -> None:
        policy: SpeculationPolicy = spec.speculation
        samples = self.samples.get(spec.function)
        if samples is None:
            samples = self.samples[spec.function] = deque(maxlen=policy.window)
        samples.append(run)
        if len(samples) == policy.min_samples and self._unscored:
            waiting, self._unscored = self._unscored, []
            for tid in waiting:  # their function (or another) may have a threshold now
                copies = self.tasks.get(tid)
                if copies is None:
                    continue
                threshold = self.threshold(copies.spec)
                if threshold is None:
                    self._unscored.append(tid)
                else:
                    self._watch(tid, copies.started + threshold, now, out)

    def _watch(self, tid: TaskId, at: float, now: float, out: list[Command]) -> None:
        heapq.heappush(self._due, (at, tid))
        self._arm(at, now, out)

    def _arm(self, at: float, now: float, out: list[Command]) -> None:
        if at < self._armed:
            self._armed = at
            out.append(SetTimer(self.owner_addr, max(0.0, at - now), SPECULATION_TIMER))

    def _launch(self, copies: Copies, now: float, out: list[Command]) -> None:
        """Send a backup copy of the task to the local raylet, to run on another node."""
        spec = copies.spec
        backup = replace(
            spec,
            strategy=AvoidNodes((copies.node,)),
            node=-1,
            rstate="",
            spills=0,
            reason="",
            since=now,
            instances=None,
        )
        copies.backup = True
        self.backups += 1
        self.launched += 1
        out.append(Send(self.raylet_addr, SubmitTask(backup), backup.nbytes))

    def _end_backup(self) -> None:
        self.backups -= 1

    def _unblock(self, now: float, out: list[Command]) -> None:
        """A backup ended: back up the tasks that straggled while the budget was spent."""
        blocked = self._blocked
        while blocked:
            copies = self.tasks.get(blocked[0])
            if copies is None or copies.backup:
                blocked.popleft()
                continue
            if self.backups >= copies.spec.speculation.budget:
                return
            blocked.popleft()
            self._launch(copies, now, out)
