"""sim.calendar pops in exactly the order of SimPy's old heap of (at, tie, eid, event) tuples."""

from __future__ import annotations

import heapq
import itertools
import random

import pytest
import simpy
from simpy.events import NORMAL, URGENT

from sim.calendar import Calendar, CalendarEnvironment


class _Heap:
    """The reference: SimPy's calendar as the host used it (a heap of 4-tuples)."""

    def __init__(self) -> None:
        self.queue: list[tuple[float, float, int, object]] = []
        self.eid = itertools.count()

    def push(self, at: float, tie: float, event: object) -> None:
        heapq.heappush(self.queue, (at, tie, next(self.eid), event))

    def pop(self) -> tuple[float, object]:
        at, _, _, event = heapq.heappop(self.queue)
        return at, event


def _tie(rng: random.Random) -> float:
    """A tie-break as the calendar sees them: host draws, observers, SimPy priorities."""
    kind = rng.random()
    if kind < 0.15:
        return URGENT
    if kind < 0.3:
        return NORMAL
    if kind < 0.45:
        return 1.0  # an observer
    if kind < 0.5:
        return rng.choice([0.25, 0.5])  # equal host draws: push order decides
    return rng.random()


@pytest.mark.parametrize("seed", range(40))
def test_pops_in_the_old_heaps_order_with_many_ties(seed: int) -> None:
    rng = random.Random(seed)
    new, old = Calendar(), _Heap()
    now: float = 0
    steps = pushes = 0
    seen: list[tuple[float, object]] = []
    for n in range(3000):
        if new and rng.random() < 0.45:
            got, want = new.pop(), old.pop()
            assert got == want and type(got[0]) is type(want[0])
            now = got[0]
            seen.append(got)
            steps += 1
            continue
        # few distinct times, so buckets of many entries, pushed at now too (mid-bucket)
        choice = rng.random()
        if choice < 0.2:
            at = now
        elif choice < 0.3:
            at = int(now) + rng.randrange(3)  # an int equal to a float time, sometimes
        else:
            at = now + rng.randrange(1, 6) * 0.5
        tie = _tie(rng)
        event = ("e", n)
        new.push(at, tie, event)
        old.push(at, tie, event)
        pushes += 1
        assert new.peek() == old.queue[0][0] and len(new) == len(old.queue)
    while old.queue:
        assert new.pop() == old.pop()
        steps += 1
    assert not new and new.peek() == float("inf")
    assert new.pushed == pushes == steps == new.popped
    with pytest.raises(IndexError):
        new.pop()


def test_simpy_events_on_a_calendar_environment_keep_simpys_order() -> None:
    def trace(env: simpy.Environment, log: list[tuple[float, str]]) -> None:
        def proc(name: str, delays: list[float]):  # noqa: ANN202
            for d in delays:
                yield env.timeout(d)
                log.append((env.now, name))
                ev = env.event()
                ev.callbacks.append(lambda _e, name=name: log.append((env.now, name + "!")))
                ev.succeed()

        for i in range(6):
            env.process(proc(f"p{i}", [0.5, 0, 1.5, 0.5 * (i % 3)]))

    logs = []
    for env in (simpy.Environment(), CalendarEnvironment()):
        log: list[tuple[float, str]] = []
        trace(env, log)
        env.run(until=2.5)
        assert env.now == 2.5 and env.peek() >= 2.5
        env.run()
        logs.append(log)
    assert logs[0] == logs[1] and len(logs[0]) == 48


def test_host_entries_and_simpy_events_share_one_calendar() -> None:
    env = CalendarEnvironment()
    log: list[str] = []
    timeout = env.timeout(1.0)  # NORMAL: after host entries at the same time
    timeout.callbacks.append(lambda _e: log.append("simpy"))
    cbs = [lambda entry: log.append(entry[1])]
    env.calendar.push(1.0, 0.9, (cbs, "host"))
    env.calendar.push(1.0, 1.0, (cbs, "observer"))  # pushed after the timeout: after it
    env.calendar.push(0.5, 0.1, (cbs, "early"))
    env.run()
    assert log == ["early", "host", "simpy", "observer"] and env.now == 1.0


def test_the_environments_clock_is_the_calendars() -> None:
    """``env._now`` (what SimPy reads) and ``calendar.now`` (what the host sets per event)
    are one value: setting either moves both, from the initial time on."""
    env = CalendarEnvironment(initial_time=3)
    assert env.now == 3 and env.calendar.now == 3 and type(env.now) is int
    seen: list[tuple[float, float]] = []
    cbs = [lambda _entry: seen.append((env.now, env.calendar.now))]
    env.calendar.push(4.5, 0.5, (cbs, "a"))
    env.timeout(2.0).callbacks.append(lambda _e: seen.append((env.now, env.calendar.now)))
    env.run()
    assert seen == [(4.5, 4.5), (5, 5)] and env.now == 5
    env.calendar.now = 7.25
    assert env.now == 7.25 and env.peek() == float("inf")


def test_many_entries_at_one_time_pop_in_tie_then_push_order() -> None:
    """A bucket past the walking size (hundreds of drivers in step) is searched by
    bisection: the order stays the reference heap's, equal ties in push order."""
    rng = random.Random(3)
    new, old = Calendar(), _Heap()
    for n in range(400):
        tie = _tie(rng)
        new.push(2.0, tie, ("e", n))
        old.push(2.0, tie, ("e", n))
        if n % 7 == 6:  # pops between pushes: the bucket shrinks and grows again
            assert new.pop() == old.pop()
    while old.queue:
        assert new.pop() == old.pop()
    assert not new
