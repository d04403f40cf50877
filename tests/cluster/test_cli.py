"""`twinray start --head`, `status` and `stop`, run as the shell runs them (real processes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import ROOT, recorded_pids, start_head, twinray, wait_gone


def test_start_status_and_stop_a_background_head(session_root) -> None:
    h = start_head(
        session_root, "--num-cpus", "2", "--object-store-memory", str(32 << 20),
        "--resources", '{"special": 1}',
    )  # fmt: skip
    assert f"runtime.init(address='{h.address}')" in h.out and "twinray stop" in h.out
    assert h.address.startswith("127.0.0.1:")
    token = h.session / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text().strip()) == 64
    record = json.loads((h.session / "nodes" / f"{h.pid}.json").read_text())
    assert record["address"] == h.address and record["head"] is True
    children = _descendants(h.pid)
    assert children, "the head has a zygote and workers"

    status = twinray("status", env=h.env)
    assert status.returncode == 0, status.stderr
    assert f"cluster at {h.address}" in status.stdout and f"head pid {h.pid}" in status.stdout
    assert "CPU: 0 / 2" in status.stdout and "special: 0 / 1" in status.stdout
    assert "object store of node 0: 0.0 / 32.0 MiB used, 0 objects" in status.stdout
    assert "actors alive: 0" in status.stdout
    port = h.address.rsplit(":", 1)[1]
    busy = twinray("start", "--head", "--port", port, env=h.env)  # the port is taken
    assert busy.returncode == 1 and "cannot listen" in busy.stderr
    assert (session_root / "session_latest").resolve() == h.session  # still the live one
    audit = [json.loads(line) for line in (h.session / "audit.log").read_text().splitlines()]
    assert any(e["event"] == "connect" and e["ident"].startswith("client:") for e in audit)

    proc = twinray("stop", env=h.env)
    assert proc.returncode == 0 and "stopped 1 node process" in proc.stdout
    assert not wait_gone([h.pid, *children])
    assert not recorded_pids(session_root)
    assert not (h.session / "head.json").exists()
    after = twinray("status", env=h.env)
    assert after.returncode == 1 and "no twinray cluster is running" in after.stderr
    again = twinray("stop", env=h.env)
    assert again.returncode == 0 and "no twinray node process is running" in again.stdout


BAD_FLAGS = [
    (["--resources", "{bad"], "--resources must be a JSON object"),
    (["--resources", '{"x": -1}'], "'x' must be a non-negative number"),
    (["--resources", '{"CPU": 2}'], "'CPU' is set by its own flag"),
    (["--num-cpus", "-1"], "--num-cpus must be a non-negative number"),
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--object-store-memory", "0"], "--object-store-memory must be positive"),
    (["--heartbeat-period-s", "0"], "--heartbeat-period-s: heartbeat_period_s must be a pos"),
    (["--node-timeout-s", "2"], "--node-timeout-s: node_timeout_s must be longer than"),
]


def test_start_refuses_bad_flags_before_starting_anything(session_root, capsys) -> None:
    from runtime.cli import main

    for flags, says in BAD_FLAGS:
        assert main(["start", "--head", *flags]) == 2
        assert says in capsys.readouterr().err
    assert main(["start"]) == 2
    assert "give either --head or --address" in capsys.readouterr().err
    assert not recorded_pids(session_root)
    assert not list(session_root.glob("session_2*"))  # nothing left behind


def _block(session_root: Path) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, TWINRAY_SESSION_ROOT=str(session_root))
    cmd = [sys.executable, "-m", "runtime.cli", "start", "--head", "--block", "--port", "0"]
    cmd += ["--num-cpus", "1", "--object-store-memory", str(32 << 20)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the first line of the "how to connect" text
    assert "twinray head node started" in line, line
    info = json.loads((session_root / "session_latest" / "head.json").read_text())
    assert info["pid"] == proc.pid
    return proc, env


def test_block_stays_in_the_foreground_and_sigterm_stops_it_cleanly(session_root) -> None:
    proc, env = _block(session_root)
    children = _descendants(proc.pid)
    assert twinray("status", env=env).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not wait_gone(children)
    assert not recorded_pids(session_root)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        found += kids
        frontier += kids
    return found
