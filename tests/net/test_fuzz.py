"""Seeded fuzzing of the handshake: random and mutated inputs are all refused, nothing unpickled."""

from __future__ import annotations

import pickle
import random
import socket
import struct
import threading

import pytest

from runtime.exceptions import AuthenticationError
from runtime.net.auth import Hello, client_handshake, new_token, server_handshake

from .conftest import raw_socket, wait_audit
from .test_channel import malicious_pickle

CASES = 300


def _valid_response(token: str, challenge: bytes) -> bytes:
    """The response a legitimate client would send to `challenge` (captured from a real one)."""
    a, b = socket.socketpair()
    a.sendall(challenge)
    t = threading.Thread(
        target=lambda: pytest.raises(
            AuthenticationError, client_handshake, b, token, Hello("node", "n"), timeout=5
        )
    )
    t.start()
    a.settimeout(5)
    head = a.recv(72, socket.MSG_WAITALL)
    (hlen,) = struct.unpack_from("<H", head, 70)
    body = a.recv(hlen, socket.MSG_WAITALL)
    a.close()
    t.join(10)
    return head + body


def _fuzz_input(rng: random.Random, valid: bytes, tmp_path) -> bytes:
    """One random or mutated handshake response."""
    kind = rng.randrange(5)
    if kind == 0:  # random bytes of a random length
        return rng.randbytes(rng.randrange(0, 400))
    if kind == 1:  # the valid frame with a few bytes flipped
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 2:  # the valid frame cut short
        return valid[: rng.randrange(len(valid))]
    if kind == 3:  # a pickle bomb wherever it fits
        bomb = malicious_pickle(tmp_path / f"pwned{rng.randrange(1 << 30)}")
        cut = rng.randrange(len(valid))
        return valid[:cut] + bomb
    data = bytearray(valid)  # a valid prefix with a random Hello length
    struct.pack_into("<H", data, 70, rng.randrange(65536))
    return bytes(data)


def test_fuzzed_responses_are_all_refused_without_unpickling(tmp_path, monkeypatch) -> None:
    """Hundreds of seeded inputs straight into `server_handshake`: every one is an
    `AuthenticationError`; pickle's loaders are never called; no bomb file appears."""
    calls: list = []

    def trap(*args, **kwargs):
        calls.append(args)
        raise AssertionError("something was unpickled during the handshake")

    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "Unpickler", trap)
    rng = random.Random(1616)
    token = new_token()
    refused = 0
    for _ in range(CASES):
        a, b = socket.socketpair()
        a.settimeout(5)
        b.settimeout(5)
        # the server sends its challenge first; read it to build inputs against this nonce
        result: dict = {}

        def serve(sock=a, out=result) -> None:
            try:
                out["hello"] = server_handshake(sock, token, timeout=5)
            except AuthenticationError as exc:
                out["error"] = exc

        t = threading.Thread(target=serve)
        t.start()
        challenge = b.recv(38, socket.MSG_WAITALL)
        valid = _valid_response(token, challenge)
        data = _fuzz_input(rng, valid, tmp_path)
        if data == valid:  # (a mutation that changed nothing: skip it)
            data = data[:-1]
        try:
            b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have refused and closed
        t.join(10)
        assert not t.is_alive()
        assert "error" in result, f"accepted fuzzed input {data!r}"
        refused += 1
        b.close()
    assert refused == CASES and not calls
    assert not list(tmp_path.glob("pwned*"))


def test_fuzzed_server_replies_are_refused_by_the_client() -> None:
    """The client, too, refuses random and mutated challenges and replies."""
    rng = random.Random(16)
    token = new_token()
    for _ in range(100):
        a, b = socket.socketpair()
        if rng.random() < 0.5:
            a.sendall(rng.randbytes(rng.randrange(0, 200)))
        else:
            a.sendall(struct.pack("<4sBB32s", b"TWRN", 1, 1, rng.randbytes(32)))
            a.sendall(rng.randbytes(rng.randrange(0, 200)))
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(AuthenticationError):
            client_handshake(b, token, Hello("node", "n"), timeout=5)
        a.close()


def test_fuzzed_peers_do_not_disturb_the_listener(make_listener, token, audit_path) -> None:
    """Many raw random peers against a live listener, then a legitimate one gets through."""
    from runtime.net.channel import connect

    listener = make_listener()
    rng = random.Random(7)
    n = 60
    for _ in range(n):
        s = raw_socket(listener)
        try:
            s.sendall(rng.randbytes(rng.randrange(1, 300)))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        s.close()
    ch, _ = connect(listener.address, token, Hello("node", "good"), timeout=30)
    srv, hello = listener.accept(timeout=30)
    assert hello.id == "good"
    lines = wait_audit(audit_path, lambda ls: sum(x["event"] == "refused" for x in ls) >= n)
    assert sum(x["event"] == "connect" for x in lines) == 1
    ch.close()
    srv.close()
