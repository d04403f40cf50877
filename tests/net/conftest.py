"""Fixtures for the network layer's tests: a token, an audited listener, raw sockets to it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.net.audit import AuditLog
from runtime.net.auth import new_token
from runtime.net.channel import Listener, listen


@pytest.fixture
def token() -> str:
    """A fresh cluster token."""
    return new_token()


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    """Where the listener's audit log goes."""
    return tmp_path / "audit.log"


@pytest.fixture
def make_listener(token: str, audit_path: Path) -> Iterator[Callable[..., Listener]]:
    """Build listeners on 127.0.0.1 (any port) auditing to `audit_path`; all closed after."""
    made: list[Listener] = []
    logs: list[AuditLog] = []

    def make(**kwargs) -> Listener:
        audit = AuditLog(audit_path)
        logs.append(audit)
        listener = listen("127.0.0.1", 0, kwargs.pop("token", token), audit=audit, **kwargs)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()
    for audit in logs:
        audit.close()


def audit_lines(path: Path) -> list[dict]:
    """The audit log's records."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_audit(path: Path, pred: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
    """Poll the audit log until `pred(lines)` holds (the listener writes from its threads)."""
    end = time.monotonic() + timeout
    while True:
        lines = audit_lines(path)
        if pred(lines):
            return lines
        if time.monotonic() > end:
            raise AssertionError(f"audit log never satisfied the condition: {lines}")
        time.sleep(0.02)


def raw_socket(listener: Listener) -> socket.socket:
    """A plain TCP socket connected to `listener` (no handshake)."""
    s = socket.create_connection((listener.host, listener.port), timeout=30)
    return s
