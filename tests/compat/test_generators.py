"""Generator tasks behave the same under twinray and Ray: streaming refs, errors, actors, nesting."""

from __future__ import annotations

import pickle

import pytest


def test_a_generator_task_streams_refs(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def count(n):
        for i in range(n):  # noqa: UP028 (Ray's executor cannot run `yield from range`)
            yield i

    gen = count.remote(3)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in gen] == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()
    assert ray.get(gen.completed()) is None


def test_streaming_is_also_the_explicit_option(ray_started) -> None:
    ray = ray_started

    @ray.remote(num_returns="streaming")
    def letters():
        yield "a"
        yield "b"

    assert [ray.get(ref) for ref in letters.remote()] == ["a", "b"]


def test_an_exception_is_the_item_at_its_point_then_the_stream_stops(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def fail_at(k):
        for i in range(5):
            if i == k:
                raise ValueError(f"bad {i}")
            yield i

    gen = fail_at.remote(2)
    values = []
    for ref in gen:
        try:
            values.append(ray.get(ref))
        except ValueError as exc:
            values.append(str(exc).splitlines()[-1].split(": ")[-1])
    assert values == [0, 1, "bad 2"]


def test_wait_sees_a_generator_whose_next_item_is_ready(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def one():
        yield 1

    gen = one.remote()
    ready, rest = ray.wait([gen], timeout=60)
    assert ready == [gen] and rest == []
    assert gen.next_ready()
    assert ray.get(next(gen)) == 1


def test_cancelling_a_generator_ends_it_with_a_cancellation(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def endless():
        import time

        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.01)

    gen = endless.remote()
    assert ray.get(next(gen), timeout=60) == 0
    ray.cancel(gen)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        for ref in gen:
            ray.get(ref, timeout=60)


def test_actor_generator_methods_and_nested_generators(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def count(n):
        for i in range(n):  # noqa: UP028 (Ray's executor cannot run `yield from range`)
            yield i

    @ray.remote
    def total(n):
        return sum(ray.get(ref) for ref in count.remote(n))

    @ray.remote
    class Source:
        def items(self, n):
            for i in range(n):
                yield i * 10

    source = Source.remote()
    assert [ray.get(ref) for ref in source.items.remote(3)] == [0, 10, 20]
    assert ray.get(total.remote(5), timeout=60) == 10


def test_dynamic_returns_one_ref_holding_the_item_refs(ray_started) -> None:
    ray = ray_started

    @ray.remote(num_returns="dynamic")
    def dyn(n):
        for i in range(n):  # noqa: UP028 (Ray's executor cannot run `yield from range`)
            yield i

    items = ray.get(dyn.remote(3))
    assert type(items).__name__ == "DynamicObjectRefGenerator"
    assert len(items) == 3
    assert [ray.get(ref) for ref in items] == [0, 1, 2]


def test_a_generator_cannot_be_pickled(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def one():
        yield 1

    with pytest.raises(TypeError):
        pickle.dumps(one.remote())


def test_streaming_on_a_plain_function_is_refused(ray) -> None:
    with pytest.raises(ValueError):

        @ray.remote(num_returns="streaming")
        def plain():
            return 1


def test_an_explicit_num_returns_collects_the_yields(ray_started) -> None:
    ray = ray_started

    @ray.remote(num_returns=2)
    def two():
        yield "a"
        yield "b"

    @ray.remote(num_returns=1)
    def first():
        yield "x"
        yield "y"

    assert ray.get(two.remote()) == ["a", "b"]
    assert ray.get(first.remote()) == "x"


def test_a_finished_generator_is_ready_and_get_returns_it(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def one():
        yield 1

    gen = one.remote()
    assert [ray.get(ref) for ref in gen] == [1]
    assert ray.wait([gen], timeout=60) == ([gen], [])
    assert not gen.next_ready()
    assert ray.get(gen) is gen
