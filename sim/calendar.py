"""The simulator's calendar: pending events by time, cheaper to pop than SimPy's tuple heap.

**The order it guarantees.** Entries pop in increasing ``(at, tie, seq)``: time first, then
the tie-break value given at the push, then the order of the pushes (``seq``, implicit).
That is exactly the order of SimPy's own calendar, a heap of ``(at, priority, eid, event)``
tuples where every push takes the next ``eid``: the host's entries carry a random tie in
[0, 1) (from its seeded stream), observers 1.0, and SimPy's events their priority (0
URGENT, 1 NORMAL, -1 for an event `StopSimulation` put back), so at equal times SimPy's
urgent events come first, then the host's in tie order, then observers and SimPy's normal
events in push order. The time an entry pops with is the very object it was pushed with
(an int stays an int).

**Why its own.** A heap of 4-tuples compares tuples (each comparison compares the times
twice, for equality then order, through generic rich comparisons): about a tenth of the
simulator's instructions. Here the heap holds bare times (one float comparison per
step), and a dict maps each pending time to its entry, ``(tie, at, event)``, or, in the
rarer case of several entries at one time, to a list of those entries in reverse pop order
(the next to pop last: a pop is ``list.pop()``; a push walks the few entries from the end
comparing ties only, or bisects past eight; an entry pushed later goes behind those of an
equal tie, so the push order needs no number). When one entry is left, it goes back to
being the bare tuple.
A time is in the heap once per entry, so every pop is one ``heappop`` and one dict pop.

Callers that inline the hot paths (the host's run loop and its sends) use `times` and
`buckets` as `push` and `pop` do; everything else calls the methods.
`CalendarEnvironment` is a SimPy environment whose own events go on a calendar, so SimPy's
events and the host's interleave in the order above.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Final

import simpy
from mypy_extensions import mypyc_attr
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, EventPriority

_WALK: Final = 8
"""Up to this many entries at one time, a push finds its place by walking from the end."""


class Calendar:
    """Pending entries popped in ``(at, tie, push order)`` order (see the module docstring)."""

    def __init__(self) -> None:
        """An empty calendar."""
        self.times: list[Any] = []
        """A heap of the pending entries' times (an equal time once per entry)."""
        self.buckets: dict[Any, Any] = {}
        """Time -> ``(tie, at, event)``, or a list of them in reverse pop order."""
        self.popped = 0
        """Entries popped so far (callers that pop inline add theirs)."""
        self.now: Any = 0
        """The current time, which whoever pops sets: a `CalendarEnvironment`'s ``_now``
        (compiled, a native attribute: cheaper to set per event than the environment's)."""

    def __len__(self) -> int:
        return len(self.times)

    def __bool__(self) -> bool:
        return bool(self.times)

    @property
    def pushed(self) -> int:
        """Entries pushed so far: popped plus pending (the engine's event count)."""
        return self.popped + len(self.times)

    def push(self, at: Any, tie: Any, event: Any) -> None:
        """Add `event` at time `at` with tie-break `tie`.

        Times and ties are typed ``Any`` so that a compiled build keeps them as the objects
        they are: an int time is not turned into a float, and one float object serves as
        the entry's time, its bucket's key and its heap item (no boxing per use).
        """
        entry: Any = (tie, at, event)  # Any: mypyc would unbox a typed tuple, losing identity
        if self.buckets.setdefault(at, entry) is not entry:
            self.tied(at, entry)
        heappush(self.times, at)

    def tied(self, at: Any, entry: tuple[Any, Any, Any]) -> None:
        """`entry` (``(tie, at, event)``) joins the entries already pending at `at`.

        The slow path of `push`: the caller has found the bucket taken and still pushes
        `at` onto `times` itself. The bucket becomes (or stays) a list in reverse pop
        order: `entry` goes behind every entry of a smaller or equal tie (those were
        pushed earlier, so pop first), ahead of those of a larger one.
        """
        buckets = self.buckets
        bucket = buckets[at]
        tie = entry[0]
        if type(bucket) is tuple:
            buckets[at] = [bucket, entry] if bucket[0] > tie else [entry, bucket]
            return
        i = len(bucket)
        e: tuple[Any, ...]  # a tuple of any length stays boxed compiled: a native [0]
        if i > _WALK:  # many at one time (e.g. a hundred drivers in step): a binary search
            # bisect_left(bucket, -tie, key=lambda e: -e[0]) written out: compiled, no call
            # per probe and no negated float made
            lo = 0
            while lo < i:
                mid = (lo + i) >> 1
                e = bucket[mid]
                if e[0] > tie:
                    lo = mid + 1
                else:
                    i = mid
        else:
            while i > 0:
                e = bucket[i - 1]
                if e[0] > tie:
                    break
                i -= 1
        bucket.insert(i, entry)

    def peek(self) -> Any:
        """The time of the next entry (``math.inf`` when none is pending, as SimPy's)."""
        times = self.times
        return times[0] if times else float("inf")

    def pop(self) -> tuple[Any, Any]:
        """Remove the next entry; return its time and event (IndexError when empty)."""
        at = heappop(self.times)
        entry = self.buckets.pop(at)
        self.popped += 1
        if type(entry) is tuple:
            return entry[1], entry[2]  # its own time (an equal int or float may differ)
        return self.untie(at, entry)

    def untie(self, at: Any, bucket: list[Any]) -> tuple[Any, Any]:
        """The first of several entries at `at` (`bucket`, just taken out of `buckets`):
        remove it and return its time and event; the others stay pending (the last one
        as its bare tuple)."""
        first: tuple[Any, ...] = bucket.pop()
        self.buckets[at] = bucket[0] if len(bucket) == 1 else bucket
        return first[1], first[2]


@mypyc_attr(native_class=False)
class CalendarEnvironment(simpy.Environment):
    """A SimPy environment whose events go on `calendar`, with the host's entries.

    ``schedule``, ``peek`` and ``step`` use the calendar (``run`` is SimPy's, on them);
    SimPy's ``_queue`` stays empty. An entry that is a tuple is a host entry: ``step``
    calls its first item's first callback with it (``entry[0][0](entry)``).
    """

    def __init__(self, initial_time: float = 0, calendar: Calendar | None = None) -> None:
        """An environment at `initial_time` on `calendar` (a new one by default).

        Its ``_now`` (what SimPy's ``now`` reads) is the calendar's ``now``: setting one
        sets the other (see `_get_now`).
        """
        self.calendar = calendar if calendar is not None else Calendar()
        super().__init__(initial_time)

    def schedule(self, event: Any, priority: EventPriority = NORMAL, delay: Any = 0) -> None:
        """Schedule `event` with `priority` after `delay` (SimPy's semantics)."""
        self.calendar.push(self._now + delay, priority, event)

    def peek(self) -> Any:
        """The time of the next scheduled event, ``inf`` when there is none."""
        return self.calendar.peek()

    def step(self) -> None:
        """Process the next event (SimPy's ``step``; a host entry runs its callback).

        Raises ``EmptySchedule`` when nothing is scheduled.
        """
        try:
            self._now, event = self.calendar.pop()
        except IndexError:
            raise EmptySchedule from None
        if type(event) is tuple:
            event[0][0](event)
            return
        callbacks, event.callbacks = event.callbacks, None
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation:
            event.callbacks = callbacks[callbacks.index(callback) + 1 :]
            self.schedule(event, EventPriority(-1))
            raise
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc


def _get_now(env: CalendarEnvironment) -> Any:
    """``CalendarEnvironment._now``: the calendar's ``now``."""
    return env.calendar.now


def _set_now(env: CalendarEnvironment, now: Any) -> None:
    env.calendar.now = now


# A property set on the class after it is made (a compiled non-native class takes no
# property in its body): SimPy's code reads and writes ``_now`` as an attribute.
setattr(CalendarEnvironment, "_now", property(_get_now, _set_now))  # noqa: B010
