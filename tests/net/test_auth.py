"""The cluster token (files, lookup order) and the HMAC handshake over a socket pair."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
from pathlib import Path

import pytest

from runtime.exceptions import AuthenticationError, RayError
from runtime.net import auth
from runtime.net.auth import (
    Hello,
    client_handshake,
    find_token,
    new_token,
    save_token,
    server_handshake,
)


def test_new_token_is_64_hex_and_fresh() -> None:
    a, b = new_token(), new_token()
    assert len(a) == 64 and int(a, 16) >= 0 and a != b


def test_save_token_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    tok = new_token()
    path = save_token(tmp_path / "session", tok)
    assert path == tmp_path / "session" / "auth_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == tok
    with pytest.raises(FileExistsError):
        save_token(tmp_path / "session", new_token())
    assert path.read_text().strip() == tok


def test_find_token_order_variable_then_file_then_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN_FILE", raising=False)
    session = tmp_path / "s"
    assert find_token(session) is None  # nothing anywhere
    in_session, in_file, in_var = new_token(), new_token(), new_token()
    save_token(session, in_session)
    assert find_token(session) == in_session
    token_file = tmp_path / "tok"
    token_file.write_text(in_file + "\n")
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN_FILE", str(token_file))
    assert find_token(session) == in_file
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN", in_var)
    assert find_token(session) == in_var


def test_find_token_default_session_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN_FILE", raising=False)
    monkeypatch.delenv("TWINRAY_SESSION_ROOT", raising=False)
    monkeypatch.setattr(auth, "DEFAULT_SESSION_DIR", tmp_path / "latest")
    assert find_token() is None
    tok = new_token()
    save_token(tmp_path / "latest", tok)
    assert find_token() == tok
    monkeypatch.setenv("TWINRAY_SESSION_ROOT", str(tmp_path / "root"))  # another root
    assert find_token() is None
    other = new_token()
    save_token(tmp_path / "root" / "session_latest", other)
    assert find_token() == other


def test_token_file_variable_naming_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(AuthenticationError, match="nope"):
        find_token(tmp_path)


@pytest.mark.parametrize("bad", ["", "short", "has space in it ok?", 12345, "x" * 5000])
def test_unusable_tokens_are_refused(bad: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthenticationError):
        auth.check_token(bad)
    if isinstance(bad, str) and bad:
        monkeypatch.setenv("TWINRAY_AUTH_TOKEN", bad)
        with pytest.raises(AuthenticationError, match="TWINRAY_AUTH_TOKEN"):
            find_token()


def test_authentication_error_is_documented_and_a_connection_error() -> None:
    assert issubclass(AuthenticationError, RayError)
    assert issubclass(AuthenticationError, ConnectionError)
    assert AuthenticationError.__doc__


def _pair_handshake(server_token: str, client_token: str, client_hello: Hello) -> tuple:
    """Run both handshakes over a socket pair; return (server result, client result)."""
    a, b = socket.socketpair()
    results: dict[str, object] = {}

    def serve() -> None:
        try:
            results["server"] = server_handshake(
                a, server_token, timeout=10, hello=Hello("node", "head")
            )
        except AuthenticationError as exc:
            results["server"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        results["client"] = client_handshake(b, client_token, client_hello, timeout=10)
    except AuthenticationError as exc:
        results["client"] = exc
    t.join(30)
    a.close()
    b.close()
    return results["server"], results["client"]


def test_right_token_exchanges_hellos() -> None:
    tok = new_token()
    server, client = _pair_handshake(tok, tok, Hello("driver", "job-1", "0.1.0"))
    assert server == Hello("driver", "job-1", "0.1.0")
    assert client == Hello("node", "head")


def test_wrong_token_fails_on_both_sides() -> None:
    server, client = _pair_handshake(new_token(), new_token(), Hello("node", "n1"))
    assert isinstance(server, AuthenticationError) and "wrong token" in str(server)
    assert isinstance(client, AuthenticationError) and "wrong token" in str(client)


def test_token_never_crosses_the_wire() -> None:
    """Record every byte both sides send: neither the token nor its bytes appear."""
    tok = new_token()
    a, b = socket.socketpair()
    seen = bytearray()

    class Tap:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def __getattr__(self, name: str):
            return getattr(self.sock, name)

        def sendall(self, data: bytes) -> None:
            seen.extend(data)
            self.sock.sendall(data)

    t = threading.Thread(target=server_handshake, args=(Tap(a), tok), kwargs={"timeout": 10})
    t.start()
    client_handshake(Tap(b), tok, Hello("node", "n1"), timeout=10)  # type: ignore[arg-type]
    t.join(30)
    assert seen and tok.encode() not in seen and bytes.fromhex(tok) not in seen
    a.close()
    b.close()


def test_server_that_does_not_know_the_token_is_caught_by_the_client() -> None:
    """A fake server that answers with a made-up MAC is refused by the client."""
    a, b = socket.socketpair()
    tok = new_token()

    def fake() -> None:
        a.sendall(struct.pack("<4sBB32s", b"TWRN", 1, 1, os.urandom(32)))
        a.recv(4096)
        hello = Hello("node", "evil").encode()
        a.sendall(struct.pack("<4sBB32sH", b"TWRN", 1, 3, os.urandom(32), len(hello)) + hello)

    t = threading.Thread(target=fake)
    t.start()
    with pytest.raises(AuthenticationError, match="failed to prove"):
        client_handshake(b, tok, Hello("node", "n1"), timeout=10)
    t.join(30)
    a.close()


def test_protocol_version_mismatch_is_named() -> None:
    a, b = socket.socketpair()
    a.sendall(struct.pack("<4sBB32s", b"TWRN", 99, 1, os.urandom(32)))
    with pytest.raises(AuthenticationError, match="version 99"):
        client_handshake(b, new_token(), Hello("node", "n1"), timeout=10)
    a.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "martian", "id": "x"}, {"kind": "node", "id": ""}, {"kind": "node", "id": "x" * 300}],
)
def test_bad_hello_is_refused_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Hello(**kwargs)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"[1, 2]",
        b'{"kind": "node"}',
        b'{"kind":"node","id":"a","version":"1","x":1}',
        b'{"kind":"god","id":"a","version":"1"}',
        b"not json",
    ],
)
def test_decoding_a_bad_hello_is_an_authentication_error(data: bytes) -> None:
    with pytest.raises(AuthenticationError):
        Hello.decode(data)


def test_a_token_file_others_can_read_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN", raising=False)
    path = tmp_path / "tok"
    tok = new_token()
    path.write_text(tok)
    path.chmod(0o644)
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN_FILE", str(path))
    with caplog.at_level("WARNING", logger="runtime.net"):
        assert find_token() == tok
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level("WARNING", logger="runtime.net"):
        assert find_token() == tok
    assert not caplog.records
