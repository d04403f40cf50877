"""Worker nodes joining a head (`Cluster.add_node`): the core schedules across node processes for real."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster
from runtime.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.cluster.conftest import kill_all, recorded_pids, wait_gone

HEAD_ID = f"{0:056x}"
B_ID = f"{1:056x}"
STORE = 320 << 20
"""Bytes of store per node: room for the 100 MiB array, a copy and a put."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head (1 CPU) and worker node B (2 CPUs, resource "B"), this process its driver."""
    root = tmp_path_factory.mktemp("nodes") / "twinray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        c = Cluster(
            initialize_head=True, connect=True, head_node_args={"num_cpus": 1, "object_store_memory": STORE},
            shutdown_at_exit=False,
        )  # fmt: skip
        try:
            c.add_node(num_cpus=2, resources={"B": 2}, object_store_memory=STORE)
            yield c
        finally:
            pids = recorded_pids(root)
            c.shutdown()
            kill_all(root, pids)
            assert not wait_gone(pids), "node processes survived SIGKILL"


@ray.remote
def where(x: int = 0) -> tuple[str, int, int]:
    return ray.get_runtime_context().get_node_id(), os.getpid(), x + 1


def test_the_head_sees_the_joined_node(cluster: Cluster) -> None:
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    assert set(nodes) == {HEAD_ID, B_ID}
    assert nodes[B_ID]["Alive"] and nodes[B_ID]["Resources"]["B"] == 2.0
    total = ray.cluster_resources()
    assert total["CPU"] == 3.0 and total["B"] == 2.0
    from runtime.util.state import list_nodes

    rows = {r["node_id"]: r for r in list_nodes()}
    assert rows[B_ID]["state"] == "ALIVE" and not rows[B_ID]["is_head_node"]


def test_custom_resource_and_spillback_run_on_the_other_node(cluster: Cluster) -> None:
    node, pid, y = ray.get(where.options(resources={"B": 1}).remote(1), timeout=60)
    assert (node, y) == (B_ID, 2) and pid != os.getpid()
    # 2 CPUs never fit the head (1 CPU): its raylet spills the task, the GCS's scheduler
    # places it on B
    assert ray.get(where.options(num_cpus=2).remote(), timeout=60)[0] == B_ID
    affinity = NodeAffinitySchedulingStrategy(node_id=HEAD_ID, soft=False)
    assert ray.get(where.options(scheduling_strategy=affinity).remote(), timeout=60)[0] == HEAD_ID
    affinity = NodeAffinitySchedulingStrategy(node_id=B_ID, soft=False)
    assert ray.get(where.options(scheduling_strategy=affinity).remote(), timeout=60)[0] == B_ID


def test_nested_tasks_and_actors_on_the_worker_node(cluster: Cluster) -> None:
    @ray.remote(resources={"B": 1})
    def outer(n: int) -> list[int]:  # runs on B; its subtasks are owned there
        return ray.get([where.remote(i) for i in range(n)])

    assert [r[2] for r in ray.get(outer.remote(3), timeout=60)] == [1, 2, 3]

    @ray.remote(resources={"B": 0.5})
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def add(self, k: int) -> tuple[str, int]:
            self.n += k
            return ray.get_runtime_context().get_node_id(), self.n

    c = Counter.remote()
    assert ray.get([c.add.remote(i) for i in range(1, 5)], timeout=60)[-1] == (B_ID, 10)
    ray.kill(c)


def test_strict_spread_placement_group_spans_the_nodes(cluster: Cluster) -> None:
    from runtime.util.placement_group import placement_group, remove_placement_group
    from runtime.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    ray.get(pg.ready(), timeout=60)
    refs = [
        where.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)
        ).remote()
        for i in range(2)
    ]
    assert {r[0] for r in ray.get(refs, timeout=60)} == {HEAD_ID, B_ID}
    remove_placement_group(pg)


def test_removed_node_is_dead_in_the_node_table(cluster: Cluster) -> None:
    extra = cluster.add_node(num_cpus=1, resources={"C": 1})
    c_id = f"{2:056x}"
    assert ray.get(where.options(resources={"C": 1}).remote(), timeout=60)[0] == c_id
    cluster.remove_node(extra, allow_graceful=False)  # SIGKILL: a crash
    assert extra.process.returncode is not None
    deadline = time.monotonic() + 60
    while {n["NodeID"]: n["Alive"] for n in ray.nodes()}.get(c_id):
        assert time.monotonic() < deadline, "the head never noticed the crash"
        time.sleep(0.05)
    assert ray.get(where.remote(), timeout=60)[2] == 1  # the cluster keeps working


def test_cli_start_address_joins_and_stop_stops_it(session_root) -> None:
    from tests.cluster.conftest import start_head, twinray

    head = start_head(session_root, "--num-cpus", "1")
    proc = twinray("start", "--address", head.address, "--num-cpus", "1", env=head.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "joined the head" in proc.stdout
    status = twinray("status", env=head.env)
    assert status.returncode == 0, status.stderr
    assert "node 1 (alive)" in status.stdout and "nodes: 2" in status.stdout
    bad = twinray("start", "--head", "--address", head.address, env=head.env)
    assert bad.returncode == 2 and "either --head or --address" in bad.stderr
    pids = recorded_pids(session_root)
    assert len(pids) == 2
    assert twinray("stop", env=head.env).returncode == 0
    assert not wait_gone(pids)


def test_a_large_array_moves_between_nodes(cluster: Cluster) -> None:
    np = pytest.importorskip("numpy")

    @ray.remote(resources={"B": 1})
    def make(n: int) -> Any:
        return np.arange(n, dtype=np.int64)

    @ray.remote(num_cpus=1, resources={})
    def total(a: Any) -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), int(a.sum())

    n = (100 << 20) // 8  # 100 MiB
    ref = make.remote(n)  # stored in B's arena
    affinity = NodeAffinitySchedulingStrategy(node_id=HEAD_ID, soft=False)
    node, s = ray.get(total.options(scheduling_strategy=affinity).remote(ref), timeout=120)
    assert (node, s) == (HEAD_ID, n * (n - 1) // 2)  # pulled B -> head for the task
    back = ray.get(ref, timeout=120)  # the driver's get: from the head's copy
    assert back.shape == (n,) and int(back[-1]) == n - 1
    del back
    put = ray.put(np.ones(n, dtype=np.int64))  # the head's arena
    affinity = NodeAffinitySchedulingStrategy(node_id=B_ID, soft=False)
    assert ray.get(total.options(scheduling_strategy=affinity).remote(put), timeout=120) == (
        B_ID,
        n,
    )


def test_chained_tasks_survive_a_node_killed_mid_run(cluster: Cluster) -> None:
    victim = cluster.add_node(num_cpus=2)

    @ray.remote(max_retries=5)
    def step(x: int, i: int) -> int:
        time.sleep(0.01)
        return x + i

    heads, ends = [], []
    for _ in range(4):
        ref = step.options(scheduling_strategy="SPREAD").remote(0, 1)
        heads.append(ref)
        for i in range(2, 25):
            ref = step.options(scheduling_strategy="SPREAD").remote(ref, i)
        ends.append(ref)
    ray.wait(heads, num_returns=len(heads), timeout=60)  # the run is under way
    cluster.remove_node(victim, allow_graceful=False)  # SIGKILL: tasks there are lost
    cluster.add_node(num_cpus=1)  # a fresh node joins mid-run
    assert ray.get(ends, timeout=120) == [sum(range(1, 25))] * 4  # retried elsewhere
