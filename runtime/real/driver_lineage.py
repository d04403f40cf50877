"""A connected driver's lineage, kept client side: the requests that made the objects it still holds, handed to its owner again after a head restart.

Ray's owner lives in the driver, so a GCS restart loses none of the driver's tasks. A
twinray driver connected to a cluster has its owner on the head (docs/design.md,
"Multi-node real mode"); what it keeps here lets a restarted head rebuild that owner
(`runtime.real.driver_resume`, `runtime.core.owner_resume`): for every task or actor call
whose returns the program still holds (or that such a task takes as an argument, the
lineage it may be recomputed from), the request's payload, the number of handles to each
return, the small values the driver fetched (they lived only in the owner's memory), the
actor calls' sequence numbers and the highest owner-given id. Submissions go out under a
task id the driver chooses (`begin`), so one sent again after a restart is recognised.
It costs a dict entry per task submitted, dropped when the program drops its refs;
releases (which come from ``ObjectRef.__del__``, on any thread, at any time) only append
to a deque, applied under a lock by the next submission or the resume.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from runtime.core.ids import OWNER_SHIFT, RETURN_BITS, object_id, task_of
from runtime.real import requests as rq
from runtime.real.protocol import VALUE_INLINE
from runtime.real.serialization import INLINE_THRESHOLD

__all__ = ["DRIVER_TASK_BIT", "DriverLineage", "Entry"]

DRIVER_TASK_BIT = 1 << (OWNER_SHIFT - 1)
"""Set in the task ids a driver chooses (`runtime.real.driver_resume` checks it); the
owner's own counter (puts, actors) stays below."""
TASK_ID_MARGIN = 1 << 12
"""Task ids a resumed owner skips past the highest one the driver saw (tasks the old owner
made for requests whose reply never came)."""


@dataclass(slots=True)
class Entry:
    """One task or actor call of the driver, as the driver submitted it."""

    op: str
    payload: tuple
    seq: int
    handles: dict[int, int]
    """Return oid -> handles the program holds to it."""
    args: list[int] = field(default_factory=list)
    """Task ids of entries this one takes as arguments (each counts it in `dependents`)."""
    dependents: int = 0
    """Kept entries that take one of this one's returns as an argument."""
    inflight: bool = False
    """Its request is not answered yet (kept: it is sent again after a head restart)."""


class DriverLineage:
    """The lineage a connected driver keeps (see the module docstring)."""

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.events: deque[tuple[int, int]] = deque()
        """``(oid, +1 | -1)``: handles made or dropped, not yet applied."""
        self.lock = threading.Lock()
        self.high = 0
        """The highest task id this driver was given (its puts' included)."""
        self.actor_seqs: dict[int, int] = {}
        """Actor id -> the last call sequence number the owner gave this driver."""
        self._ids = itertools.count(1)
        self.values: dict[int, bytes] = {}
        """Returns of kept entries the driver fetched whose values were inline (held by
        the owner, not a store): a resumed owner has them without running the task. One
        flat dict of bytes (nothing for the cyclic collector to walk)."""

    def begin(self, op: str, payload: tuple, owner_index: int) -> tuple[str, tuple] | None:
        """A ``submit`` or ``call_actor`` about to go out: choose its task id and keep it
        (the request may be sent again, after a head restart, under the same id: its
        owner then does not submit it twice); the request to send instead, or None for
        one that is not kept (a generator)."""
        mode = payload[11] if op == rq.SUBMIT else payload[9]
        if mode:
            return None
        task_id = (owner_index << OWNER_SHIFT) | DRIVER_TASK_BIT | next(self._ids)
        refs = payload[2] if op == rq.SUBMIT else payload[3]
        n = payload[5]
        if n == 1:
            handles = {object_id(task_id, 1): 1}
        else:
            handles = {object_id(task_id, k): 1 for k in range(1, n + 1)}
        entry = Entry(op, payload, 0, handles, inflight=True)
        with self.lock:
            if self.events:
                self._apply()
            entries = self.entries
            for ref in refs:
                arg = entries.get(task_of(ref))
                if arg is not None:
                    arg.dependents += 1
                    entry.args.append(task_of(ref))
            entries[task_id] = entry
        return (rq.SUBMIT_AS if op == rq.SUBMIT else rq.CALL_AS), (task_id, payload)

    def finish(self, task_id: int, reply: Any) -> Any:
        """The request `begin` made was answered: the reply the `WorkerClient` expects
        (a call's return ids, its sequence number kept here)."""
        seq = 0
        if type(reply) is tuple:
            reply, seq = reply
        with self.lock:
            entry = self.entries.get(task_id)
            if entry is not None:
                entry.inflight = False
                if seq:
                    entry.seq = seq
                    if seq > self.actor_seqs.get(entry.payload[0], 0):
                        self.actor_seqs[entry.payload[0]] = seq
                if not any(entry.handles.values()):  # the program held none (num_returns=0)
                    self._maybe_drop(task_id)
        return reply

    def abort(self, task_id: int) -> None:
        """The request `begin` made failed: the program holds nothing of it."""
        with self.lock:
            entry = self.entries.get(task_id)
            if entry is not None:
                entry.inflight = False
                entry.handles = dict.fromkeys(entry.handles, 0)
                self._maybe_drop(task_id)

    def record(self, op: str, payload: tuple, reply: Any) -> Any:
        """A request was answered: keep what a resumed owner needs; return the reply the
        `WorkerClient` expects (an actor call's return ids without its sequence number)."""
        seq = 0
        if op == rq.CALL_ACTOR and type(reply) is tuple:
            reply, seq = reply
            actor_id = payload[0]
            if seq > self.actor_seqs.get(actor_id, 0):
                self.actor_seqs[actor_id] = seq
        if op in (rq.PUT, rq.PUT_SEAL, rq.CREATE_ACTOR):
            if op == rq.CREATE_ACTOR:
                self.high = max(self.high, int(reply[0]))  # the actor id is a task id
            elif type(reply) is int and reply:
                self.high = max(self.high, task_of(reply))
            return reply
        if op == rq.GET:
            self._keep_values(payload, reply)
            return reply
        if op not in (rq.SUBMIT, rq.CALL_ACTOR) or not reply:
            return reply
        task_id = task_of(reply[0])
        self.high = max(self.high, task_id)
        mode = payload[11] if op == rq.SUBMIT else payload[9]
        if mode:  # generators are not resumed (their items are not kept here)
            return reply
        refs = payload[2] if op == rq.SUBMIT else payload[3]
        with self.lock:
            self._apply()
            entry = Entry(op, payload, seq, dict.fromkeys(reply, 1))
            for ref in refs:
                arg = self.entries.get(task_of(ref))
                if arg is not None:
                    arg.dependents += 1
                    entry.args.append(task_of(ref))
            self.entries[task_id] = entry
        return reply

    def _keep_values(self, oids: list[int], items: Any) -> None:
        """A get answered: keep the small values of the driver's own tasks (inline in
        their owner's memory, which a head crash loses). About a microsecond a value."""
        entries, values = self.entries, self.values
        if not entries:
            return
        for oid, item in zip(oids, items or ()):
            if not item[0]:
                continue
            value = item[1]
            if value[0] != VALUE_INLINE or len(value[1]) >= INLINE_THRESHOLD:
                continue  # a stored value (read from the store), or an arena offset
            if oid >> RETURN_BITS in entries:
                values[oid] = value[1]

    def handle_made(self, oid: int) -> None:
        """The program got one more handle to `oid` (unpickled a ref it owns)."""
        if task_of(oid) in self.entries:
            self.events.append((oid, 1))

    def handle_dropped(self, oid: int) -> None:
        """A handle to `oid` was dropped (`ObjectRef.__del__`: only appends)."""
        if task_of(oid) in self.entries:
            self.events.append((oid, -1))

    def _apply(self) -> None:
        """Apply the handle events (holding the lock); drop entries nothing needs."""
        events, entries = self.events, self.entries
        while events:
            oid, delta = events.popleft()
            entry = entries.get(task_of(oid))
            if entry is None or oid not in entry.handles:
                continue
            entry.handles[oid] += delta
            self._maybe_drop(task_of(oid))

    def _maybe_drop(self, task_id: int) -> None:
        entries = self.entries
        work = [task_id]
        while work:
            tid = work.pop()
            entry = entries.get(tid)
            if entry is None or entry.dependents > 0 or entry.inflight:
                continue
            if any(n > 0 for n in entry.handles.values()):
                continue
            del entries[tid]
            if self.values:
                for oid in entry.handles:
                    self.values.pop(oid, None)
            for arg in entry.args:
                held = entries.get(arg)
                if held is not None:
                    held.dependents -= 1
                    work.append(arg)

    def resume_payload(self, borrowed: list[tuple[int, int]]) -> tuple:
        """The ``resume`` request's payload (`requests.RESUME`): submits, calls, handles
        per return, borrowed refs, the next task id to hand out, the actors' sequence
        numbers."""
        with self.lock:
            self._apply()
            submits, calls, handles = [], [], {}
            values = dict(self.values)
            for task_id, entry in self.entries.items():
                if entry.op == rq.SUBMIT:
                    submits.append((task_id, entry.payload))
                else:
                    calls.append((task_id, entry.seq, entry.payload))
                handles.update((oid, n) for oid, n in entry.handles.items() if n > 0)
            next_task = self.high + TASK_ID_MARGIN if self.high else 0
            return submits, calls, handles, values, borrowed, next_task, dict(self.actor_seqs)
