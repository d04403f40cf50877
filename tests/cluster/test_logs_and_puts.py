"""Worker output from every node reaches the connected driver, prefixed; a local driver's puts go into the mapped arena."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster
from tests.cluster.conftest import kill_all, recorded_pids, wait_gone

B_ID = f"{1:056x}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head (1 CPU) and worker node B (1 CPU, resource "B"), this process its driver."""
    root = tmp_path_factory.mktemp("logs") / "twinray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        c = Cluster(
            initialize_head=True, connect=True,
            head_node_args={"num_cpus": 1, "object_store_memory": 96 << 20},
            shutdown_at_exit=False,
        )  # fmt: skip
        try:
            c.add_node(num_cpus=1, resources={"B": 1}, object_store_memory=32 << 20)
            yield c
        finally:
            pids = recorded_pids(root)
            c.shutdown()
            kill_all(root, pids)
            assert not wait_gone(pids), "node processes survived SIGKILL"


@ray.remote
def speak(tag: str) -> int:
    import logging

    print(f"out-{tag}")
    print(f"err-{tag}", file=sys.stderr)
    logging.getLogger("user.task").warning("record-%s", tag)
    return os.getpid()


def _wait_for(read: Callable[[], str], needles: list[str], timeout: float = 60.0) -> str:
    """What `read` returns once every needle is in it (lines arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen += read()
        if all(n in seen for n in needles):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"not all of {needles} reached the driver; it printed:\n{seen}")


def _line(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_output_and_logging_of_every_node_reach_the_driver(
    cluster: Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    head_pid = ray.get(speak.remote("head"), timeout=60)
    b_pid = ray.get(speak.options(resources={"B": 1}).remote("nodeb"), timeout=60)
    out: list[str] = []
    err: list[str] = []

    def read() -> str:
        captured = capfd.readouterr()
        out.append(captured.out)
        err.append(captured.err)
        return captured.out + captured.err

    _wait_for(read, ["out-head", "err-head", "record-head", "out-nodeb", "record-nodeb"])
    stdout, stderr = "".join(out), "".join(err)
    # stdout to stdout, stderr (and logging's last-resort handler) to stderr
    assert "out-head" in stdout and "err-head" not in stdout
    assert "err-nodeb" in stderr and "record-nodeb" in stderr and "out-nodeb" not in stderr
    # prefixed with the worker and its node, as Ray prints (pid=..., ip=...)
    assert f"pid {head_pid}, node 0, ip 127.0.0.1) out-head" in _line(stdout, "out-head")
    b_line = _line(stderr, "record-nodeb")
    assert b_line.startswith("(worker ") and f"pid {b_pid}, node 1, ip 127.0.0.1) " in b_line
    # each line once (the head's own node log keeps a copy, the driver prints one)
    assert stdout.count("out-nodeb") == 1


def _node_logs(cluster: Cluster) -> str:
    """What every node process of `cluster` wrote to its log (its workers' output too)."""
    assert cluster.session is not None
    logs = (cluster.session / "logs").glob("*.out")
    return "".join(path.read_text(errors="replace") for path in logs)


@ray.remote
def nothing() -> None:
    return None


def test_log_to_driver_false_prints_nothing(
    cluster: Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    ray.shutdown()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        on_b = {"resources": {"B": 1}}
        ray.get([speak.remote("quiet"), speak.options(**on_b).remote("quiet")], timeout=60)
        # a node writes a line to its log after queueing it for its drivers, so once both
        # logs hold all three lines of each node, tasks sent now reach each node's loop
        # after its lines were sent on (to no one): nothing of them can reach the next driver
        deadline = time.monotonic() + 60
        while _node_logs(cluster).count("quiet") < 6:
            assert time.monotonic() < deadline, _node_logs(cluster)
            time.sleep(0.05)
        ray.get([nothing.remote(), nothing.options(**on_b).remote()], timeout=60)
    finally:
        ray.shutdown()
        ray.init(address=cluster.address)
    ray.get([speak.remote("loudhead"), speak.options(resources={"B": 1}).remote("loudb")])
    needles = ["out-loudhead", "record-loudhead", "out-loudb", "record-loudb"]
    seen = _wait_for(lambda: "".join(capfd.readouterr()), needles)
    assert "quiet" not in seen  # printed by neither driver


def test_a_node_keeps_its_workers_output_in_its_log(cluster: Cluster) -> None:
    ray.get(speak.options(resources={"B": 1}).remote("kept"), timeout=60)
    assert cluster.session is not None
    logs = sorted((cluster.session / "logs").glob("node_*.out"))
    assert logs
    deadline = time.monotonic() + 30
    while "out-kept" not in logs[0].read_text(errors="replace"):
        assert time.monotonic() < deadline, "the node's log never got its worker's output"
        time.sleep(0.05)
