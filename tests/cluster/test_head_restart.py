"""The head can restart: SIGKILL it in the middle of a driver's run, start it again on the same session.

A head (1 CPU) and a worker node (2 CPUs, resource "w") run as ``--block`` processes of
this test, this process is a connected driver; the driver streams tasks to the worker node
and holds a named detached actor there. The head is SIGKILLed in the middle of the stream
and started again with ``twinray start --head --session DIR``; the worker node and the
driver reconnect by themselves (``TWINRAY_RECONNECT_TIMEOUT``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import runtime as ray
from runtime.real.remote_driver import ClusterConnectionLost
from tests.cluster.conftest import ROOT, kill_all, recorded_pids, wait_gone

START = 120.0


@dataclass
class Procs:
    """The node processes of the test (restarted heads included) and what it measured."""

    root: Path
    env: dict[str, str]
    head: subprocess.Popen | None = None
    node: subprocess.Popen | None = None
    all: list[subprocess.Popen] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def start(self, *args: str, log: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "start", *args, "--block"],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.root / log, "ab"),  # noqa: SIM115 (the child holds it)
            stderr=subprocess.STDOUT,
        )
        self.all.append(proc)
        return proc


def _head_address(root: Path, pid: int, proc: subprocess.Popen) -> tuple[Path, str]:
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "head.log").read_text()
        session = root / "session_latest"
        with_info = session / "head.json"
        if with_info.exists():
            info = json.loads(with_info.read_text())
            if info["pid"] == pid:
                return session.resolve(), str(info["address"])
        time.sleep(0.02)
    raise AssertionError("the head did not start: " + (root / "head.log").read_text())


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _wait_nodes(count: int) -> None:
    deadline = time.monotonic() + START
    while len(_alive_nodes()) < count:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Procs]:
    root = tmp_path_factory.mktemp("restart") / "twinray"
    root.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        mp.setenv("TWINRAY_RECONNECT_TIMEOUT", "90")
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        p = Procs(root, dict(os.environ))
        try:
            p.head = p.start("--head", "--port", "0", "--num-cpus", "1", log="head.log")
            yield p
        finally:
            if ray.is_initialized():
                ray.shutdown()
            pids = recorded_pids(root) + [q.pid for q in p.all]
            for q in p.all:
                if q.poll() is None:
                    q.send_signal(signal.SIGTERM)
            for q in p.all:
                try:
                    q.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    q.kill()
                    q.wait()
            kill_all(root, pids)
            assert not wait_gone(pids), "node processes survived SIGKILL"


@ray.remote(resources={"w": 1})
class Keeper:
    """A named detached actor on the worker node, with state and a stored object."""

    def __init__(self) -> None:
        self.total = 0
        self.held: list[Any] = []

    def add(self, k: int) -> int:
        self.total += k
        return self.total

    def store(self) -> list[Any]:
        self.held = [ray.put(bytes(range(256)) * 1200)]  # 300 KiB: stored, not inline
        return self.held


def _mark(marks: str, name: str) -> None:
    """Record one run of a task (a file per run: the test counts them)."""
    Path(marks, f"{name}.{os.getpid()}.{time.time_ns()}").touch()


@ray.remote(resources={"w": 1})
def square(x: int, marks: str = "") -> int:
    if marks:
        _mark(marks, f"square-{x}")
    time.sleep(0.01)
    return x * x


@ray.remote(resources={"w": 1})
def step(prev: int, k: int, marks: str) -> int:
    """One link of a chain: its input is the previous link's ref."""
    _mark(marks, f"step-{k}")
    return prev + k


@ray.remote(resources={"w": 1})
def blob(i: int, marks: str) -> bytes:
    """A result stored on the worker node (300 KiB: not inline)."""
    _mark(marks, f"blob-{i}")
    return bytes([i]) * (300 << 10)


@ray.remote(resources={"w": 1})
def shout(marker: str) -> int:
    print(marker, flush=True)
    return 1


BATCHES = 12


def test_sigkill_the_head_in_the_middle_of_a_run(
    procs: Procs, capfd: pytest.CaptureFixture[str]
) -> None:
    """The driver's run goes on across the head's death: no exception, every value right,
    no task run more often than its retries allow, every actor call run exactly once."""
    assert procs.head is not None
    session, address = _head_address(procs.root, procs.head.pid, procs.head)
    procs.node = procs.start(
        "--address", address, "--num-cpus", "2", "--resources", '{"w": 100}', log="node.log"
    )
    marks = procs.root / "marks"
    marks.mkdir()
    ray.init(address=address)
    _wait_nodes(2)
    before = _alive_nodes()
    keeper = Keeper.options(name="keeper", lifetime="detached").remote()
    assert ray.get(keeper.add.remote(5)) == 5
    held = ray.get(keeper.store.remote())  # owned by the actor, stored on the worker node
    owned_here = square.remote(7)
    assert ray.get(owned_here) == 49  # owned by this driver's owner, on the head

    halfway = threading.Event()
    restarted: dict[str, Any] = {}

    def kill_and_restart() -> None:
        halfway.wait(START)
        t0 = time.monotonic()
        assert procs.head is not None
        procs.head.send_signal(signal.SIGKILL)
        procs.head.wait()
        restarted["killed_at"] = time.monotonic()
        head = procs.start("--head", "--session", str(session), "--num-cpus", "1", log="head.log")
        restarted["head"] = head
        restarted["address"] = _head_address(procs.root, head.pid, head)[1]
        restarted["listening_at"] = time.monotonic()
        restarted["listening_after"] = restarted["listening_at"] - t0

    killer = threading.Thread(target=kill_and_restart, daemon=True)
    killer.start()
    squares: dict[int, Any] = {}
    values: dict[int, int] = {}
    blobs: dict[int, Any] = {}
    calls = []
    answered: list[float] = []
    chain = step.remote(0, 0, str(marks))
    for b in range(BATCHES):  # the driver's run: no exception may reach it
        refs = {i: square.remote(i, str(marks)) for i in range(b * 10, b * 10 + 10)}
        squares.update(refs)
        chain = step.remote(chain, b + 1, str(marks))  # its input is the previous link
        calls.append(keeper.add.remote(1))
        if b % 4 == 0:
            blobs[b] = blob.remote(b, str(marks))
        for i, ref in refs.items():
            values[i] = ray.get(ref, timeout=START)
            answered.append(time.monotonic())
        if b == 3:
            halfway.set()  # tasks are queued and running on the worker node now
    killer.join(START)
    assert not killer.is_alive()
    procs.head = restarted["head"]
    assert restarted["address"] == address  # the restarted head keeps its port
    assert values == {i: i * i for i in range(BATCHES * 10)}
    # refs held across the restart: values fetched before it, chains, stored results
    assert ray.get(list(squares.values()), timeout=START) == [i * i for i in squares]
    assert ray.get(chain, timeout=START) == BATCHES * (BATCHES + 1) // 2
    for b, ref in blobs.items():
        assert ray.get(ref, timeout=START) == bytes([b]) * (300 << 10)
    # every call answered, in order, each run exactly once (the actor's running total)
    assert ray.get(calls, timeout=START) == list(range(6, 6 + BATCHES))
    assert ray.get(owned_here, timeout=START) == 49  # its owner came back with the driver
    driver = ray.api._node
    assert driver.reconnects == 1 and driver.resumed == 1
    runs: dict[str, int] = {}
    for mark in marks.iterdir():
        runs[mark.name.split(".")[0]] = runs.get(mark.name.split(".")[0], 0) + 1
    expected = {f"square-{i}" for i in range(BATCHES * 10)}
    expected |= {f"step-{k}" for k in range(BATCHES + 1)} | {f"blob-{b}" for b in blobs}
    assert set(runs) == expected
    assert max(runs.values()) <= 4  # the default max_retries (3): a re-run is a retry
    # only what the head took with it runs again (at most a batch in flight to it); a task
    # the worker node held or finished meanwhile does not
    assert sum(runs.values()) - len(runs) <= 12

    _wait_nodes(2)
    assert _alive_nodes() == before  # the worker node kept its index (its node id)
    # the named detached actor answers again, its state intact (it lived on the worker node)
    again = ray.get_actor("keeper")
    assert ray.get(again.add.remote(1)) == 6 + BATCHES
    assert ray.get(keeper.add.remote(1)) == 7 + BATCHES  # the handle from before works too
    # objects stored on the worker node are still readable
    assert ray.get(held[0], timeout=START) == bytes(range(256)) * 1200
    # the worker node's output reaches this driver again (it asked the new head for it:
    # without that, nothing printed after the restart would arrive)
    assert ray.get(shout.remote("printed-after-the-restart"), timeout=START) == 1
    seen, deadline = "", time.monotonic() + START
    while "printed-after-the-restart" not in seen and time.monotonic() < deadline:
        seen += capfd.readouterr().out
        time.sleep(0.05)  # polling the captured stdout; the line comes on the reader thread
    assert "printed-after-the-restart" in seen
    # the store is SQLite in WAL mode in the session directory
    db = sqlite3.connect(session / "gcs.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {t for (t,) in db.execute("SELECT DISTINCT tbl FROM rows")}
    finally:
        db.close()
    assert {"nodes", "actors", "objects", "jobs", "functions"} <= tables
    log = (procs.root / "node.log").read_text()
    assert "rejoined the head as node 1" in log
    rejoin = float(log.split("rejoined the head as node 1 in ", 1)[1].split(" s")[0])
    head_log = (procs.root / "head.log").read_text()
    restored = float(head_log.split("GCS tables restored in ", 1)[1].split(" s")[0])
    first = min(t for t in answered if t > restarted["killed_at"])
    procs.figures.update(
        listening_after_kill_s=restarted["listening_after"],
        gcs_restore_s=restored,
        node_rejoin_s=rejoin,
        driver_reconnect_s=driver.reconnect_seconds[0],
        first_get_after_listening_s=first - restarted["listening_at"],
        task_runs=sum(runs.values()),
        tasks=len(runs),
    )
    print(f"head restart figures: {procs.figures}")


def test_a_driver_gives_up_after_the_reconnect_timeout(procs: Procs) -> None:
    """Kill the head for good: the driver's next request fails with a clear error."""
    assert ray.is_initialized() and procs.head is not None
    driver = ray.api._node
    driver.worker.concurrent.reconnect_for = 1.0
    procs.head.send_signal(signal.SIGKILL)
    procs.head.wait()
    error = ""
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:  # requests in flight fail first with the loss itself
        try:
            ray.get(square.remote(2), timeout=START)
        except ClusterConnectionLost as exc:
            error = str(exc)
            if "could not be made again" in error:
                break
    assert "could not be made again within 1 s (TWINRAY_RECONNECT_TIMEOUT)" in error
    ray.shutdown()


def test_a_worker_node_gives_up_after_the_reconnect_timeout(
    procs: Procs, capsys: pytest.CaptureFixture[str]
) -> None:
    """No head comes back: a worker node stops, saying why, once its timeout ran out."""
    from runtime.real.node_process import NodeProcessConfig, _rejoin

    config = NodeProcessConfig(
        session=str(procs.root), head=False, head_address="127.0.0.1:9", reconnect_timeout=0.5
    )
    assert not _rejoin(config, "x" * 64, 1, None, None)
    assert "could not reconnect to the head at 127.0.0.1:9 within 0.5 s" in capsys.readouterr().err
    # the module's worker node (90 s) stops on SIGTERM while it retries: see the teardown


def test_reconnect_timeout_and_session_are_checked(
    procs: Procs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main

    assert main(["start", "--head", "--session", str(tmp_path / "nope")]) != 0
    assert "no such session directory" in capsys.readouterr().err
    assert main(["start", "--head", "--session", str(tmp_path)]) != 0
    assert "has no auth token" in capsys.readouterr().err
    assert main(["start", "--head", "--session", str(tmp_path), "--reconnect-timeout", "-1"]) != 0
    assert "no auth token" in capsys.readouterr().err  # the session is checked first
    assert main(["start", "--address", "127.0.0.1:9", "--reconnect-timeout", "-1"]) != 0
    assert "--reconnect-timeout must be a non-negative" in capsys.readouterr().err
