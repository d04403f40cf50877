"""Lineage reconstruction across node processes: a value whose only copy died with its node is recomputed by its owner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster, ClusterNode
from tests.cluster.conftest import kill_all, recorded_pids, wait_gone

np = pytest.importorskip("numpy")

N = 1 << 15
"""Elements of each array: 256 KiB, over the inline threshold, so it is stored on its node."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head (1 CPU) that this process drives; each test adds and kills its own nodes."""
    root = tmp_path_factory.mktemp("lineage") / "twinray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        c = Cluster(
            initialize_head=True, connect=True, head_node_args={"num_cpus": 1},
            shutdown_at_exit=False,
        )  # fmt: skip
        try:
            yield c
        finally:
            pids = recorded_pids(root)
            c.shutdown()
            kill_all(root, pids)
            assert not wait_gone(pids), "node processes survived SIGKILL"


@ray.remote
def make(log: str, start: int) -> Any:
    with open(log, "a") as f:
        f.write("make\n")
    return np.arange(start, start + N, dtype=np.int64)


@ray.remote
def add_one(log: str, a: Any) -> Any:
    with open(log, "a") as f:
        f.write("add_one\n")
    return a + 1


def _runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _replace(cluster: Cluster, victim: ClusterNode, resource: str) -> None:
    """Add a fresh node with ``resource`` (where a re-run can go), SIGKILL ``victim``, and
    wait until the head saw it die."""
    cluster.add_node(num_cpus=1, resources={resource: 1})
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    cluster.remove_node(victim, allow_graceful=False)
    deadline = time.monotonic() + 60
    while len(alive - {n["NodeID"] for n in ray.nodes() if n["Alive"]}) != 1:
        assert time.monotonic() < deadline, "the head never noticed the crash"
        time.sleep(0.05)


def test_a_chain_lost_with_its_node_is_recomputed_on_get(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "runs"
    victim = cluster.add_node(num_cpus=1, resources={"X": 1})
    a = make.options(resources={"X": 1}).remote(str(log), 7)
    b = add_one.options(resources={"X": 1}).remote(str(log), a)
    kept_log = tmp_path / "kept"
    kept = make.options(resources={"X": 1}).remote(str(kept_log), 1)
    ready, _ = ray.wait([b, kept], num_returns=2, timeout=60)  # done; nothing was fetched
    assert len(ready) == 2 and sorted(_runs(log)) == ["add_one", "make"]
    assert int(ray.get(kept, timeout=60)[-1]) == N  # this get pulls a copy to the head
    _replace(cluster, victim, "X")
    value = ray.get(b, timeout=120)  # its only copy died: b re-runs, and a (lost too) first
    assert value.shape == (N,) and int(value[0]) == 8 and int(value[-1]) == 7 + N
    assert sorted(_runs(log)) == ["add_one", "add_one", "make", "make"]
    assert int(ray.get(kept, timeout=60)[0]) == 1 and _runs(kept_log) == ["make"]  # not lost


def test_without_retries_a_lost_object_raises_object_lost(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "runs"
    victim = cluster.add_node(num_cpus=1, resources={"Y": 1})
    ref = make.options(resources={"Y": 1}, max_retries=0).remote(str(log), 0)
    ready, _ = ray.wait([ref], timeout=60)
    assert ready
    _replace(cluster, victim, "Y")
    with pytest.raises(ray.exceptions.ObjectLostError) as info:
        ray.get(ref, timeout=120)
    assert isinstance(info.value, ray.exceptions.ObjectReconstructionFailedError)
    assert _runs(log) == ["make"]  # not re-run


@ray.remote
def blocked_once(log: str) -> str:
    """First run: note it and block until killed; a re-run returns at once."""
    with open(log, "a") as f:
        f.write("inner\n")
    if len(_runs(Path(log))) == 1:
        time.sleep(600)
    return ray.get_runtime_context().get_node_id()


def test_a_subtask_placed_on_a_third_node_that_dies_is_retried(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "runs"
    cluster.add_node(num_cpus=1, resources={"B": 1})
    victim = cluster.add_node(num_cpus=1, resources={"Z": 1})

    @ray.remote(resources={"B": 1})
    def outer(log: str) -> str:  # its subtask is owned on node B, placed on the victim
        return ray.get(blocked_once.options(resources={"Z": 1}).remote(log))

    ref = outer.remote(str(log))
    deadline = time.monotonic() + 60
    while not _runs(log):  # the subtask runs on the victim
        assert time.monotonic() < deadline, "the subtask never started"
        time.sleep(0.05)
    _replace(cluster, victim, "Z")
    node = ray.get(ref, timeout=120)  # B's owner heard where its task went: retried
    assert _runs(log) == ["inner", "inner"]
    assert node in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
