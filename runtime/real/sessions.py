"""Session directories of node processes started on this machine: where tokens, records and logs live.

`twinray start --head` makes ``<root>/session_<time>_<pid>`` (root: ``TWINRAY_SESSION_ROOT``
or ``/tmp/twinray``) and points ``<root>/session_latest`` at it. Inside:

* ``auth_token``: the cluster's token (mode 0600, `runtime.net.auth.save_token`);
* ``head.json``: the head's address and process id, written once it listens;
* ``nodes/<pid>.json``: one `NodeRecord` per node process started from this session
  (what `twinray stop` and `twinray status` read), removed when the process stops;
* ``logs/``: each node process's stdout and stderr; ``audit.log``: every connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LATEST",
    "NodeRecord",
    "head_info",
    "latest_session",
    "link_latest",
    "new_session",
    "node_records",
    "pid_alive",
    "remove_record",
    "session_root",
    "write_json",
    "write_record",
]

ROOT_ENV = "TWINRAY_SESSION_ROOT"
"""Overrides the directory sessions are made in (tests use a temporary one)."""
DEFAULT_ROOT = "/tmp/twinray"
LATEST = "session_latest"
"""The symlink to the newest session of a root."""


@dataclass(slots=True)
class NodeRecord:
    """One node process started from a session (the file ``nodes/<pid>.json``)."""

    pid: int
    address: str
    """Where the node process listens (``HOST:PORT``)."""
    head: bool
    session: str
    """The session directory."""
    started: float
    """`time.time()` when it started listening."""


def session_root() -> Path:
    """The directory sessions are made in (``TWINRAY_SESSION_ROOT`` or ``/tmp/twinray``)."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def new_session(root: Path | None = None) -> Path:
    """Make a fresh session directory (with ``logs/`` and ``nodes/``); `link_latest` points
    ``session_latest`` at it once its head listens (a failed start leaves the link alone)."""
    root = root or session_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime())
    session = root / f"session_{stamp}_{time.time_ns() % 1_000_000:06d}_{os.getpid()}"
    session.mkdir(mode=0o700)
    (session / "logs").mkdir()
    (session / "nodes").mkdir()
    return session


def link_latest(session: Path) -> None:
    """Point ``<root>/session_latest`` at `session` (atomically)."""
    root = session.parent
    tmp = root / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(session.name)
    os.replace(tmp, root / LATEST)  # a reader sees the old session or the new one


def latest_session(root: Path | None = None) -> Path | None:
    """The session ``session_latest`` points at, or None when there is none."""
    link = (root or session_root()) / LATEST
    try:
        target = link.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None
    return target if target.is_dir() else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def head_info(session: Path) -> dict[str, Any] | None:
    """The head's ``head.json`` (``address``, ``pid``) in `session`, None until it listens."""
    return _read_json(session / "head.json")


def write_record(session: Path, record: NodeRecord) -> Path:
    """Record a node process started from `session`; return the record's path."""
    path = session / "nodes" / f"{record.pid}.json"
    write_json(path, asdict(record))
    return path


def remove_record(session: Path, pid: int) -> None:
    """Forget node process `pid` (it stopped)."""
    with contextlib.suppress(FileNotFoundError):
        (session / "nodes" / f"{pid}.json").unlink()


def node_records(session: Path) -> list[NodeRecord]:
    """The node processes recorded in `session` (unreadable records are skipped), head first."""
    records = []
    for path in sorted((session / "nodes").glob("*.json")):
        data = _read_json(path)
        if data is None:
            continue
        try:
            records.append(NodeRecord(**data))
        except TypeError:
            continue
    return sorted(records, key=lambda r: (not r.head, r.started))


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
