"""Node-to-node object transfer: bytes go from one arena to another over authenticated TCP.

An `ObjectServer` serves the objects of its node's arena; a `BulkClient` pulls them into the
puller's arena. The bytes are never copied in user space on the way: the server sends
straight from the arena (`os.sendfile` from the arena's memfd when it has one, else
`sendmsg` on memoryview slices) and the client receives straight into the destination
(`recv_into` on slices of it). Requests are pipelined, so many small objects cost one
round trip, and the server batches their replies into few `sendmsg` calls; small replies
are staged through a buffer on the client to save system calls (a copy of a few KiB),
large ones bypass it.

Concurrency: one TCP connection per concurrent pull (`BulkClient` keeps a pool per
address), measured faster here than multiplexing chunks of several objects over one
connection, and simpler: a connection carries one pipeline of whole replies.

Wire format (after the token handshake of `runtime.net.auth`), little-endian:

- request: ``op u8 (1 = get) | id length u8 | offset u64 | length u64 | object id``
  (the id, an int, as big-endian bytes; length ``2**64 - 1``: to the end)
- reply: ``status u8 (0 ok, 1 missing, 2 bad range) | object size u64 | payload length u64``
  then the payload.

Objects at most `INLINE_MAX` bytes are better sent inline on the control channel (one
message instead of a round trip here); that is the caller's choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from runtime.exceptions import AuthenticationError, ObjectTransferError
from runtime.net.audit import AuditLog
from runtime.net.auth import Hello
from runtime.net.channel import Channel, ListenerClosedError, listen, open_authenticated

__all__ = [
    "DEFAULT_CHUNK",
    "INLINE_MAX",
    "BulkClient",
    "Destination",
    "ObjectServer",
    "ObjectTransferError",
    "Source",
    "arena_destination",
    "arena_source",
    "pull",
    "recv_into_buffer",
    "send_buffer",
]

log = logging.getLogger("runtime.net")

DEFAULT_CHUNK = 8 << 20
"""Bytes handed to one `send`/`recv_into` call at most."""
INLINE_MAX = 100 * 1024
"""Objects up to this size are cheaper inline on the control channel (Ray's threshold too)."""
_STAGE = 256 << 10
"""Client staging buffer: replies smaller than this are read through it (few syscalls)."""
_BATCH_BYTES = 1 << 20
_BATCH_IOV = 512
_OP_GET = 1
_OK, _MISSING, _BAD_RANGE = 0, 1, 2
_TO_END = (1 << 64) - 1
_REQ = struct.Struct("<BBQQ")
_REP = struct.Struct("<BQQ")
_MAX_ID_BYTES = 255


@dataclass
class Source:
    """An object's bytes as a server offers them (typically a range of its arena)."""

    view: memoryview
    """The bytes (read-only is fine)."""
    release: Callable[[], None] | None = None
    """Called once when the server is done sending them (unpin)."""
    fd: int = -1
    """A file holding the same bytes (the arena's memfd), for `os.sendfile`; -1 if none."""
    offset: int = 0
    """Where `view` starts in `fd`."""


@dataclass
class Destination:
    """Where a pulled object's bytes are written (typically a fresh range of an arena)."""

    view: memoryview
    """Writable, exactly the object's size."""
    release: Callable[[], None]
    """Frees the range; `pull` calls it when the transfer fails half-way."""


def _encode_id(object_id: int) -> bytes:
    if not isinstance(object_id, int) or isinstance(object_id, bool) or object_id < 0:
        raise TypeError(f"an object id must be a non-negative int, got {object_id!r}")
    data = object_id.to_bytes(max(1, (object_id.bit_length() + 7) // 8), "big")
    if len(data) > _MAX_ID_BYTES:
        raise ValueError(f"object id {object_id} is longer than {_MAX_ID_BYTES} bytes")
    return data


def _as_bytes(mv: Any) -> memoryview:
    mv = memoryview(mv)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


# -- the two primitives ----------------------------------------------------------------------


def send_buffer(
    sock: socket.socket, mv: memoryview, chunk: int = DEFAULT_CHUNK, header: bytes = b""
) -> None:
    """Send `header` then all of `mv` on a blocking socket, chunk by chunk, without copying:
    `sendmsg` on memoryview slices (the header rides with the first slice)."""
    mv = _as_bytes(mv)
    n = len(mv)
    if isinstance(sock, ssl.SSLSocket):  # TLS encrypts into its own records: plain sends
        if header:
            sock.sendall(header)
        for pos in range(0, n, chunk):
            sock.sendall(mv[pos : pos + chunk])
        return
    pos = 0
    head = memoryview(header)
    sendmsg = sock.sendmsg
    while head or pos < n:
        if head:
            sent = sendmsg([head, mv[pos : pos + chunk]])
            if sent < len(head):
                head = head[sent:]
                continue
            sent -= len(head)
            head = memoryview(b"")
        else:
            sent = sock.send(mv[pos : pos + chunk])
        pos += sent


def _sendfile(sock: socket.socket, fd: int, offset: int, nbytes: int, header: bytes) -> None:
    """Send `header` then `nbytes` of file `fd` from `offset` with `os.sendfile` (no copy in
    user space, none from the page cache into socket buffers either)."""
    if header:
        sock.sendall(header)
    out = sock.fileno()
    end = offset + nbytes
    while offset < end:
        try:
            sent = os.sendfile(out, fd, offset, min(end - offset, DEFAULT_CHUNK))
        except BlockingIOError:  # the socket's timeout makes it non-blocking underneath
            _, writable, _ = select.select([], [out], [], sock.gettimeout())
            if not writable:
                raise TimeoutError("peer stopped reading") from None
            continue
        if sent == 0:
            raise ConnectionResetError("peer closed the connection")
        offset += sent


def recv_into_buffer(
    sock: socket.socket, mv: memoryview, nbytes: int, chunk: int = DEFAULT_CHUNK
) -> None:
    """Receive exactly `nbytes` into the start of `mv` with `recv_into` on its slices.

    Raises `ObjectTransferError` if the peer closes the connection first (or the socket's
    timeout passes without progress).
    """
    mv = _as_bytes(mv)
    if nbytes > len(mv):
        raise ValueError(f"{nbytes} bytes do not fit a buffer of {len(mv)}")
    got = 0
    while got < nbytes:
        try:
            k = sock.recv_into(mv[got:nbytes], min(chunk, nbytes - got))
        except TimeoutError:
            raise ObjectTransferError(
                f"transfer stalled: no data for {sock.gettimeout()} s after {got} of {nbytes} bytes"
            ) from None
        except OSError as exc:
            raise ObjectTransferError(
                f"transfer failed after {got} of {nbytes} bytes: {exc}"
            ) from None
        if k == 0:
            raise ObjectTransferError(f"peer closed the connection after {got} of {nbytes} bytes")
        got += k


# -- arenas ------------------------------------------------------------------------------------


def arena_destination(arena: Any) -> Callable[[int], Destination]:
    """An `into` callback for `pull` allocating each object in `arena` (a
    `runtime.real.arena.Arena`); a failed transfer frees its range.

    Its lock serialises the pulls' allocations among themselves only: use it on an arena
    nothing else allocates from meanwhile (benchmarks, tests). A node whose loop thread
    also allocates passes an `into` that allocates through its own object table instead.
    """
    lock = threading.Lock()

    def into(nbytes: int) -> Destination:
        with lock:
            offset = arena.allocate(nbytes)

        def release() -> None:
            with lock:
                arena.free(offset)

        return Destination(arena.writable_view(offset, nbytes), release)

    return into


def arena_source(
    arena: Any, offset: int, nbytes: int, release: Callable[[], None] | None = None
) -> Source:
    """A `Source` for the `nbytes` at `offset` of `arena`, sent with `os.sendfile` from its memfd."""
    return Source(arena.view(offset, nbytes), release, fd=arena.fd, offset=offset)


# -- the server --------------------------------------------------------------------------------


class _Replies:
    """Batches small replies into one `sendmsg`; large ones go out on their own."""

    def __init__(self, sock: Any, tls: bool) -> None:
        self.sock = sock
        self.tls = tls
        self.iov: list[Any] = []
        self.bytes = 0
        self.release: list[Callable[[], None]] = []

    def add(self, header: bytes, src: Source | None, start: int, length: int) -> None:
        if src is None or length < _STAGE:
            self.iov.append(header)
            if src is not None and length:
                self.iov.append(_as_bytes(src.view)[start : start + length])
            self.bytes += len(header) + length
            if src is not None and src.release is not None:
                self.release.append(src.release)
            if len(self.iov) >= _BATCH_IOV or self.bytes >= _BATCH_BYTES:
                self.flush()
            return
        self.flush()
        try:
            if src.fd >= 0 and not self.tls:
                _sendfile(self.sock, src.fd, src.offset + start, length, header)
            else:
                send_buffer(self.sock, _as_bytes(src.view)[start : start + length], header=header)
        finally:
            if src.release is not None:
                src.release()

    def abandon(self) -> None:
        """Release the sources of replies queued but not sent (nothing when flushed)."""
        release, self.release, self.iov, self.bytes = self.release, [], [], 0
        for fn in release:
            fn()

    def flush(self) -> None:
        iov, release = self.iov, self.release
        self.iov, self.release, self.bytes = [], [], 0
        try:
            if not iov:
                return
            if self.tls:
                for part in iov:
                    self.sock.sendall(part)
                return
            views = [memoryview(p) for p in iov]
            while views:
                sent = self.sock.sendmsg(views)
                while views and sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                if sent and views:
                    views[0] = views[0][sent:]
        finally:
            for fn in release:
                fn()


class ObjectServer:
    """Serves a node's objects to authenticated pullers, one thread per connection.

    `lookup(object_id)` returns a `Source` for an object this node holds (pinned until its
    `release` is called), or None. Listens like `runtime.net.channel.listen` (127.0.0.1 by
    default; the token handshake first; `audit`, `ssl_context` as there).
    """

    def __init__(
        self,
        lookup: Callable[[int], Source | None],
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        audit: AuditLog | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hello: Hello | None = None,
        send_timeout: float = 60.0,
    ) -> None:
        if send_timeout <= 0:
            raise ValueError(f"send_timeout must be > 0, got {send_timeout}")
        self.lookup = lookup
        self.send_timeout = send_timeout
        self.listener = listen(host, port, token, audit=audit, ssl_context=ssl_context, hello=hello)
        self.address = self.listener.address
        """The "host:port" pullers dial."""
        self._conns: dict[Channel, threading.Thread] = {}
        self._lock = threading.Lock()
        self.closed = False
        self.served = 0
        """Replies sent (objects or ranges), for stats and tests."""
        self._thread = threading.Thread(target=self._accept_loop, name="bulk-accept", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                ch, _ = self.listener.accept()
            except ListenerClosedError:
                return
            with self._lock:
                if self.closed:
                    ch.close()
                    return
                t = threading.Thread(target=self._serve, args=(ch,), name="bulk-serve", daemon=True)
                self._conns[ch] = t
            t.start()

    def _serve(self, ch: Channel) -> None:
        sock = ch.sock.ssl if ch.tls else ch.sock
        buf = bytearray(64 << 10)
        mv = memoryview(buf)
        have = 0
        try:
            while True:
                sock.settimeout(None)  # wait for requests for ever ...
                k = sock.recv_into(mv[have:])
                if k == 0:
                    return
                have += k
                sock.settimeout(self.send_timeout)  # ... but not for a peer that stops reading
                replies = _Replies(sock, ch.tls)
                pos = 0
                try:
                    while have - pos >= _REQ.size:
                        op, id_len, start, length = _REQ.unpack_from(mv, pos)
                        if op != _OP_GET:
                            log.warning("object server: unknown request op %d from %s", op, ch.peer)
                            return  # an authenticated peer speaking nonsense: drop it
                        if have - pos < _REQ.size + id_len:
                            break
                        oid = int.from_bytes(mv[pos + _REQ.size : pos + _REQ.size + id_len], "big")
                        pos += _REQ.size + id_len
                        self._reply(replies, oid, start, length)
                    replies.flush()
                finally:
                    replies.abandon()  # (after an error: release what was never sent)
                buf[: have - pos] = bytes(mv[pos:have])
                have -= pos
        except OSError:
            return  # the puller went away: its problem
        except Exception:  # a failing `lookup`: drop this connection, keep serving others
            log.exception("object server: serving %s failed", ch.peer)
            return
        finally:
            with self._lock:
                self._conns.pop(ch, None)
            ch.close()

    def _reply(self, replies: _Replies, oid: int, start: int, length: int) -> None:
        src = self.lookup(oid)
        if src is None:
            replies.add(_REP.pack(_MISSING, 0, 0), None, 0, 0)
            return
        size = _as_bytes(src.view).nbytes
        if length == _TO_END:
            length = max(0, size - start)
        if start > size or start + length > size:
            if src.release is not None:
                src.release()
            replies.add(_REP.pack(_BAD_RANGE, size, 0), None, 0, 0)
            return
        with self._lock:
            self.served += 1
        replies.add(_REP.pack(_OK, size, length), src, start, length)

    def close(self) -> None:
        """Stop serving: close the listener and every connection."""
        with self._lock:
            self.closed = True
            conns = dict(self._conns)
        self.listener.close()
        self._thread.join()
        for ch in conns:
            with contextlib.suppress(OSError):
                (ch.sock.ssl if ch.tls else ch.sock).shutdown(socket.SHUT_RDWR)
        for t in conns.values():
            t.join(self.send_timeout + 1)

    def __enter__(self) -> ObjectServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the client --------------------------------------------------------------------------------


class _Reader:
    """Reads replies from one connection: headers and small payloads through a staging
    buffer, large payloads straight into their destination."""

    __slots__ = ("sock", "buf", "mv", "start", "end")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray(_STAGE)
        self.mv = memoryview(self.buf)
        self.start = self.end = 0

    def _fill(self, need: int) -> None:
        """Have at least `need` (<= the buffer) bytes buffered."""
        if self.end - self.start >= need:
            return
        if self.start:
            n = self.end - self.start
            self.mv[:n] = self.mv[self.start : self.end]
            self.start, self.end = 0, n
        while self.end < need:
            try:
                k = self.sock.recv_into(self.mv[self.end :])
            except TimeoutError:
                raise ObjectTransferError(
                    f"transfer stalled: no data for {self.sock.gettimeout()} s"
                ) from None
            except OSError as exc:
                raise ObjectTransferError(f"transfer failed: {exc}") from None
            if k == 0:
                raise ObjectTransferError("peer closed the connection in the middle of a reply")
            self.end += k

    def header(self) -> tuple[int, int, int]:
        self._fill(_REP.size)
        rep = _REP.unpack_from(self.mv, self.start)
        self.start += _REP.size
        return rep

    def payload(self, dest: memoryview, n: int) -> None:
        have = min(self.end - self.start, n)
        dest[:have] = self.mv[self.start : self.start + have]
        self.start += have
        if have == n:
            return
        rest = n - have
        if rest >= _STAGE // 2:
            recv_into_buffer(self.sock, dest[have:], rest)
            return
        self._fill(rest)
        dest[have:n] = self.mv[self.start : self.start + rest]
        self.start += rest


@dataclass
class _Conn:
    sock: Any
    reader: _Reader


class BulkClient:
    """Pulls objects from `ObjectServer`s, keeping a pool of authenticated connections per
    address (one per concurrent pull). Thread-safe."""

    def __init__(
        self,
        token: str,
        hello: Hello,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        retry_for: float = 0.0,
    ) -> None:
        if idle_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("connect_timeout and idle_timeout must be > 0")
        self.token = token
        self.hello = hello
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        """A transfer that makes no progress for this long fails."""
        self.retry_for = retry_for
        self._idle: dict[str, list[_Conn]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.closed = False

    def _take(self, address: str) -> _Conn:
        if self.closed:
            raise ObjectTransferError("the BulkClient is closed")
        with self._lock:
            idle = self._idle.get(address)
            if idle:
                return idle.pop()
        try:
            sock, _, _ = open_authenticated(
                address,
                self.token,
                self.hello,
                timeout=self.connect_timeout,
                retry_for=self.retry_for,
                ssl_context=self.ssl_context,
            )
        except AuthenticationError as exc:
            if not exc.lost:
                raise
            raise ObjectTransferError(
                f"cannot reach the object server at {address}: {exc}"
            ) from exc
        except ConnectionError as exc:
            raise ObjectTransferError(
                f"cannot reach the object server at {address}: {exc}"
            ) from exc
        sock.settimeout(self.idle_timeout)
        return _Conn(sock, _Reader(sock))

    def _give_back(self, address: str, conn: _Conn) -> None:
        with self._lock:
            if not self.closed and conn.reader.start == conn.reader.end:
                self._idle.setdefault(address, []).append(conn)
                return
        conn.sock.close()

    def _run(
        self,
        address: str,
        requests: Sequence[tuple[int, int, int]],
        into: Callable[[int], Destination],
    ) -> list[Destination]:
        """Send the (id, offset, length) requests pipelined on one connection; receive each
        reply into a fresh destination. On failure, release them all and raise."""
        parts = []
        for oid, start, length in requests:
            ident = _encode_id(oid)
            parts.append(_REQ.pack(_OP_GET, len(ident), start, length) + ident)
        conn = self._take(address)
        done: list[Destination] = []
        try:
            try:
                conn.sock.sendall(b"".join(parts))
            except OSError as exc:
                raise ObjectTransferError(f"cannot send requests to {address}: {exc}") from None
            for oid, start, length in requests:
                status, size, n = conn.reader.header()
                if status == _MISSING:
                    raise ObjectTransferError(f"object {oid} is not on {address}", missing=True)
                if status != _OK:
                    raise ObjectTransferError(
                        f"object {oid} on {address}: bad range (size {size}, status {status})"
                    )
                want = size - start if length == _TO_END else length
                if n != want:
                    raise ObjectTransferError(
                        f"object {oid} on {address}: a reply of {n} bytes for {want} asked"
                    )
                dest = into(n)
                done.append(dest)
                if len(dest.view) != n:
                    raise ValueError(
                        f"`into({n})` returned a destination of {len(dest.view)} bytes"
                    )
                conn.reader.payload(_as_bytes(dest.view), n)
        except BaseException as exc:
            conn.sock.close()
            for d in done:
                d.release()
            if isinstance(exc, ObjectTransferError) and not exc.missing:
                raise ObjectTransferError(f"pulling from {address}: {exc}") from None
            raise
        self._give_back(address, conn)
        return done

    def pull(self, address: str, object_id: int, into: Callable[[int], Destination]) -> Destination:
        """Pull one object from the `ObjectServer` at `address` into `into(nbytes)`.

        Returns the filled destination. Raises `ObjectTransferError` (having released the
        destination) when the server dies, stalls past `idle_timeout`, or lacks the object
        (`missing` True).
        """
        return self._run(address, [(object_id, 0, _TO_END)], into)[0]

    def pull_many(
        self,
        address: str,
        object_ids: Sequence[int],
        into: Callable[[int], Destination],
        *,
        parallel: int = 4,
    ) -> list[Destination]:
        """Pull several objects from `address`, pipelined over up to `parallel` connections;
        return their destinations in the order of `object_ids`. All or nothing: on failure
        every destination of this call is released and `ObjectTransferError` raised."""
        if parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel}")
        ids = list(object_ids)
        if not ids:
            return []
        lanes = min(parallel, len(ids))
        if lanes == 1:
            return self._run(address, [(i, 0, _TO_END) for i in ids], into)
        per = -(-len(ids) // lanes)
        groups = [ids[k : k + per] for k in range(0, len(ids), per)]
        pool = self._executor()
        futures = [
            pool.submit(self._run, address, [(i, 0, _TO_END) for i in g], into) for g in groups
        ]
        results: list[list[Destination]] = []
        error: BaseException | None = None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:
                error = error or exc
        if error is not None:
            for got in results:
                for d in got:
                    d.release()
            raise error
        return [d for got in results for d in got]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(16, thread_name_prefix="bulk-pull")
            return self._pool

    def close(self) -> None:
        """Close every pooled connection (pulls in progress fail)."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, {}
            pool, self._pool = self._pool, None
        for conns in idle.values():
            for c in conns:
                c.sock.close()
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> BulkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pull(
    address: str,
    object_id: int,
    into: Callable[[int], Destination],
    *,
    token: str,
    hello: Hello,
    ssl_context: ssl.SSLContext | None = None,
    idle_timeout: float = 30.0,
) -> Destination:
    """Pull one object over a fresh connection (see `BulkClient.pull`, which pools them)."""
    with BulkClient(token, hello, ssl_context=ssl_context, idle_timeout=idle_timeout) as client:
        return client.pull(address, object_id, into)
