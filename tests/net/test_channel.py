"""`listen`/`connect`: authenticated channels, refusals without deserializing, concurrency, audit."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import random
import selectors
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.exceptions import AuthenticationError
from runtime.net.auth import Hello, new_token
from runtime.net.channel import ListenerClosedError, connect, listen, parse_address

from .conftest import audit_lines, raw_socket, wait_audit

CHALLENGE = 38  # bytes of the server's first frame


class _CreatesFile:
    """Unpickling this creates the file at `path` (the proof that something was unpickled)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_pickle(path: Path) -> bytes:
    """A framed pickle (length prefix + protocol 5) whose loading creates `path`."""
    data = pickle.dumps(_CreatesFile(path), 5)
    return struct.pack("<I", len(data)) + data


def test_the_malicious_pickle_would_create_its_file(tmp_path: Path) -> None:
    """Control: the payload used below really does create its file when unpickled."""
    target = tmp_path / "control"
    payload = malicious_pickle(target)
    pickle.loads(payload[4:]).close()
    assert target.exists()


def test_right_token_connects_and_messages_flow_both_ways(make_listener, token, audit_path) -> None:
    listener = make_listener()
    client, server_hello = connect(listener.address, token, Hello("driver", "job-7"), timeout=30)
    server, client_hello = listener.accept(timeout=30)
    assert client_hello == Hello("driver", "job-7") and server_hello.kind == "node"
    arr = np.arange(100_000, dtype=np.float64)
    client.send_many([{"op": "hi"}, arr])
    got = server.recv_many()
    while len(got) < 2:
        got += server.recv_many()
    assert got[0] == {"op": "hi"} and np.array_equal(got[1], arr)
    server.send(("reply", 42))
    assert client.recv_many() == [("reply", 42)]
    assert client.peer == listener.address and server.hello.id == "job-7"
    client.close()
    server.close()
    lines = wait_audit(audit_path, lambda ls: any(x["event"] == "connect" for x in ls))
    entry = next(x for x in lines if x["event"] == "connect")
    assert (
        entry["ok"] is True
        and entry["ident"] == "driver:job-7"
        and entry["peer"].startswith("127.0.0.1:")
    )
    assert "time" in entry


def test_each_side_can_listen(token) -> None:
    """Node A listens and B dials, then B listens and A dials."""
    for name in ("a", "b"):
        with listen("127.0.0.1", 0, token, hello=Hello("node", name)) as lst:
            ch, peer = connect(lst.address, token, Hello("node", "other"), timeout=30)
            srv, _ = lst.accept(timeout=30)
            assert peer == Hello("node", name)
            srv.send(name)
            assert ch.recv_many() == [name]
            ch.close()
            srv.close()


def test_non_blocking_channel_under_selectors(make_listener, token) -> None:
    listener = make_listener()
    client, _ = connect(listener.address, token, Hello("node", "n"), timeout=30)
    server, _ = listener.accept(timeout=30)
    server.setblocking(False)
    assert server.recv_many() == []
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    client.send_many(list(range(1000)))
    got: list = []
    while len(got) < 1000:
        assert sel.select(timeout=30)
        got += server.recv_many()
    assert got == list(range(1000))
    sel.close()
    client.close()
    server.close()


def test_wrong_token_is_refused_and_audited(make_listener, audit_path) -> None:
    listener = make_listener()
    with pytest.raises(AuthenticationError, match="wrong token"):
        connect(listener.address, new_token(), Hello("node", "intruder"), timeout=30)
    lines = wait_audit(audit_path, lambda ls: any(x["event"] == "refused" for x in ls))
    refused = [x for x in lines if x["event"] == "refused"]
    assert refused[0]["ok"] is False and "wrong token" in refused[0]["reason"]
    assert "ident" not in refused[0]  # an unauthenticated Hello is never believed
    with pytest.raises(TimeoutError):
        listener.accept(timeout=0)


def test_no_token_is_refused_before_dialling(make_listener) -> None:
    listener = make_listener()
    with pytest.raises(AuthenticationError):
        connect(listener.address, None, Hello("node", "n"), timeout=30)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError):
        listen("127.0.0.1", 0, "")


def _refusals(audit_path: Path, n: int) -> list[dict]:
    return [
        x
        for x in wait_audit(audit_path, lambda ls: sum(x["event"] == "refused" for x in ls) >= n)
        if x["event"] == "refused"
    ]


@pytest.mark.parametrize(
    "what, payload, reason",
    [
        ("nothing", b"", "closed the connection"),
        ("truncated", struct.pack("<4sBB", b"TWRN", 1, 2) + b"\0" * 10, "closed the connection"),
        ("random bytes", random.Random(20261201).randbytes(200), "malformed"),
        (
            "oversized Hello",
            struct.pack("<4sBB32s32sH", b"TWRN", 1, 2, b"\0" * 32, b"\0" * 32, 60000),
            "60000 bytes",
        ),
        (
            "wrong version",
            struct.pack("<4sBB32s32sH", b"TWRN", 7, 2, b"\0" * 32, b"\0" * 32, 10),
            "version",
        ),
    ],
    ids=["nothing", "truncated", "random bytes", "oversized Hello", "wrong version"],
)
def test_bad_handshakes_are_refused(make_listener, audit_path, what, payload, reason) -> None:
    listener = make_listener()
    s = raw_socket(listener)
    s.recv(CHALLENGE, socket.MSG_WAITALL)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    refused = _refusals(audit_path, 1)
    assert reason in refused[0]["reason"], (what, refused)
    s.close()


def test_malicious_pickle_before_authentication_is_never_loaded(
    make_listener, token, audit_path, tmp_path
) -> None:
    """Pickles sent at once, or in place of the handshake response, are refused unread, while a
    legitimate peer connects; the file the pickle would create never appears."""
    listener = make_listener()
    targets = [tmp_path / f"pwned{i}" for i in range(3)]
    s1 = raw_socket(listener)  # at once, without reading the challenge
    s1.sendall(malicious_pickle(targets[0]))
    s2 = raw_socket(listener)  # as the response to the challenge
    s2.recv(CHALLENGE, socket.MSG_WAITALL)
    s2.sendall(malicious_pickle(targets[1]) * 4)
    s3 = raw_socket(listener)  # after a well-formed prefix with a made-up MAC
    s3.recv(CHALLENGE, socket.MSG_WAITALL)
    body = malicious_pickle(targets[2])
    s3.sendall(
        struct.pack("<4sBB32s32sH", b"TWRN", 1, 2, os.urandom(32), os.urandom(32), len(body)) + body
    )
    ch, _ = connect(listener.address, token, Hello("node", "good"), timeout=30)
    srv, hello = listener.accept(timeout=30)
    assert hello.id == "good"
    srv.send("still serving")
    assert ch.recv_many() == ["still serving"]
    for s in (s1, s2, s3):
        with contextlib.suppress(OSError):  # the server may have closed it already
            s.shutdown(socket.SHUT_WR)
    refused = _refusals(audit_path, 3)
    assert len(refused) == 3
    for s in (s1, s2, s3):
        s.settimeout(30)
        with contextlib.suppress(ConnectionResetError):
            while s.recv(4096):  # the server closes each of them
                pass
        s.close()
    assert not any(t.exists() for t in targets)
    ch.close()
    srv.close()


def test_slow_peer_hits_the_deadline_while_others_are_served(
    make_listener, token, audit_path
) -> None:
    """Peers that stall mid-handshake are cut off at the deadline; meanwhile a legitimate peer
    gets through at once."""
    listener = make_listener(handshake_timeout=1.0)
    stalled = []
    for _ in range(5):
        s = raw_socket(listener)
        s.recv(CHALLENGE, socket.MSG_WAITALL)
        s.sendall(struct.pack("<4sBB", b"TWRN", 1, 2))  # a prefix, then nothing
        stalled.append(s)
    trickle = raw_socket(listener)  # one byte at a time, never finishing in time
    trickle.recv(CHALLENGE, socket.MSG_WAITALL)
    ch, _ = connect(listener.address, token, Hello("node", "good"), timeout=30)
    srv, _ = listener.accept(timeout=30)
    end, cut_off = time.monotonic() + 30, False
    while not cut_off and time.monotonic() < end:
        try:  # keeps trickling until the server closes the connection at its deadline
            trickle.send(b"\0")
            time.sleep(0.2)
        except OSError:
            cut_off = True
    assert cut_off
    refused = _refusals(audit_path, 6)
    assert all("within 1 s" in x["reason"] for x in refused), refused
    for s in [*stalled, trickle]:
        s.close()
    ch.close()
    srv.close()


def test_too_many_pending_handshakes_are_shed(make_listener, token, audit_path) -> None:
    listener = make_listener(max_pending=2, handshake_timeout=30)
    idle = [raw_socket(listener) for _ in range(2)]
    for s in idle:
        s.recv(CHALLENGE, socket.MSG_WAITALL)  # both handshakes are now in progress
    extra = raw_socket(listener)
    refused = _refusals(audit_path, 1)
    assert "too many" in refused[0]["reason"]
    extra.settimeout(30)
    assert extra.recv(100) == b""  # closed without a challenge
    for s in idle:
        s.close()
    ch, _ = connect(listener.address, token, Hello("node", "n"), timeout=30, retry_for=10)
    listener.accept(timeout=30)[0].close()
    ch.close()
    extra.close()


def test_connect_retries_until_the_listener_is_up(token) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result: dict = {}

    def dial() -> None:
        result["ch"] = connect(
            f"127.0.0.1:{port}", token, Hello("node", "n"), timeout=30, retry_for=30
        )

    t = threading.Thread(target=dial)
    t.start()
    time.sleep(0.3)
    with listen("127.0.0.1", port, token) as lst:
        srv, _ = lst.accept(timeout=30)
        t.join(30)
        ch, _ = result["ch"]
        ch.close()
        srv.close()


def test_connect_without_retry_fails_fast_on_a_closed_port(token) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionError, match="cannot connect"):
        connect(f"127.0.0.1:{port}", token, Hello("node", "n"), timeout=5)


def test_binding_beyond_loopback_warns(token, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="runtime.net"):
        with listen("127.0.0.1", 0, token):
            pass
        assert not caplog.records
        with listen("0.0.0.0", 0, token):
            pass
    assert any("reachable beyond this machine" in r.getMessage() for r in caplog.records)


def test_accept_after_close_and_close_while_waiting(token) -> None:
    lst = listen("127.0.0.1", 0, token)
    errors: list = []

    def wait() -> None:
        try:
            lst.accept()
        except ListenerClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)
    lst.close()
    t.join(30)
    assert errors
    with pytest.raises(ListenerClosedError):
        lst.accept(timeout=1)


@pytest.mark.parametrize("bad", ["nohost", "host:", ":80", "h:0", "h:99999", "h:abc"])
def test_bad_addresses_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(bad)
    assert parse_address("[::1]:80") == ("::1", 80)


def test_listener_fileno_is_readable_when_a_peer_is_ready(make_listener, token) -> None:
    listener = make_listener()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    assert sel.select(timeout=0) == []
    ch, _ = connect(listener.address, token, Hello("worker", "w1"), timeout=30)
    assert sel.select(timeout=30)
    srv, hello = listener.accept(timeout=0)
    assert hello.kind == "worker"
    assert sel.select(timeout=0) == []
    sel.close()
    ch.close()
    srv.close()
    assert audit_lines  # helper imported for other tests


def test_a_dropped_handshake_is_lost_and_retried_a_refusal_is_not(token) -> None:
    """A server that closes mid-handshake gives `lost` errors, retried within `retry_for`
    until the real listener answers; a wrong token fails at once, not retried."""
    fake = socket.socket()
    fake.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port is reused below
    fake.bind(("127.0.0.1", 0))
    fake.listen()
    port = fake.getsockname()[1]
    drops = []

    def drop_twice() -> None:
        for _ in range(2):
            c, _ = fake.accept()
            drops.append(1)
            c.close()
        fake.close()

    t = threading.Thread(target=drop_twice)
    t.start()
    with pytest.raises(AuthenticationError) as info:
        connect(f"127.0.0.1:{port}", token, Hello("node", "n"), timeout=30)
    assert info.value.lost
    result: dict = {}

    def dial() -> None:
        result["ch"] = connect(
            f"127.0.0.1:{port}", token, Hello("node", "n"), timeout=30, retry_for=30
        )

    d = threading.Thread(target=dial)
    d.start()
    t.join(30)
    with listen("127.0.0.1", port, token) as lst:
        srv, _ = lst.accept(timeout=30)
        d.join(30)
        result["ch"][0].close()
        srv.close()
        t0 = time.monotonic()
        with pytest.raises(AuthenticationError) as info:
            connect(lst.address, new_token(), Hello("node", "n"), timeout=30, retry_for=30)
        assert not info.value.lost and time.monotonic() - t0 < 25
    assert len(drops) == 2


def test_closing_the_listener_closes_channels_never_accepted(token) -> None:
    lst = listen("127.0.0.1", 0, token)
    clients = [connect(lst.address, token, Hello("node", f"n{i}"), timeout=30)[0] for i in range(3)]
    sel = selectors.DefaultSelector()
    sel.register(lst, selectors.EVENT_READ)
    while sel.select(timeout=30) and lst._ready.qsize() < 3:  # all three are authenticated
        time.sleep(0.01)
    sel.close()
    lst.close()
    for ch in clients:
        with pytest.raises(EOFError):
            ch.recv_many()
        ch.close()
