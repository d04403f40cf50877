"""`runtime.cluster_utils.Cluster`: real node processes started and removed (gracefully or by SIGKILL)."""

from __future__ import annotations

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster
from runtime.exceptions import OptionNotSupportedError
from tests.cluster.conftest import recorded_pids, twinray, wait_gone
from tests.cluster.test_cli import _descendants


def test_remove_node_crash_and_graceful_leave_no_process_behind(session_root) -> None:
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1})
    try:
        head = cluster.head_node
        assert head is not None and head.any_processes_alive()
        assert ray.get(ray.put("x")) == "x"
        children = _descendants(head.pid)
        with pytest.raises(ValueError, match="connected to this Ray client"):
            cluster.remove_node(head, allow_graceful=False)  # a crash of the driver's node
        assert not ray.is_initialized() and cluster.head_node is None
        assert not head.any_processes_alive()
        assert not wait_gone(children)  # its zygote and workers died with it
        assert not recorded_pids(session_root)  # the crash's record was cleaned up
    finally:
        cluster.shutdown()

    again = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        node = again.head_node
        children = _descendants(node.pid)
        again.remove_node(node)  # graceful: SIGTERM, the node stops its workers itself
        assert node.process.returncode == 0
        assert not wait_gone(children)
        assert not recorded_pids(session_root)
    finally:
        again.shutdown()


def test_bad_node_arguments_are_refused_before_anything_starts(session_root) -> None:
    with pytest.raises(OptionNotSupportedError, match="take only"):
        Cluster(initialize_head=True, head_node_args={"num_cpu": 1})
    with pytest.raises(ValueError, match="non-negative"):
        Cluster(initialize_head=True, head_node_args={"num_cpus": -1})
    with pytest.raises(ValueError, match="custom resource"):
        Cluster(initialize_head=True, head_node_args={"resources": {"CPU": 1}})
    assert not recorded_pids(session_root)
    assert not list(session_root.glob("session_*"))  # no session made for them


def test_a_driver_whose_head_crashed_gets_a_connection_error(session_root, monkeypatch) -> None:
    import os
    import signal

    monkeypatch.setenv("TWINRAY_RECONNECT_TIMEOUT", "0")  # no waiting for a restarted head
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1})
    try:
        assert ray.get(ray.put(1)) == 1
        os.kill(cluster.head_node.pid, signal.SIGKILL)  # the head crashes under the driver
        cluster.head_node.process.wait(timeout=30)
        with pytest.raises(ConnectionError, match="connection to the cluster"):
            ray.get(ray.put(2), timeout=30)
        ray.shutdown()
        assert not ray.is_initialized()
        assert recorded_pids(session_root) == [cluster.head_node.pid]  # the crash's record
        stop = twinray("stop", env=dict(os.environ))
        assert stop.returncode == 0 and "no twinray node process is running" in stop.stdout
        assert not recorded_pids(session_root)  # `twinray stop` cleaned it up
    finally:
        cluster.shutdown()
    assert not recorded_pids(session_root)
