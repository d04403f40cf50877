"""The state API, `explain` and the memory view on the real runtime (forked workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime as ray
from runtime.core import explain as ex
from runtime.real.memory import find_sessions, process_memory, request_summary
from runtime.util import state
from runtime.util.state import StateApiError

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0


@ray.remote
def square(x):
    return x * x


@ray.remote
def holding(x, path):
    while not os.path.exists(path):
        time.sleep(0.005)
    return len(x)


@ray.remote
def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.005)
    return 1


@ray.remote
def boom():
    raise KeyError("boom")


@ray.remote
def array(n):
    return np.ones(n)


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n

    def block(self, path):
        while not os.path.exists(path):
            time.sleep(0.005)
        return self.n


@pytest.fixture
def started() -> Iterator[None]:
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield
    ray.shutdown()


def _until(check: Any) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_list_tasks_reads_the_gcs_table_with_filters_and_limit(
    started: None, tmp_path: Path
) -> None:
    release = tmp_path / "go"
    assert ray.get([square.remote(i) for i in range(5)]) == [0, 1, 4, 9, 16]
    held = wait_for.remote(str(release))
    blocked = square.remote(held)  # waits for its argument at the owner
    _until(lambda: state.list_tasks(filters=[("state", "=", "RUNNING")]))
    running = state.list_tasks(filters=[("state", "=", "RUNNING")])
    assert [t["name"] for t in running] == ["wait_for"]
    assert running[0]["node_id"] == f"{0:056x}" and running[0]["type"] == "NORMAL_TASK"
    pending = state.list_tasks(filters=[("state", "=", "PENDING_ARGS_AVAIL")])
    assert [t["task_id"] for t in pending] == [f"{blocked.task_id():032x}"]
    finished = state.list_tasks(filters=[("name", "=", "square"), ("state", "=", "finished")])
    assert len(finished) == 5
    assert len(state.list_tasks(filters=[("state", "!=", "FINISHED")])) == 2
    assert len(state.list_tasks(limit=3)) == 3
    assert len(state.list_tasks()) == 7
    detail = state.list_tasks(filters=[("name", "=", "wait_for")], detail=True)[0]
    assert detail["required_resources"] == {"CPU": 1.0} and detail["end_time_ms"] is None
    release.touch()
    assert ray.get(blocked) == 1
    _until(lambda: len(state.list_tasks(filters=[("state", "=", "FINISHED")])) == 7)


def test_failed_tasks_and_summary(started: None) -> None:
    with pytest.raises(KeyError):
        ray.get(boom.options(max_retries=0).remote())
    ray.get([square.remote(i) for i in range(3)])
    (row,) = state.list_tasks(filters=[("name", "=", "boom")], detail=True)
    assert row["state"] == "FAILED" and row["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert "boom" in row["error_message"]
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["square"]["state_counts"] == {"FINISHED": 3}
    assert summary["summary"]["boom"]["state_counts"] == {"FAILED": 1}
    assert summary["total_tasks"] == 4 and summary["summary_by"] == "func_name"


def test_actors_nodes_and_objects(started: None) -> None:
    counter = Counter.options(name="c").remote()
    assert ray.get(counter.add.remote(1)) == 1
    (actor,) = state.list_actors(filters=[("state", "=", "ALIVE")])
    assert actor["name"] == "c" and actor["class_name"].endswith("Counter")
    assert actor["pid"] > 0 and actor["pid"] != os.getpid()
    calls = state.list_tasks(filters=[("type", "=", "ACTOR_TASK")])
    assert [c["name"] for c in calls] == ["Counter.add"] and calls[0]["actor_id"] == actor[
        "actor_id"
    ]
    (creation,) = state.list_tasks(filters=[("type", "=", "ACTOR_CREATION_TASK")])
    assert creation["name"] == "Counter.__init__" and creation["state"] == "FINISHED"
    ray.kill(counter)
    _until(lambda: state.list_actors(filters=[("state", "=", "DEAD")]))
    (node,) = state.list_nodes()
    assert node["state"] == "ALIVE" and node["is_head_node"] is True
    assert node["resources_total"]["CPU"] == 2.0
    big = ray.put(np.zeros(200_000))
    inner = ray.put(1)
    outer = ray.put([inner])
    rows = state.list_objects(filters=[("type", "=", "DRIVER")])
    by_id: dict[str, set[str]] = {}
    for row in rows:
        by_id.setdefault(row["object_id"], set()).add(row["reference_type"])
    assert "LOCAL_REFERENCE" in by_id[big.hex()]
    assert {"LOCAL_REFERENCE", "CAPTURED_IN_OBJECT"} <= by_id[inner.hex()]
    assert outer.hex() in by_id
    sizes = {r["object_id"]: r["object_size"] for r in rows}
    assert sizes[big.hex()] >= 1_600_000
    assert state.list_placement_groups() == [] or all(
        "placement_group_id" in pg for pg in state.list_placement_groups()
    )


def test_bad_filters_and_arguments_raise_clear_errors(started: None) -> None:
    with pytest.raises(StateApiError, match="'bogus' is not supported for tasks"):
        state.list_tasks(filters=[("bogus", "=", 1)])
    with pytest.raises(StateApiError, match="predicate '>'"):
        state.list_actors(filters=[("state", ">", "ALIVE")])
    with pytest.raises(StateApiError, match="tuple"):
        state.list_nodes(filters=["state=ALIVE"])  # type: ignore[list-item]
    with pytest.raises(StateApiError, match="limit"):
        state.list_objects(limit=-1)
    with pytest.raises(StateApiError, match="address"):
        state.list_tasks(address="ray://elsewhere:10001")
    assert issubclass(StateApiError, ValueError)


def test_state_api_needs_a_running_runtime() -> None:
    with pytest.raises(ray.RayError, match="not initialized"):
        state.list_tasks()


def test_explain_pending_running_and_finished(started: None, tmp_path: Path) -> None:
    release = tmp_path / "go"
    held = wait_for.remote(str(release))
    _until(lambda: ray.explain(held).cause == ex.RUNNING)
    running = ray.explain(held)
    assert running.state == "RUNNING" and running.node == 0
    assert "running on node 0" in str(running) and running.reason
    second = wait_for.remote(str(release))
    third = wait_for.remote(str(release))  # 2 CPUs: this one queues
    consumer = square.remote(held)
    _until(lambda: ray.explain(third).cause in (ex.QUEUED_FOR_RESOURCES, ex.PREFETCHED))
    queued = ray.explain(third)
    assert queued.needs == {"CPU": 1.0} or queued.cause == ex.PREFETCHED
    waiting = ray.explain(consumer)
    assert waiting.cause == ex.WAITING_FOR_ARGUMENTS
    assert waiting.waiting_for == [held.hex()]
    release.touch()
    assert ray.get([held, second, third, consumer]) == [1, 1, 1, 1]
    done = ray.explain(consumer)
    assert done.cause == ex.FINISHED and done.node == 0
    assert "finished on node 0" in done.text
    with pytest.raises(TypeError, match="ObjectRef, an actor handle or a placement group"):
        ray.explain("task-1")


def test_explain_infeasible_and_failed_tasks(started: None) -> None:
    ref = square.options(num_cpus=16).remote(1)
    with pytest.raises(ray.TaskUnschedulableError):
        ray.get(ref, timeout=DEADLINE_S)
    found = ray.explain(ref)
    assert found.cause == ex.INFEASIBLE and "16" in found.text
    bad = boom.options(max_retries=0).remote()
    with pytest.raises(KeyError):
        ray.get(bad)
    failed = ray.explain(bad)
    assert failed.cause == ex.FAILED and failed.error_kind == "application"
    assert failed.as_dict()["state"] == "FAILED"


def test_explain_actors_and_their_queue(started: None, tmp_path: Path) -> None:
    release = tmp_path / "go"
    counter = Counter.remote()
    _until(lambda: ray.explain(counter).state == "ALIVE")
    alive = ray.explain(counter)
    assert alive.kind == "actor" and alive.node == 0 and "alive on node 0" in alive.text
    blocking = counter.block.remote(str(release))
    later = counter.add.remote(1)
    _until(lambda: ray.explain(blocking).cause == ex.RUNNING)
    queued = ray.explain(later)
    # the real host pipelines calls to the actor's worker: queued there, or in the raylet
    assert queued.cause in (ex.RUNNING, ex.ACTOR_QUEUE), queued.text
    release.touch()
    assert ray.get(later) == 1
    ray.kill(counter)
    _until(lambda: ray.explain(counter).state == "DEAD")
    assert "killed" in ray.explain(counter).text


def test_memory_summary_keeps_kinds_of_memory_apart(started: None, tmp_path: Path) -> None:
    release = tmp_path / "go"
    big = ray.put(np.zeros(1_000_000))  # 8 MB in the store
    inner = ray.put(2)
    outer = ray.put([inner])
    value = ray.get(array.remote(100_000))  # a zero-copy view: its bytes stay pinned
    held = holding.remote(big, str(release))  # `big` is a running task's argument until released
    time.sleep(0.2)  # let the owner's free of `value`'s ref land first: the summary must not care
    text = ray.memory_summary()
    for heading in ("system memory", "object store (node 0)", "objects by owner", "process memory"):
        assert heading in text
    assert f"{big.hex()}" in text and "LOCAL_REFERENCE" in text
    assert "CAPTURED_IN_OBJECT" in text and "PINNED_IN_MEMORY" in text
    assert "USED_BY_PENDING_TASK" in text or "PINNED_BY_TASK" in text
    assert f"driver (pid {os.getpid()})" in text and "worker 0 (pool)" in text
    stats = ray.memory_summary(stats_only=True)
    assert big.hex() not in stats and "objects by owner" in stats
    mine = process_memory(os.getpid(), "driver")
    assert mine.heap > 0 and mine.shared >= 0 and mine.rss >= mine.heap
    release.touch()
    ray.get(held)
    del value, outer


def test_a_value_still_in_use_after_its_ref_is_freed_is_shown_pinned(started: None) -> None:
    # the bug: once the owner freed the object, the summary lost the bytes a zero-copy
    # value still held (shown only when the summary won the race against the free)
    from runtime import api

    ref = array.remote(100_000)
    value = ray.get(ref)
    oid = ref.hex()
    del ref
    objects = api._require_node().objects  # type: ignore[attr-defined]
    _until(lambda: bool(objects.doomed))  # the owner freed it; the value keeps the range
    line = next(x for x in ray.memory_summary().splitlines() if oid in x)
    assert "PINNED_IN_MEMORY" in line and "LOCAL_REFERENCE" not in line
    del value
    _until(lambda: not objects.doomed and oid not in ray.memory_summary())


def test_twinray_memory_command_asks_the_running_driver(started: None) -> None:
    keep = ray.put(np.zeros(10_000))
    sessions = [name for pid, name in find_sessions() if pid == os.getpid()]
    assert len(sessions) == 1
    assert keep.hex() in request_summary(sessions[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "runtime.cli", "memory", "--pid", str(os.getpid())]
    result: dict[str, Any] = {}

    def ask() -> None:  # the driver answers from its own thread while this one waits
        result["proc"] = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join(150)
    proc = result["proc"]
    assert proc.returncode == 0, proc.stderr
    assert keep.hex() in proc.stdout and "process memory" in proc.stdout


def test_twinray_memory_without_a_session_says_so() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "runtime.cli", "memory", "--pid", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "no running twinray session with pid 1" in proc.stderr


def test_shutdown_stops_the_memory_server() -> None:
    ray.init(num_cpus=1)
    assert any(pid == os.getpid() for pid, _ in find_sessions())
    ray.shutdown()
    assert not any(pid == os.getpid() for pid, _ in find_sessions())
    names = {t.name for t in threading.enumerate()}
    assert "twinray-memory" not in names


def test_placement_groups_are_listed_and_explained(started: None) -> None:
    from runtime.util import placement_group, remove_placement_group

    ok = placement_group([{"CPU": 1.0}], strategy="PACK", name="small")
    assert ray.get(ok.ready(), timeout=DEADLINE_S) is not None
    too_big = placement_group([{"CPU": 64.0}], name="big")
    _until(lambda: ray.explain(too_big).state == "PENDING")
    rows = {r["name"]: r for r in state.list_placement_groups(detail=True)}
    assert rows["small"]["state"] == "CREATED"
    assert rows["small"]["placement_group_id"] == ok.id.hex()
    assert rows["small"]["bundles"][0]["unit_resources"] == {"CPU": 1.0}
    assert rows["big"]["state"] == "PENDING"
    (created,) = state.list_placement_groups(filters=[("state", "=", "CREATED")])
    assert set(created) == {"placement_group_id", "name", "creator_job_id", "state"}
    pending = ray.explain(too_big)
    assert pending.kind == "placement_group" and pending.cause == ex.INFEASIBLE, pending.text
    placed = ray.explain(ok)
    assert placed.cause == ex.RUNNING and placed.node == 0 and "CREATED" in placed.text
    remove_placement_group(too_big)
    _until(lambda: ray.explain(too_big).state == "REMOVED")
