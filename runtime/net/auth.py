"""The cluster token and the mutual HMAC challenge-response that authenticates every connection.

A cluster has one secret token (`new_token`, 256 random bits as 64 hex characters). Before a
connection carries a single pickle, both ends prove they know the token without sending it:

====  ==========  =======================================================================
step  direction   frame (fixed-size binary header, little-endian)
====  ==========  =======================================================================
1     server ->   CHALLENGE: magic ``TWRN`` | version u8 | type 1 | server nonce (32 B)
2     client ->   RESPONSE:  magic | version | type 2 | client nonce (32 B) |
                  client MAC (32 B) | hello length u16 | client Hello (JSON, <= 1024 B)
3     server ->   ACCEPT:    magic | version | type 3 | server MAC (32 B) |
                  hello length u16 | server Hello (JSON, <= 1024 B)
      or          REFUSE:    magic | version | type 4 | reason u8   (then the server closes)
====  ==========  =======================================================================

client MAC = HMAC-SHA256(token, "twinray-net-1 client" | server nonce | client nonce |
client Hello); server MAC = HMAC-SHA256(token, "twinray-net-1 server" | client nonce |
server nonce | client Hello | server Hello). Both are checked with `hmac.compare_digest`.
Fresh nonces on both sides make every MAC single-use (no replay), the direction labels stop
reflection, and the MACs cover the Hellos so neither can be altered in flight. A Hello is
parsed (as JSON, never pickle) only after its MAC verified. Any malformed, short, oversized
or late input raises `AuthenticationError` and closes the socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.exceptions import AuthenticationError

__all__ = [
    "DEFAULT_SESSION_DIR",
    "HELLO_KINDS",
    "MAX_HELLO",
    "PROTOCOL_VERSION",
    "TOKEN_FILE",
    "AuthenticationError",
    "Hello",
    "check_token",
    "client_handshake",
    "find_token",
    "new_token",
    "save_token",
    "server_handshake",
]

PROTOCOL_VERSION = 1
"""Version of the handshake and of the wire behind it; both ends must speak the same."""
MAGIC = b"TWRN"
NONCE_BYTES = 32
MAC_BYTES = 32
MAX_HELLO = 1024
"""Largest Hello (encoded JSON) accepted, in bytes."""
HELLO_KINDS = ("node", "driver", "worker", "client")
"""What a peer may say it is."""
TOKEN_FILE = "auth_token"
"""Name of the token file in a session directory."""
DEFAULT_SESSION_DIR = Path("/tmp/twinray/session_latest")
"""The latest local session (where `find_token` looks by default, unless
`TWINRAY_SESSION_ROOT` names another root: then ``<root>/session_latest``)."""
MIN_TOKEN_CHARS = 16
log = logging.getLogger("runtime.net")
_MAX_TOKEN_CHARS = 4096

_CHALLENGE = struct.Struct("<4sBB32s")
_RESPONSE = struct.Struct("<4sBB32s32sH")
_ACCEPT = struct.Struct("<4sBB32sH")
_REFUSE = struct.Struct("<4sBBB")
_PREFIX = struct.Struct("<4sBB")
_T_CHALLENGE, _T_RESPONSE, _T_ACCEPT, _T_REFUSE = 1, 2, 3, 4
_LABEL_CLIENT = b"twinray-net-1 client"
_LABEL_SERVER = b"twinray-net-1 server"

REFUSE_BAD_MAC, REFUSE_VERSION, REFUSE_MALFORMED = 1, 2, 3
_REFUSE_TEXT = {
    REFUSE_BAD_MAC: "wrong token",
    REFUSE_VERSION: "protocol version mismatch",
    REFUSE_MALFORMED: "malformed handshake",
}


@dataclass(frozen=True)
class Hello:
    """What a peer says it is, exchanged (authenticated) during the handshake."""

    kind: str
    """"node", "driver", "worker" or "client"."""
    id: str
    """The peer's node / driver / worker id (at most 256 characters)."""
    version: str = "0.1.0"
    """The peer's twinray version (at most 64 characters)."""

    def __post_init__(self) -> None:
        if self.kind not in HELLO_KINDS:
            raise ValueError(f"Hello kind must be one of {HELLO_KINDS}, got {self.kind!r}")
        if not isinstance(self.id, str) or not 0 < len(self.id) <= 256:
            raise ValueError(f"Hello id must be a non-empty string of <= 256 chars: {self.id!r}")
        if not isinstance(self.version, str) or len(self.version) > 64:
            raise ValueError(f"Hello version must be a string of <= 64 chars: {self.version!r}")

    def encode(self) -> bytes:
        """Return the compact JSON encoding (raises ValueError beyond `MAX_HELLO` bytes)."""
        data = json.dumps(
            {"kind": self.kind, "id": self.id, "version": self.version}, separators=(",", ":")
        ).encode()
        if len(data) > MAX_HELLO:
            raise ValueError(f"Hello is {len(data)} bytes, more than {MAX_HELLO}")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        """Parse an encoded Hello; raise `AuthenticationError` when it is not a valid one."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise AuthenticationError(f"peer's Hello is not JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) != {"kind", "id", "version"}:
            raise AuthenticationError("peer's Hello must be an object of kind, id and version")
        try:
            return cls(obj["kind"], obj["id"], obj["version"])
        except ValueError as exc:
            raise AuthenticationError(f"peer's Hello is invalid: {exc}") from None


# -- the token ----------------------------------------------------------------------------


def new_token() -> str:
    """Return a fresh cluster token: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)


def check_token(token: object, source: str = "token") -> str:
    """Return `token` if it is usable (a printable string of 16..4096 characters, no spaces);
    raise `AuthenticationError` naming `source` otherwise."""
    if not isinstance(token, str):
        raise AuthenticationError(f"{source} must be a string, got {type(token).__name__}")
    if not MIN_TOKEN_CHARS <= len(token) <= _MAX_TOKEN_CHARS:
        raise AuthenticationError(
            f"{source} must have {MIN_TOKEN_CHARS} to {_MAX_TOKEN_CHARS} characters, "
            f"it has {len(token)}"
        )
    if not token.isprintable() or any(c.isspace() for c in token):
        raise AuthenticationError(f"{source} must be printable characters without spaces")
    return token


def save_token(session_dir: Path, token: str) -> Path:
    """Write `token` to `<session_dir>/auth_token`, created with mode 0600 (never overwritten:
    an existing file raises `FileExistsError`); create `session_dir` (0700) if missing."""
    check_token(token)
    session_dir = Path(session_dir)
    session_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = session_dir / TOKEN_FILE
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask did
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return path


def _read_token_file(path: Path, source: str) -> str:
    try:
        text = Path(path).read_text()
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise AuthenticationError(f"cannot read the token file {path} ({source}): {exc}") from None
    if mode & 0o077:
        log.warning(
            "the token file %s can be read by other users (mode %o): chmod 600 it",
            path,
            mode & 0o777,
        )
    return check_token(text.strip(), f"token in {path}")


def find_token(session_dir: Path | None = None) -> str | None:
    """Return the cluster token to connect with, or None when there is none.

    Looks, in order, at the `TWINRAY_AUTH_TOKEN` variable, the file named by
    `TWINRAY_AUTH_TOKEN_FILE` (it must exist), and `<session_dir>/auth_token` (default: the
    latest local session, `/tmp/twinray/session_latest`, or `$TWINRAY_SESSION_ROOT/
    session_latest`). A token found but unusable raises `AuthenticationError`.
    """
    env = os.environ.get("TWINRAY_AUTH_TOKEN")
    if env:
        return check_token(env.strip(), "TWINRAY_AUTH_TOKEN")
    env_file = os.environ.get("TWINRAY_AUTH_TOKEN_FILE")
    if env_file:
        return _read_token_file(Path(env_file), "TWINRAY_AUTH_TOKEN_FILE")
    if session_dir is None:
        root = os.environ.get("TWINRAY_SESSION_ROOT")
        session_dir = Path(root) / "session_latest" if root else DEFAULT_SESSION_DIR
    path = Path(session_dir) / TOKEN_FILE
    if not path.exists():
        return None
    return _read_token_file(path, "session directory")


# -- the handshake -------------------------------------------------------------------------


def _mac(token: str, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(token.encode(), label + b"".join(parts), hashlib.sha256).digest()


class _Deadline:
    """Reads exactly n bytes from a socket, all reads together finishing by one deadline."""

    __slots__ = ("sock", "end", "timeout")

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.end = time.monotonic() + timeout

    def _arm(self) -> None:
        left = self.end - time.monotonic()
        if left <= 0:
            raise AuthenticationError(f"handshake not completed within {self.timeout:.3g} s")
        self.sock.settimeout(left)

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        mv = memoryview(buf)
        got = 0
        while got < n:
            self._arm()
            try:
                k = self.sock.recv_into(mv[got:])
            except TimeoutError:
                raise AuthenticationError(
                    f"handshake not completed within {self.timeout:.3g} s"
                ) from None
            except OSError as exc:
                raise AuthenticationError(
                    f"connection failed during the handshake: {exc}", lost=True
                ) from None
            if k == 0:
                raise AuthenticationError(
                    f"peer closed the connection during the handshake ({got} of {n} bytes)",
                    lost=True,
                )
            got += k
        return bytes(buf)

    def write(self, data: bytes) -> None:
        self._arm()
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise AuthenticationError(
                f"handshake not completed within {self.timeout:.3g} s"
            ) from None
        except OSError as exc:
            raise AuthenticationError(
                f"connection failed during the handshake: {exc}", lost=True
            ) from None


def _check_prefix(magic: bytes, version: int, ftype: int, want: int) -> int:
    """Return 0 if the frame prefix is right, else the refusal reason."""
    if magic != MAGIC:
        return REFUSE_MALFORMED
    if version != PROTOCOL_VERSION:
        return REFUSE_VERSION
    if ftype != want:
        return REFUSE_MALFORMED
    return 0


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _refuse(sock: socket.socket, reason: int) -> None:
    """Tell the client why (best effort, never blocking) and close."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(_REFUSE.pack(MAGIC, PROTOCOL_VERSION, _T_REFUSE, reason))
    _close(sock)


def server_handshake(
    sock: socket.socket, token: str, *, timeout: float, hello: Hello | None = None
) -> Hello:
    """Authenticate the client on `sock` (the accepting side); return the client's Hello.

    `hello` is what this side says it is (default: a node). The whole exchange must finish
    within `timeout` seconds. On any failure the socket is closed and `AuthenticationError`
    raised; nothing the client sent is deserialized before its MAC verified (and then only
    as JSON). On success the socket is left blocking, without a timeout.
    """
    check_token(token)
    mine = (hello or Hello("node", "server")).encode()
    io = _Deadline(sock, timeout)
    snonce = secrets.token_bytes(NONCE_BYTES)
    try:
        io.write(_CHALLENGE.pack(MAGIC, PROTOCOL_VERSION, _T_CHALLENGE, snonce))
        magic, version, ftype, cnonce, cmac, hlen = _RESPONSE.unpack(io.read(_RESPONSE.size))
        reason = _check_prefix(magic, version, ftype, _T_RESPONSE)
        if reason == 0 and not 0 < hlen <= MAX_HELLO:
            reason = REFUSE_MALFORMED
        if reason:
            _refuse(sock, reason)
            detail = ""
            if reason == REFUSE_VERSION:
                detail = f" (client speaks {version}, this side {PROTOCOL_VERSION})"
            elif magic == MAGIC and ftype == _T_RESPONSE:
                detail = f" (Hello of {hlen} bytes, at most {MAX_HELLO})"
            raise AuthenticationError(f"client refused: {_REFUSE_TEXT[reason]}{detail}")
        theirs = io.read(hlen)
        if not hmac.compare_digest(cmac, _mac(token, _LABEL_CLIENT, snonce, cnonce, theirs)):
            _refuse(sock, REFUSE_BAD_MAC)
            raise AuthenticationError("client refused: wrong token")
        try:
            peer = Hello.decode(theirs)
        except AuthenticationError:
            _refuse(sock, REFUSE_MALFORMED)
            raise
        smac = _mac(token, _LABEL_SERVER, cnonce, snonce, theirs, mine)
        io.write(_ACCEPT.pack(MAGIC, PROTOCOL_VERSION, _T_ACCEPT, smac, len(mine)) + mine)
        sock.settimeout(None)
        return peer
    except BaseException:
        _close(sock)
        raise


def client_handshake(sock: socket.socket, token: str, hello: Hello, *, timeout: float) -> Hello:
    """Authenticate to the server on `sock` (the connecting side); return the server's Hello.

    Proves this side knows `token` and checks that the server does too; the whole exchange
    must finish within `timeout` seconds. On any failure the socket is closed and
    `AuthenticationError` raised. On success the socket is left blocking, without a timeout.
    """
    check_token(token)
    mine = hello.encode()
    io = _Deadline(sock, timeout)
    try:
        magic, version, ftype, snonce = _CHALLENGE.unpack(io.read(_CHALLENGE.size))
        if magic != MAGIC:
            raise AuthenticationError("server did not start a twinray handshake")
        if version != PROTOCOL_VERSION:
            raise AuthenticationError(
                f"server speaks protocol version {version}, this side {PROTOCOL_VERSION}"
            )
        if ftype != _T_CHALLENGE:
            raise AuthenticationError("server sent a malformed challenge")
        cnonce = secrets.token_bytes(NONCE_BYTES)
        cmac = _mac(token, _LABEL_CLIENT, snonce, cnonce, mine)
        io.write(
            _RESPONSE.pack(MAGIC, PROTOCOL_VERSION, _T_RESPONSE, cnonce, cmac, len(mine)) + mine
        )
        magic, version, ftype = _PREFIX.unpack(io.read(_PREFIX.size))
        if magic != MAGIC or version != PROTOCOL_VERSION:
            raise AuthenticationError("server sent a malformed reply")
        if ftype == _T_REFUSE:
            (reason,) = io.read(1)
            text = _REFUSE_TEXT.get(reason, f"reason {reason}")
            raise AuthenticationError(f"server refused the connection: {text}")
        if ftype != _T_ACCEPT:
            raise AuthenticationError("server sent a malformed reply")
        rest = io.read(_ACCEPT.size - _PREFIX.size)
        smac, hlen = struct.unpack("<32sH", rest)
        if not 0 < hlen <= MAX_HELLO:
            raise AuthenticationError(f"server sent a Hello of {hlen} bytes (at most {MAX_HELLO})")
        theirs = io.read(hlen)
        if not hmac.compare_digest(smac, _mac(token, _LABEL_SERVER, cnonce, snonce, mine, theirs)):
            raise AuthenticationError("server failed to prove it knows the token")
        peer = Hello.decode(theirs)
        sock.settimeout(None)
        return peer
    except BaseException:
        _close(sock)
        raise
