"""The serve router: power of two choices, max_ongoing_requests, the bounded FIFO queue."""

from __future__ import annotations

import random

import pytest

from runtime.core.serve import (
    ASSIGNED,
    QUEUED,
    REJECTED,
    Assignment,
    PowerOfTwoChoicesRouter,
    ServeConfigError,
)


def _router(n: int = 3, limit: int = 2, queued: int = -1, seed: int = 0):
    r = PowerOfTwoChoicesRouter(random.Random(seed), limit, queued)
    assert r.update_replicas([f"r{i}" for i in range(n)]) == []
    return r


def test_assigns_to_the_less_loaded_of_two_and_never_past_the_limit() -> None:
    r = _router(n=4, limit=3)
    for i in range(12):
        d = r.route(i)
        assert d.outcome == ASSIGNED and d.replica_id is not None
    # 12 requests on 4 replicas with room 3 each: exactly full, nobody past the limit
    assert [r.ongoing(f"r{i}") for i in range(4)] == [3, 3, 3, 3]
    assert r.route(12).outcome == QUEUED


def test_two_sampled_the_lower_count_wins() -> None:
    class Fixed:
        def __init__(self, values):
            self.values = list(values)

        def random(self):
            return self.values.pop(0)

    # n=3: first draw 0.0 -> r0, second draw 0.99 over the other two -> r2
    r = PowerOfTwoChoicesRouter(Fixed([0.0, 0.99, 0.0, 0.99]), max_ongoing_requests=5)
    r.update_replicas(["r0", "r1", "r2"])
    assert r.route("a").replica_id == "r0"  # tie: the first sampled
    assert r.route("b").replica_id == "r2"  # r0 has 1, r2 has 0


def test_spreads_load_over_many_requests() -> None:
    r = _router(n=4, limit=1000)
    for i in range(400):
        r.route(i)
    counts = [r.ongoing(f"r{i}") for i in range(4)]
    assert sum(counts) == 400 and max(counts) - min(counts) <= 2


def test_queue_is_fifo_and_drains_on_release() -> None:
    r = _router(n=1, limit=1)
    assert r.route("a").outcome == ASSIGNED
    assert r.route("b").outcome == QUEUED
    assert r.route("c").outcome == QUEUED
    assert r.queue_len == 2
    assert r.release("r0") == [Assignment("b", "r0")]
    assert r.release("r0") == [Assignment("c", "r0")]
    assert r.release("r0") == []
    assert r.total_ongoing() == 0


def test_bounded_queue_rejects() -> None:
    r = _router(n=1, limit=1, queued=1)
    assert r.route(1).outcome == ASSIGNED
    assert r.route(2).outcome == QUEUED
    assert r.route(3).outcome == REJECTED
    assert r.queue_len == 1
    zero = _router(n=1, limit=1, queued=0)
    zero.route(1)
    assert zero.route(2).outcome == REJECTED


def test_new_requests_do_not_overtake_queued_ones() -> None:
    r = _router(n=1, limit=1)
    r.route("a")
    r.route("b")  # queued
    r.update_replicas(["r0", "r1"])  # room appears: b goes first
    assert r.queue_len == 0 and r.ongoing("r1") == 1


def test_no_replicas_yet_queues_then_starts() -> None:
    r = PowerOfTwoChoicesRouter(random.Random(1), max_ongoing_requests=2)
    assert r.route("x").outcome == QUEUED
    assert r.update_replicas(["r0"]) == [Assignment("x", "r0")]


def test_removed_replica_drops_its_count_and_cancel_unqueues() -> None:
    r = _router(n=2, limit=1)
    a, b = r.route(1), r.route(2)
    assert {a.replica_id, b.replica_id} == {"r0", "r1"}
    assert r.route(3).outcome == QUEUED
    assert r.cancel(3) is True and r.cancel(3) is False
    r.update_replicas(["r1"])
    assert r.ongoing("r0") == 0 and r.replicas == ["r1"]
    assert r.release("r0") == []  # a late release from the dead replica is ignored


def test_same_seed_same_choices() -> None:
    picks = []
    for _ in range(2):
        r = _router(n=5, limit=100, seed=7)
        picks.append([r.route(i).replica_id for i in range(30)])
    assert picks[0] == picks[1]


@pytest.mark.parametrize("limit,queued", [(0, -1), (1, -2), ("2", -1), (1, 1.5)])
def test_bad_settings_are_refused(limit, queued) -> None:
    with pytest.raises(ServeConfigError):
        PowerOfTwoChoicesRouter(random.Random(0), limit, queued)
