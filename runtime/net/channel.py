"""Authenticated TCP channels: `listen`/`connect` run the token handshake, then frame pickles.

`listen` binds a socket (127.0.0.1 unless told otherwise; any other address logs a warning)
and authenticates each incoming peer on its own thread, so a slow or malicious peer never
holds up the others; `Listener.accept` hands out the authenticated `Channel`s. `connect`
dials "HOST:PORT", optionally retrying while the server is not up yet. A `Channel` is the
runtime's framed pickle-5 `Connection` over the authenticated (optionally TLS) socket:
pickles flow only after the handshake succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from runtime.exceptions import AuthenticationError
from runtime.net.audit import AuditLog
from runtime.net.auth import Hello, check_token, client_handshake, server_handshake
from runtime.real.transport import Connection

__all__ = [
    "LOOPBACK_HOSTS",
    "Channel",
    "Listener",
    "ListenerClosedError",
    "client_ssl_context",
    "connect",
    "format_address",
    "listen",
    "parse_address",
    "server_ssl_context",
]

log = logging.getLogger("runtime.net")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Addresses `listen` binds without a warning."""
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_MAX_PENDING = 64


class ListenerClosedError(ConnectionAbortedError):
    """`Listener.accept` was called on (or was waiting when) the listener closed."""


def parse_address(address: str) -> tuple[str, int]:
    """Split "HOST:PORT" (or "[IPv6]:PORT") into host and port; ValueError if malformed."""
    if not isinstance(address, str):
        raise ValueError(f"address must be a 'HOST:PORT' string, got {type(address).__name__}")
    host, sep, port_s = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"address must be 'HOST:PORT' with a port in 1..65535, got {address!r}")
    return host, int(port_s)


def format_address(host: str, port: int) -> str:
    """Return "HOST:PORT" ("[IPv6]:PORT" for an IPv6 host)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer_name(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "?"
    return format_address(name[0], name[1]) if isinstance(name, tuple) else str(name)


class _TLSSocket:
    """An `ssl.SSLSocket` seen through the calls `Connection` makes, with the "would block"
    TLS errors turned into `BlockingIOError` (what `Connection` handles)."""

    __slots__ = ("ssl",)

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.ssl = sock

    def fileno(self) -> int:
        return self.ssl.fileno()

    def getblocking(self) -> bool:
        return self.ssl.getblocking()

    def setblocking(self, flag: bool) -> None:
        self.ssl.setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        self.ssl.settimeout(value)

    def sendall(self, data: Any) -> None:
        self.ssl.sendall(data)

    def send(self, data: Any) -> int:
        try:
            return self.ssl.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            raise BlockingIOError from None

    def recv_into(self, buf: Any) -> int:
        try:
            return self.ssl.recv_into(buf)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None

    def pending(self) -> int:
        return self.ssl.pending()

    def shutdown(self, how: int) -> None:
        self.ssl.shutdown(how)

    def close(self) -> None:
        self.ssl.close()


class Channel(Connection):
    """A framed pickle connection to one authenticated peer.

    `send`/`send_many`/`recv_many`/`flush`/`fileno` are `runtime.real.transport.Connection`'s:
    blocking by default; call `setblocking(False)` to drive it from `selectors`. `peer` is
    the remote "host:port", `hello` what the peer said it is.
    """

    __slots__ = ("peer", "hello", "tls")

    def __init__(self, sock: Any, peer: str, hello: Hello, buffer_size: int = 1 << 20) -> None:
        self.tls = isinstance(sock, ssl.SSLSocket)
        super().__init__(_TLSSocket(sock) if self.tls else sock, buffer_size)
        self.peer = peer
        self.hello = hello

    def setblocking(self, flag: bool) -> None:
        """Make the socket blocking (the default) or non-blocking (for `selectors`)."""
        self.sock.setblocking(flag)

    def recv_many(self) -> list[Any]:
        """Return every complete message available (see `Connection.recv_many`).

        Over TLS, also drains what the TLS layer already decrypted, which `selectors`
        would not report as readable.
        """
        msgs = super().recv_many()
        if self.tls:
            while self.sock.pending():
                self._fill()
                self._parse(msgs)
        return msgs

    def close(self) -> None:
        """Shut the connection down and close the socket (idempotent)."""
        if self.closed and self.sock.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def __repr__(self) -> str:
        return f"Channel({self.hello.kind}:{self.hello.id} at {self.peer})"


def _tune(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Listener:
    """A listening socket whose peers are authenticated concurrently, one thread each.

    Authenticated peers queue up for `accept`; refusals are audited and never disturb
    other peers. At most `max_pending` handshakes run at once; connections beyond that are
    closed at once (and audited). `fileno()` is readable while a peer waits in the queue.
    """

    def __init__(
        self,
        sock: socket.socket,
        token: str,
        hello: Hello,
        *,
        audit: AuditLog | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.sock = sock
        self.token = token
        self.hello = hello
        self.audit = audit
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        name = sock.getsockname()
        self.host, self.port = name[0], name[1]
        self.address = format_address(self.host, self.port)
        """The bound "host:port" (the real port when 0 was asked for)."""
        self._ready: queue.SimpleQueue[tuple[Channel, Hello] | None] = queue.SimpleQueue()
        self._notify_r, self._notify_w = socket.socketpair()
        self._notify_r.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._pending = 0
        self._lock = threading.Lock()
        self._handshakes: dict[threading.Thread, socket.socket] = {}
        self.closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="net-accept", daemon=True)
        self._thread.start()

    # -- the peers' side ----------------------------------------------------------------
    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self.closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, addr = self.sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        if self.closed:
                            return
                        continue  # e.g. EMFILE: keep serving
                    self._start_handshake(conn)
        finally:
            sel.close()

    def _start_handshake(self, conn: socket.socket) -> None:
        peer = _peer_name(conn)
        with self._lock:
            if self._pending >= self.max_pending:
                conn.close()
                self._audit("refused", peer, False, None, "too many handshakes in progress")
                return
            self._pending += 1
            t = threading.Thread(
                target=self._handshake, args=(conn, peer), name="net-handshake", daemon=True
            )
            self._handshakes[t] = conn
        t.start()

    def _handshake(self, conn: socket.socket, peer: str) -> None:
        try:
            self._authenticate(conn, peer)
        finally:  # only now: `close` joins the threads registered, so none queues after it
            with self._lock:
                self._pending -= 1
                self._handshakes.pop(threading.current_thread(), None)

    def _authenticate(self, conn: socket.socket, peer: str) -> None:
        try:
            _tune(conn)
            sock: Any = conn
            deadline = time.monotonic() + self.handshake_timeout
            if self.ssl_context is not None:
                try:
                    conn.settimeout(self.handshake_timeout)
                    sock = self.ssl_context.wrap_socket(conn, server_side=True)
                except (OSError, ValueError) as exc:
                    conn.close()
                    raise AuthenticationError(f"TLS handshake failed: {exc}") from None
            left = max(0.001, deadline - time.monotonic())
            hello = server_handshake(sock, self.token, timeout=left, hello=self.hello)
        except AuthenticationError as exc:
            self._audit("refused", peer, False, None, str(exc))
            return
        except Exception as exc:  # never let a peer kill the thread silently
            with contextlib.suppress(OSError):
                conn.close()
            self._audit("refused", peer, False, None, f"{type(exc).__name__}: {exc}")
            return
        ident = f"{hello.kind}:{hello.id}"
        if self.closed:
            with contextlib.suppress(OSError):
                sock.close()
            self._audit("refused", peer, False, ident, "listener closed")
            return
        self._audit("connect", peer, True, ident, None)
        self._ready.put((Channel(sock, peer, hello), hello))
        with contextlib.suppress(OSError):
            self._notify_w.send(b"\0")

    def _audit(
        self, event: str, peer: str, ok: bool, ident: str | None, reason: str | None
    ) -> None:
        if self.audit is not None:
            self.audit.record(event, peer, ok, ident=ident, reason=reason)

    # -- the owner's side ---------------------------------------------------------------
    def fileno(self) -> int:
        """A descriptor readable while an authenticated peer waits for `accept`."""
        return self._notify_r.fileno()

    def accept(self, timeout: float | None = None) -> tuple[Channel, Hello]:
        """Return the next authenticated peer's channel and Hello.

        Waits up to `timeout` seconds (None: for ever; 0: do not wait) and raises
        `TimeoutError` when none arrived; `ListenerClosedError` once the listener closed.
        """
        if self.closed:
            raise ListenerClosedError("listener closed")
        try:
            if timeout is not None and timeout <= 0:
                item = self._ready.get_nowait()
            else:
                item = self._ready.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no peer authenticated within {timeout} s") from None
        if item is None:
            self._ready.put(None)  # wake any other waiter too
            raise ListenerClosedError("listener closed")
        with contextlib.suppress(OSError):
            self._notify_r.recv(1)
        return item

    def close(self) -> None:
        """Stop listening, wait for the handshakes in progress, close unaccepted channels."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        self._thread.join()
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._lock:
            running = dict(self._handshakes)
        for conn in running.values():  # cut short the handshakes in progress
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in running:
            t.join(self.handshake_timeout + 1)
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].close()
        self._ready.put(None)
        for s in (self._notify_r, self._notify_w, self._wake_r, self._wake_w):
            s.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Listener({self.address}{', TLS' if self.ssl_context else ''})"


def listen(
    host: str,
    port: int,
    token: str,
    *,
    audit: AuditLog | None = None,
    ssl_context: ssl.SSLContext | None = None,
    hello: Hello | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_pending: int = DEFAULT_MAX_PENDING,
    backlog: int = 128,
) -> Listener:
    """Bind `host:port` (port 0: any free one) and return a `Listener` authenticating peers.

    Binding to anything but 127.0.0.1 / localhost / ::1 logs a warning: the cluster is then
    reachable from other machines, guarded by the token (and TLS if `ssl_context` is given,
    a server-side context, see `server_ssl_context`). `hello` is what this side tells its
    peers (default: a node named after the address).
    """
    check_token(token)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if handshake_timeout <= 0:
        raise ValueError(f"handshake_timeout must be > 0, got {handshake_timeout}")
    if max_pending < 1:
        raise ValueError(f"max_pending must be >= 1, got {max_pending}")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise ValueError("ssl_context must be an ssl.SSLContext")
    if host not in LOOPBACK_HOSTS:
        log.warning(
            "twinray is listening on %s:%s, reachable beyond this machine: only the token "
            "guards it%s",
            host,
            port,
            " (TLS on)" if ssl_context is not None else "; consider TLS (--tls-cert/--tls-key)",
        )
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    name = sock.getsockname()
    hello = hello or Hello("node", format_address(name[0], name[1]))
    return Listener(
        sock,
        token,
        hello,
        audit=audit,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_pending=max_pending,
    )


def open_authenticated(
    address: str,
    token: str,
    hello: Hello,
    *,
    timeout: float,
    retry_for: float = 0.0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Any, str, Hello]:
    """Dial `address`, run TLS (if asked) and the handshake; return (socket, peer, Hello).

    The raw authenticated socket, for protocols other than framed pickles (`runtime.net.bulk`).
    Connection failures (refused, unreachable, or dropped mid-handshake:
    `AuthenticationError.lost`) are retried for `retry_for` seconds; refusals are not.
    """
    check_token(token)
    host, port = parse_address(address)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    give_up = time.monotonic() + max(0.0, retry_for)
    delay = 0.02
    while True:
        try:
            return _dial_once(host, port, token, hello, timeout, ssl_context)
        except AuthenticationError as exc:
            if not exc.lost or time.monotonic() + delay > give_up:
                raise
        except OSError as exc:
            if time.monotonic() + delay > give_up:
                raise ConnectionError(f"cannot connect to {address}: {exc}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _dial_once(
    host: str,
    port: int,
    token: str,
    hello: Hello,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> tuple[Any, str, Hello]:
    """One attempt of `open_authenticated`: TCP connect, TLS, the token handshake."""
    sock = socket.create_connection((host, port), timeout=timeout)
    _tune(sock)
    deadline = time.monotonic() + timeout
    if ssl_context is not None:
        try:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except (OSError, ValueError) as exc:
            sock.close()
            lost = not isinstance(exc, ssl.SSLError | ValueError)
            raise AuthenticationError(
                f"TLS handshake with {format_address(host, port)} failed: {exc}", lost=lost
            ) from None
    left = max(0.001, deadline - time.monotonic())
    peer_hello = client_handshake(sock, token, hello, timeout=left)
    return sock, format_address(host, port), peer_hello


def connect(
    address: str,
    token: str,
    hello: Hello,
    *,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    retry_for: float = 0.0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Channel, Hello]:
    """Connect to the listener at "HOST:PORT" as `hello`; return the channel and its Hello.

    Raises `AuthenticationError` when either side does not know the token (not retried),
    `ConnectionError` when nothing accepts within `retry_for` seconds. `ssl_context` is a
    client-side context (see `client_ssl_context`).
    """
    sock, peer, peer_hello = open_authenticated(
        address, token, hello, timeout=timeout, retry_for=retry_for, ssl_context=ssl_context
    )
    return Channel(sock, peer, peer_hello), peer_hello


# -- TLS contexts ----------------------------------------------------------------------------


def server_ssl_context(
    cert: Path | str, key: Path | str, ca: Path | str | None = None
) -> ssl.SSLContext:
    """A server-side TLS context from a certificate and key (PEM); with `ca`, clients must
    present a certificate signed by it (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if ca is not None:
        ctx.load_verify_locations(str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(
    ca: Path | str | None = None, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """A client-side TLS context verifying the server against `ca` (default: the system's
    trust store), presenting `cert`/`key` when given (for mutual TLS)."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    elif key is not None:
        raise ValueError("a TLS key was given without its certificate")
    return ctx
