"""Heartbeats in real multi-node mode: a frozen node (SIGSTOP, sockets open) is declared dead after the timeout, then fenced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster
from tests.cluster.conftest import kill_all, recorded_pids, wait_gone

HEAD_ID = f"{0:056x}"
B_ID = f"{1:056x}"
PERIOD = 0.25
TIMEOUT = 2.5
"""Long enough for a loaded 2-core machine not to delay a live node's beats past it."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head (1 CPU) and worker node B (2 CPUs), beating every 0.25 s, dead after 2.5 s."""
    root = tmp_path_factory.mktemp("heartbeat") / "twinray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        c = Cluster(
            initialize_head=True, connect=True, head_node_args={"num_cpus": 1},
            shutdown_at_exit=False, heartbeat_period_s=PERIOD, node_timeout_s=TIMEOUT,
        )  # fmt: skip
        try:
            yield c
        finally:
            pids = recorded_pids(root)
            c.shutdown()
            kill_all(root, pids)  # SIGKILL reaches a stopped process too
            assert not wait_gone(pids), "node processes survived SIGKILL"


@ray.remote
def slow(i: int, marks: str) -> tuple[int, str]:
    Path(marks, f"{i}-{os.getpid()}").touch()  # started (a retry marks again)
    time.sleep(1.5)
    return i * 10, ray.get_runtime_context().get_node_id()


def _alive(node_id: str) -> bool:
    return {n["NodeID"]: n["Alive"] for n in ray.nodes()}[node_id]


def test_a_frozen_node_is_declared_dead_after_the_timeout_and_fenced(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.add_node(num_cpus=2)
    assert _alive(B_ID)
    refs = [slow.remote(i, str(tmp_path)) for i in range(3)]  # 1 CPU on the head: 2 on B
    deadline = time.monotonic() + 60
    while len(list(tmp_path.iterdir())) < 3:
        assert time.monotonic() < deadline, "the tasks did not start"
        time.sleep(0.02)
    os.kill(node.pid, signal.SIGSTOP)  # its sockets stay open: only the silence tells
    stopped = time.monotonic()
    try:
        while _alive(B_ID):
            assert time.monotonic() - stopped < TIMEOUT + 30, "the frozen node was never declared"
            time.sleep(0.05)
        detection = time.monotonic() - stopped
        # its last beat may have left up to a period (plus a loaded machine's lag) before
        # the stop; never declared before the timeout counted from that beat
        assert detection >= TIMEOUT - 2 * PERIOD, f"declared dead after {detection:.2f} s"
        print(f"\ndetection: SIGSTOP -> declared dead in {detection:.2f} s (timeout {TIMEOUT} s)")
        results = ray.get(refs, timeout=60)
        assert [r[0] for r in results] == [0, 10, 20]
        assert all(r[1] == HEAD_ID for r in results)  # B's were retried on the head
    finally:
        os.kill(node.pid, signal.SIGCONT)
    # awake again, the node finds its link to the head closed; its try to rejoin is refused
    # (the head declared it dead) and it stops: fenced, never back
    assert node.process.wait(timeout=60) != 0
    assert cluster.session is not None
    said = "".join(p.read_text(errors="replace") for p in (cluster.session / "logs").glob("node_*"))
    assert "the head refused this node" in said and "declared dead by the head" in said
    assert not _alive(B_ID) and len(ray.nodes()) == 2
    assert ray.get(slow.remote(7, str(tmp_path)), timeout=60)[0] == 70  # the cluster goes on


def test_bad_heartbeat_settings_are_refused(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="shorter than the head's node_timeout_s"):
        cluster.add_node(heartbeat_period_s=TIMEOUT)
    with pytest.raises(ValueError, match="node_timeout_s is the head's setting"):
        cluster.add_node(node_timeout_s=5.0)
    with pytest.raises(ValueError, match="heartbeat_period_s must be a positive number"):
        cluster.add_node(heartbeat_period_s=0)


def test_rays_system_config_sets_the_heartbeats() -> None:
    from runtime.cluster_utils import _node_config
    from runtime.exceptions import OptionNotSupportedError

    ray_style = {"health_check_period_ms": 250, "health_check_failure_threshold": 10}
    config = _node_config({"_system_config": ray_style})
    assert (config.heartbeat_period_s, config.node_timeout_s) == (0.25, 2.5)
    with pytest.raises(ValueError, match="only be set on the head node"):
        _node_config({"_system_config": ray_style}, head=False)
    with pytest.raises(OptionNotSupportedError, match="health_check_timeout_ms"):
        _node_config({"_system_config": {"health_check_timeout_ms": 1}})
    with pytest.raises(ValueError, match="health_check_period_ms must be a positive int"):
        _node_config({"_system_config": {"health_check_period_ms": 0}})
