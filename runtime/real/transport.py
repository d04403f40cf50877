"""Length-prefixed pickle-5 frames over a stream socket, batched: one write per `send_many`.

Each frame is a 4-byte little-endian length followed by a plain-pickle (protocol 5) message.
`recv_many` reads into one preallocated buffer with `recv_into` and returns every complete
frame available, coping with partial frames and frames larger than the buffer.

Works with blocking sockets (worker side: `recv_many` waits for at least one frame,
`send_many` writes everything) and non-blocking ones (driver side under `selectors`:
`recv_many` returns `[]` when nothing is complete yet, `send_many` queues what the kernel
did not take and `flush()` sends it when the socket becomes writable).
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

__all__ = ["Connection", "socketpair"]

_LEN = struct.Struct("<I")
_MAX_FRAME = (1 << 32) - 1
_DEFAULT_BUFFER = 1 << 20


class Connection:
    """A framed, batched message connection over one end of a stream socket."""

    __slots__ = ("sock", "_buf", "_mv", "_start", "_end", "_big", "_big_fill", "_out", "closed")

    def __init__(self, sock: socket.socket, buffer_size: int = _DEFAULT_BUFFER) -> None:
        self.sock = sock
        self._buf = bytearray(buffer_size)
        self._mv = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._big: memoryview | None = None  # frame larger than the buffer, being filled
        self._big_fill = 0
        self._out = bytearray()
        self.closed = False

    def fileno(self) -> int:
        """Return the socket's file descriptor (for `selectors`)."""
        return self.sock.fileno()

    # -- sending -----------------------------------------------------------------------
    def send_many(self, msgs: list[Any]) -> bool:
        """Pickle `msgs` and send them in one write; return True if nothing is left queued.

        On a non-blocking socket the unsent tail stays queued for `flush()`.
        """
        dumps, pack = pickle.dumps, _LEN.pack
        parts: list[bytes] = []
        for msg in msgs:
            data = dumps(msg, 5)
            if len(data) > _MAX_FRAME:
                raise ValueError(f"message of {len(data)} bytes is too large for one frame")
            parts.append(pack(len(data)))
            parts.append(data)
        payload = b"".join(parts)
        if self._out:
            self._out += payload
            return self.flush()
        if self.sock.getblocking():
            self.sock.sendall(payload)
            return True
        try:
            sent = self.sock.send(payload)
        except BlockingIOError:
            sent = 0
        if sent < len(payload):
            self._out += payload[sent:]
            return False
        return True

    def send(self, msg: Any) -> bool:
        """Send one message (see `send_many`)."""
        return self.send_many([msg])

    def flush(self) -> bool:
        """Send queued output; return True when the queue is empty."""
        out = self._out
        while out:
            try:
                sent = self.sock.send(out)
            except BlockingIOError:
                return False
            del out[:sent]
        return True

    @property
    def has_pending_output(self) -> bool:
        """True while `send_many` left bytes queued (register for EVENT_WRITE)."""
        return bool(self._out)

    # -- receiving ---------------------------------------------------------------------
    def recv_many(self) -> list[Any]:
        """Return every complete message available.

        Blocking socket: waits until at least one message is complete. Non-blocking socket:
        returns `[]` if none is complete. Raises `EOFError` when the peer closed the socket
        and no complete message remains.
        """
        msgs: list[Any] = []
        while True:
            self._parse(msgs)
            if msgs:
                return msgs
            try:
                got = self._fill()
            except BlockingIOError:
                return msgs
            if got == 0:
                self.closed = True
                raise EOFError("connection closed by peer")

    def _fill(self) -> int:
        """Read once from the socket into the buffer (or the oversized frame); return bytes read."""
        if self._big is not None:
            n = self.sock.recv_into(self._big[self._big_fill :])
            self._big_fill += n
            return n
        if self._end == len(self._buf):  # buffer full of a partial frame at the front
            self._compact()
        n = self.sock.recv_into(self._mv[self._end :])
        self._end += n
        return n

    def _compact(self) -> None:
        """Move the unparsed tail to the front of the buffer."""
        start, end = self._start, self._end
        if start:
            self._mv[: end - start] = self._mv[start:end]
            self._start, self._end = 0, end - start

    def _parse(self, msgs: list[Any]) -> None:
        """Append the complete frames in the buffer to `msgs`."""
        loads, unpack_from, mv = pickle.loads, _LEN.unpack_from, self._mv
        if self._big is not None:
            if self._big_fill < len(self._big):
                return
            msgs.append(loads(self._big))
            self._big = None
        start, end = self._start, self._end
        while end - start >= 4:
            (n,) = unpack_from(mv, start)
            stop = start + 4 + n
            if stop <= end:
                msgs.append(loads(mv[start + 4 : stop]))
                start = stop
                continue
            if 4 + n > len(self._buf):  # larger than the buffer: read it into its own array
                big = memoryview(bytearray(n))
                have = end - start - 4
                big[:have] = mv[start + 4 : end]
                self._big, self._big_fill = big, have
                start = end
            break
        if start == end:
            start = end = 0
        self._start, self._end = start, end
        if self._end == len(self._buf) and self._big is None:
            self._compact()

    def close(self) -> None:
        """Close the socket."""
        self.closed = True
        self.sock.close()


def socketpair(buffer_size: int = _DEFAULT_BUFFER) -> tuple[Connection, Connection]:
    """Return two connected `Connection`s over an AF_UNIX stream socketpair."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Connection(a, buffer_size), Connection(b, buffer_size)
