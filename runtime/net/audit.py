"""The audit log: one JSON line per connection accepted or refused and per job that connects."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

__all__ = ["AUDIT_EVENTS", "AUDIT_FILE", "AuditLog"]

AUDIT_FILE = "audit.log"
"""Name of the audit log in a session directory."""

AUDIT_EVENTS = ("connect", "refused", "job")
"""What a line records: an authenticated connection, a refused one, a job (driver) joining."""


class AuditLog:
    """Appends audit records to `path` (created with mode 0600), safe to share between threads.

    Each line is a JSON object: ``time`` (ISO 8601 UTC), ``unix`` (seconds), ``event``,
    ``peer`` (the remote "host:port"), ``ok``, and, when known, ``ident`` (what the peer
    says it is, e.g. "node:3") and ``reason`` (why it was refused).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def record(
        self,
        event: str,
        peer: str,
        ok: bool,
        ident: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Append one line for `event` ("connect", "refused" or "job") from `peer`."""
        if event not in AUDIT_EVENTS:
            raise ValueError(f"audit event must be one of {AUDIT_EVENTS}, got {event!r}")
        now = time.time()
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now % 1 * 1000):03d}Z",
            "unix": round(now, 3),
            "event": event,
            "peer": peer,
            "ok": bool(ok),
        }
        if ident is not None:
            entry["ident"] = ident
        if reason is not None:
            entry["reason"] = reason
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)

    def close(self) -> None:
        """Close the file (later records are dropped)."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
