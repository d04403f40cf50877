"""Worker output from every node reaches the connected driver, prefixed; a local driver's puts go into the mapped arena."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
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


@ray.remote
def total(a: np.ndarray) -> float:
    return float(a.sum())


@ray.remote
def put_inside(n: int) -> ray.ObjectRef:
    return ray.put(np.full(n, 2.0))  # a worker maps the arena too: in place


def test_a_local_drivers_puts_are_written_in_place_and_read_everywhere(cluster: Cluster) -> None:
    from runtime import api

    assert api._node.arena is not None  # the head's arena, mapped: puts go in place
    big = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    ref = ray.put(big)
    back = ray.get(ref)
    assert np.array_equal(back, big) and not back.flags.writeable
    expected = float(big.sum())
    on_b = total.options(resources={"B": 1})
    assert ray.get([total.remote(ref), on_b.remote(ref)], timeout=60) == [expected] * 2
    inner = ray.put(np.ones(1 << 18))  # 2 MiB, held by the value below
    outer = ray.put({"inner": inner, "pad": np.zeros(1 << 17)})
    del inner
    assert float(ray.get(ray.get(outer)["inner"]).sum()) == 1 << 18
    assert float(ray.get(ray.get(put_inside.remote(1 << 18), timeout=60)).sum()) == 2 * (1 << 18)
    assert ray.get(ray.put(b"small")) == b"small"  # below the threshold: inline, as before


def _spilled(view: object) -> int:
    return sum(r.store.spilled_bytes for r in view.raylets)  # type: ignore[attr-defined]


def test_a_range_reserved_by_a_driver_that_died_is_given_back(cluster: Cluster) -> None:
    program = textwrap.dedent(
        f"""
        import os
        import runtime as ray
        from runtime import api
        from runtime.real import requests as rq
        ray.init(address={cluster.address!r})
        assert api._node.request(rq.PUT_RESERVE, 64 << 20) is not None
        print("reserved", flush=True)
        os._exit(0)  # never seals: the head frees the range when its connection closes
        """
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", program], cwd=root, env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "reserved" in proc.stdout, proc.stderr
    assert ray.get(ray.put(1)) == 1  # one round trip: the head saw the connection close
    big = np.ones(6 << 20)  # 48 MiB of a 96 MiB arena: fits only if the 64 MiB came back
    assert float(ray.get(ray.put(big)).sum()) == 6 << 20
    assert ray.api._node.inspect(_spilled) == 0
