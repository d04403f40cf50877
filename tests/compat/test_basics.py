"""Core Ray semantics that twinray and Ray must share: tasks, actors, errors."""

from __future__ import annotations

import pytest


def test_tasks_and_actor_calls(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    counter = Counter.remote()
    assert ray.get([counter.add.remote(i) for i in range(4)]) == [0, 1, 3, 6]


def test_task_error_is_catchable_as_its_type(ray_started) -> None:
    ray = ray_started

    @ray.remote
    def fail():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        ray.get(fail.remote())
