"""Fixtures for multi-node real mode: a private session root, a head started with the CLI, and cleanup.

Every node process a test starts is recorded in its session (``nodes/<pid>.json``); the
teardown stops them with `twinray stop` and then SIGKILLs whatever is still alive, so a
failing test never leaves processes behind (their workers and zygote exit with them; the
arena is a memfd, gone with its last process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0


def twinray(
    *args: str, env: dict[str, str], timeout: float = START_TIMEOUT
) -> subprocess.CompletedProcess:
    """Run ``python -m runtime.cli ARGS`` from the repository root; its completed process."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def recorded_pids(root: Path) -> list[int]:
    """Pids of every node process recorded under session root `root`."""
    sessions = [s for s in root.glob("session_*") if not s.is_symlink()]
    return [int(p.stem) for s in sessions for p in (s / "nodes").glob("*.json")]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait until every pid is gone; return those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def kill_all(root: Path, extra: list[int] = ()) -> None:
    """SIGKILL every node process recorded under `root` (and `extra` pids)."""
    for pid in [*recorded_pids(root), *extra]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Head:
    """A head node process started with `twinray start --head` for a test."""

    address: str
    pid: int
    session: Path
    env: dict[str, str]
    out: str


@pytest.fixture
def session_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private session root (``TWINRAY_SESSION_ROOT``), cleaned of processes afterwards."""
    root = tmp_path / "twinray"
    monkeypatch.setenv("TWINRAY_SESSION_ROOT", str(root))
    for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    yield root
    pids = recorded_pids(root)
    kill_all(root)
    assert not wait_gone(pids), "node processes survived SIGKILL"


def start_head(root: Path, *flags: str) -> Head:
    """Start a head with the CLI under session root `root`; fail the test if it does not start."""
    env = dict(os.environ, TWINRAY_SESSION_ROOT=str(root))
    proc = twinray("start", "--head", "--port", "0", *flags, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    session = (root / "session_latest").resolve()
    info = json.loads((session / "head.json").read_text())
    return Head(info["address"], info["pid"], session, env, proc.stdout)


@pytest.fixture(scope="module")
def shared_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    """One head for a whole test module (2 CPUs, 64 MiB store, a custom resource); every
    test connects its own driver and shuts it down. Cleaned up as `session_root` is."""
    root = tmp_path_factory.mktemp("cluster") / "twinray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWINRAY_SESSION_ROOT", str(root))
        for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        pids: list[int] = []
        try:
            h = start_head(
                root, "--num-cpus", "2", "--object-store-memory", str(64 << 20),
                "--resources", '{"special": 1}',
            )  # fmt: skip
            pids = recorded_pids(root)
            yield h
        finally:
            import runtime

            if runtime.is_initialized():
                runtime.shutdown()
            twinray("stop", "--grace-period", "10", env=dict(os.environ))
            kill_all(root, pids)
            assert not wait_gone(pids), "node processes survived SIGKILL"
