"""The serve batcher: max_batch_size, batch_wait_timeout_s, max_concurrent_batches."""

from __future__ import annotations

import pytest

from runtime.core.serve import Batcher, ServeConfigError


def _items(batches):
    return [b.items for b in batches]


def test_full_batch_starts_at_once() -> None:
    b = Batcher(max_batch_size=3, batch_wait_timeout_s=10.0)
    assert b.add("a", 0.0) == [] and b.add("b", 0.1) == []
    assert _items(b.add("c", 0.2)) == [["a", "b", "c"]]
    assert b.waiting == 0 and b.running == 1


def test_partial_batch_starts_at_the_timeout_from_its_first_item() -> None:
    b = Batcher(max_batch_size=8, batch_wait_timeout_s=0.5)
    b.add(1, 1.0)
    b.add(2, 1.3)
    assert b.next_deadline() == 1.5
    assert b.poll(1.49) == []
    assert _items(b.poll(1.5)) == [[1, 2]]
    assert b.next_deadline() is None


def test_zero_timeout_takes_what_is_there() -> None:
    b = Batcher(max_batch_size=4, batch_wait_timeout_s=0.0, max_concurrent_batches=4)
    assert _items(b.add("x", 0.0)) == [["x"]]


def test_one_batch_at_a_time_and_the_next_fills_meanwhile() -> None:
    b = Batcher(max_batch_size=2, batch_wait_timeout_s=0.1)
    b.add(1, 0.0)
    (first,) = b.add(2, 0.0)
    for i, t in ((3, 0.01), (4, 0.02), (5, 0.03)):
        assert b.add(i, t) == []  # [3, 4] closes but waits for the running batch
    assert b.waiting == 3
    (second,) = b.finished(first.batch_id, 0.05)
    assert second.items == [3, 4]
    assert b.poll(0.12) == []  # [5] is due but one batch still runs
    assert _items(b.finished(second.batch_id, 0.2)) == [[5]]


def test_concurrent_batches_and_order_preserved() -> None:
    b = Batcher(max_batch_size=2, batch_wait_timeout_s=1.0, max_concurrent_batches=2)
    out = []
    for i in range(6):
        out += b.add(i, float(i))
    assert _items(out) == [[0, 1], [2, 3]]
    out = b.finished(out[0].batch_id, 6.0)
    assert _items(out) == [[4, 5]]


def test_finishing_an_unknown_batch_is_harmless() -> None:
    b = Batcher(max_batch_size=2, batch_wait_timeout_s=1.0)
    assert b.finished(99, 0.0) == []


@pytest.mark.parametrize(
    "kw",
    [
        {"max_batch_size": 0},
        {"max_batch_size": 2.5},
        {"batch_wait_timeout_s": -1},
        {"batch_wait_timeout_s": "1"},
        {"max_concurrent_batches": 0},
        {"max_batch_size": True},
    ],
)
def test_bad_settings_are_refused(kw) -> None:
    with pytest.raises(ServeConfigError):
        Batcher(**kw)
