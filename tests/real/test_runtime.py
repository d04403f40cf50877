"""Cancel, resources, runtime context, timeline and worker output on the real runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import runtime as ray
from runtime.api import _current_node


@ray.remote
def sleeper(t):
    time.sleep(t)
    return t


@ray.remote
def context_ids():
    ctx = ray.get_runtime_context()
    return ctx.get_task_id(), ctx.get_actor_id(), ctx.get_job_id(), ctx.get_node_id()


@ray.remote
def cancel_inside():
    ref = sleeper.remote(30)
    ray.cancel(ref)
    try:
        ray.get(ref)
    except ray.TaskCancelledError:
        return "cancelled"
    return "not cancelled"


@ray.remote
class Probe:
    def ids(self):
        ctx = ray.get_runtime_context()
        return ctx.get_actor_id(), ctx.get_task_id()

    def resources(self):
        return ray.cluster_resources()


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, num_gpus=1, resources={"accel": 2}, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def test_cancel_a_running_task_interrupts_it(cluster) -> None:
    ref = sleeper.remote(30)
    deadline = time.monotonic() + 10
    while not any(w.spec is not None for w in cluster.pool.workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    ray.cancel(ref)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(ref, timeout=10)
    assert ray.get(sleeper.remote(0), timeout=10) == 0  # the worker lives on


def test_cancel_queued_and_force(cluster) -> None:
    busy = [sleeper.remote(30) for _ in range(2)]
    queued = sleeper.remote(0)
    ray.cancel(queued)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(queued, timeout=10)
    for ref in busy:
        ray.cancel(ref, force=True)
    for ref in busy:
        with pytest.raises(ray.TaskCancelledError):
            ray.get(ref, timeout=10)
    assert ray.get([sleeper.remote(0) for _ in range(4)], timeout=10) == [0] * 4


def test_cancel_from_inside_a_task(cluster) -> None:
    assert ray.get(cancel_inside.remote(), timeout=20) == "cancelled"


def test_resources_and_nodes(cluster) -> None:
    total = ray.cluster_resources()
    assert total.pop("memory") > 0 and total.pop("object_store_memory") == 64 << 20
    assert total == {"CPU": 2.0, "GPU": 1.0, "accel": 2.0}
    total = ray.cluster_resources()
    deadline = time.monotonic() + 5
    while ray.available_resources().get("CPU") != 2.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ray.available_resources()["CPU"] == 2.0
    (node,) = ray.nodes()
    assert node["Alive"] and node["Resources"] == total
    assert ray.get(Probe.remote().resources.remote()) == total


def test_custom_resources_and_infeasible_requests(cluster) -> None:
    assert ray.get(sleeper.options(num_gpus=1, resources={"accel": 2}).remote(0)) == 0
    with pytest.raises(ray.TaskUnschedulableError, match="accel"):
        ray.get(sleeper.options(resources={"accel": 3}).remote(0), timeout=10)
    with pytest.raises(ray.TaskUnschedulableError, match="GPU"):
        ray.get(sleeper.options(num_gpus=2).remote(0), timeout=10)


def test_runtime_context(cluster) -> None:
    ctx = ray.get_runtime_context()
    assert ctx.get_task_id() is None and ctx.get_actor_id() is None
    ref = context_ids.remote()
    task_id, actor_id, job_id, node_id = ray.get(ref)
    assert int(task_id, 16) == ref.task_id() and actor_id is None
    assert job_id == ctx.get_job_id() and node_id == ctx.get_node_id()
    probe = Probe.remote()
    actor_id, task_id = ray.get(probe.ids.remote())
    assert int(actor_id, 16) == probe.actor_id and task_id is not None
    assert ray.is_initialized()


def test_timeline_writes_chrome_trace_events(cluster, tmp_path) -> None:
    @ray.remote
    def traced(t):
        time.sleep(t)

    ray.get([traced.remote(0.01) for _ in range(4)])
    path = tmp_path / "trace.json"
    ray.timeline(str(path))
    events = json.loads(path.read_text())["traceEvents"]
    mine = [e for e in events if e["name"].endswith("traced")]
    assert len(mine) == 4
    for e in mine:
        assert e["ph"] == "X" and e["dur"] >= 0 and e["ts"] >= 0
        assert e["pid"].startswith("worker ") and isinstance(e["tid"], int)
        assert e["dur"] >= 10_000  # a span covers the whole 10 ms body


def test_timeline_spans_of_queued_actor_calls_cover_their_bodies(cluster, tmp_path) -> None:
    # regression: a finished call was recorded with the start time of the call the actor
    # moved on to, so back-to-back calls showed a duration of zero
    @ray.remote
    class Napper:
        def nap(self, seconds):
            time.sleep(seconds)
            return seconds

    napper = Napper.remote()
    ray.get([napper.nap.remote(0.02) for _ in range(3)])
    path = tmp_path / "trace.json"
    ray.timeline(str(path))
    calls = [
        e for e in json.loads(path.read_text())["traceEvents"] if e["name"].endswith("Napper.nap")
    ]
    assert len(calls) == 3
    assert all(e["dur"] >= 20_000 for e in calls)
    starts = sorted(e["ts"] for e in calls)
    assert starts[1] >= starts[0] + 20_000 and starts[2] >= starts[1] + 20_000


def test_worker_print_and_logging_reach_the_driver_with_a_prefix() -> None:
    script = (
        "import logging, runtime as ray\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "ray.init(num_cpus=1, object_store_memory=16 << 20)\n"
        "@ray.remote\n"
        "def f():\n"
        "    print('hello from a task')\n"
        "    logging.getLogger('app').warning('a warning')\n"
        "ray.get(f.remote())\n"
        "ray.shutdown()\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out_lines = [line for line in proc.stdout.splitlines() if "hello from a task" in line]
    err_lines = [line for line in proc.stderr.splitlines() if "a warning" in line]
    assert out_lines and out_lines[0].startswith("(worker 0, pid ")
    assert err_lines and err_lines[0].startswith("(worker 0, pid ")
