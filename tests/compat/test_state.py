"""The state API (`ray.util.state`): list_tasks / list_actors filters and summarize_tasks.

Ray's state API is served by its dashboard: with `include_dashboard=False` (the shared
`ray_started` fixture) every call fails to connect, so the Ray variant here starts Ray
with the dashboard and passes its address; it is skipped, with the reason, when the
dashboard cannot start. Ray's state is eventually consistent (task events are flushed
about every second), so checks poll until they hold, with a generous deadline.
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

DEADLINE_S = 60.0


@pytest.fixture
def cluster(ray: ModuleType) -> Iterator[SimpleNamespace]:
    """`ray` started with 2 CPUs, and its state module bound to that cluster."""
    state = importlib.import_module(f"{ray.__name__}.util.state")
    if ray.__name__ == "ray":
        try:
            context = ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
        except Exception as exc:  # pragma: no cover - depends on the Ray install
            pytest.skip(f"Ray's state API needs the dashboard, which did not start: {exc}")
        if not context.dashboard_url:
            ray.shutdown()
            pytest.skip("Ray's state API needs the dashboard (ray[default]); it is not running")
        address = f"http://{context.dashboard_url}"
        bound = SimpleNamespace(
            **{
                name: functools.partial(getattr(state, name), address=address)
                for name in ("list_tasks", "list_actors", "summarize_tasks")
            }
        )
    else:
        ray.init(num_cpus=2)
        bound = SimpleNamespace(
            list_tasks=state.list_tasks,
            list_actors=state.list_actors,
            summarize_tasks=state.summarize_tasks,
        )
    yield SimpleNamespace(ray=ray, state=bound)
    ray.shutdown()


def _eventually(read: Callable[[], Any], holds: Callable[[Any], bool]) -> Any:
    """Poll `read()` until `holds(value)`; fail with the last value at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"state never reached the expected shape: {value!r}")
        time.sleep(0.2)


def _names(rows: list[Any]) -> list[str]:
    return sorted(row["name"] for row in rows)


def test_list_tasks_filters_by_state_and_name(cluster: SimpleNamespace, tmp_path: Path) -> None:
    ray, state = cluster.ray, cluster.state
    release = tmp_path / "release"

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def blocker(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.01)
        return 1

    assert ray.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    held = blocker.remote(str(release))
    running = _eventually(
        lambda: state.list_tasks(filters=[("state", "=", "RUNNING")]),
        lambda rows: _names(rows) == ["blocker"],
    )
    assert running[0]["type"] == "NORMAL_TASK"
    assert running[0]["func_or_class_name"] == "blocker"
    finished = _eventually(
        lambda: state.list_tasks(filters=[("name", "=", "square"), ("state", "=", "FINISHED")]),
        lambda rows: len(rows) == 3,
    )
    assert {row["state"] for row in finished} == {"FINISHED"}
    others = state.list_tasks(filters=[("state", "!=", "FINISHED")])
    assert "blocker" in _names(others) and "square" not in _names(others)
    lowercase = state.list_tasks(filters=[("state", "=", "finished")])  # case-insensitive
    assert len(lowercase) >= 3
    assert len(state.list_tasks(limit=2)) == 2
    release.touch()
    assert ray.get(held) == 1
    _eventually(
        lambda: state.list_tasks(filters=[("name", "=", "blocker")]),
        lambda rows: [row["state"] for row in rows] == ["FINISHED"],
    )


def test_list_tasks_rejects_unknown_filter_keys_and_predicates(cluster: SimpleNamespace) -> None:
    ray, state = cluster.ray, cluster.state

    @ray.remote
    def one():
        return 1

    assert ray.get(one.remote()) == 1
    _eventually(state.list_tasks, lambda rows: len(rows) == 1)  # Ray checks keys per row
    with pytest.raises(Exception, match="bogus"):
        state.list_tasks(filters=[("bogus", "=", "x")])
    with pytest.raises(Exception, match="predicate"):
        state.list_tasks(filters=[("state", ">", "RUNNING")])


def test_failed_task_has_an_error_type(cluster: SimpleNamespace) -> None:
    ray, state = cluster.ray, cluster.state

    @ray.remote(max_retries=0)
    def broken():
        raise ValueError("no")

    with pytest.raises(ValueError):
        ray.get(broken.remote())
    rows = _eventually(
        lambda: state.list_tasks(filters=[("name", "=", "broken")]),
        lambda rows: [row["state"] for row in rows] == ["FAILED"],
    )
    assert rows[0]["error_type"] == "TASK_EXECUTION_EXCEPTION"


def test_list_actors_filters_and_sees_death(cluster: SimpleNamespace) -> None:
    ray, state = cluster.ray, cluster.state

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

    counter = Counter.options(name="counter").remote()
    assert ray.get(counter.add.remote(2)) == 2
    alive = _eventually(
        lambda: state.list_actors(filters=[("state", "=", "ALIVE")]),
        lambda rows: [row["class_name"].rsplit(".", 1)[-1] for row in rows] == ["Counter"],
    )
    assert alive[0]["name"] == "counter"
    class_name = alive[0]["class_name"]  # Ray: the qualified name
    ray.kill(counter)
    _eventually(
        lambda: state.list_actors(filters=[("class_name", "=", class_name)]),
        lambda rows: [row["state"] for row in rows] == ["DEAD"],
    )
    assert state.list_actors(filters=[("state", "=", "ALIVE")]) == []
    calls = _eventually(
        lambda: state.list_tasks(filters=[("type", "=", "ACTOR_TASK")]),
        lambda rows: _names(rows) == ["Counter.add"],
    )
    assert calls[0]["actor_id"] == alive[0]["actor_id"]


def test_summarize_tasks_counts_per_function_and_state(cluster: SimpleNamespace) -> None:
    ray, state = cluster.ray, cluster.state

    @ray.remote
    def double(x):
        return 2 * x

    assert ray.get([double.remote(i) for i in range(4)]) == [0, 2, 4, 6]

    def counts(summary: dict[str, Any]) -> dict[str, int]:
        entry = summary["cluster"]["summary"].get("double")
        return dict(entry["state_counts"]) if entry else {}

    summary = _eventually(state.summarize_tasks, lambda s: counts(s) == {"FINISHED": 4})
    entry = summary["cluster"]["summary"]["double"]
    assert entry["type"] == "NORMAL_TASK"
    assert summary["cluster"]["total_tasks"] >= 4
    assert summary["cluster"]["summary_by"] == "func_name"
