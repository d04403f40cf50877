"""Worker output of a node process: read from its workers' pipes, kept in its log, forwarded to connected drivers.

In the embedded node a worker writes its prefixed lines straight to the driver's
descriptors (`runtime.real.worker._prefix_output`). A node process of a cluster has no
user program to write to, so its zygote, and every worker it forks, gets the write ends
of two pipes as stdout and stderr (`Node(worker_stdio=...)`); `NodeLogs` reads them on a
thread, copies what it reads to the node process's own stdout/stderr (its log file under
the session's ``logs/``, as before) and hands whole lines to the node's loop thread, which
sends them on:

* on the head: to every connected driver that asked for them (request ``logs``, sent at
  connect unless `init(log_to_driver=False)`), as ``(LOG, stream, data)`` messages;
* on a worker node: to the head, as one ``(LOGS, stream, data)`` frame on its link; the
  head delivers them to its drivers the same way.

Workers of a node process prefix their lines ``(worker N, pid P, node I, ip A)``
(``TWINRAY_LOG_NODE``, set here before the zygote starts), as Ray prints ``(pid=...,
ip=...)``. A driver prints what it receives on its own stdout/stderr
(`print_log`). Every subscribed driver receives every worker's output (a worker serves
every job, where Ray's are leased to one job and Ray filters by job). See docs/design.md,
"Logs from every node".
"""

from __future__ import annotations

import contextlib
import os
import selectors
import sys
import threading
from typing import Any

from runtime.real import protocol as p
from runtime.real import requests as rq

__all__ = ["LOGS", "NODE_ENV", "NodeLogs", "print_log"]

LOGS = 40
"""The `runtime.real.peers` frame tag of worker output a worker node sends the head:
``(LOGS, stream, data)``."""
NODE_ENV = "TWINRAY_LOG_NODE"
"""What a node process's workers add to their output prefix (`runtime.real.worker`)."""
READ_SIZE = 1 << 16
"""Bytes read from a pipe at once (one forwarded message at most)."""


class NodeLogs:
    """The log pipes of one node process's workers and the thread that forwards them."""

    def __init__(self, node_index: int, ip: str) -> None:
        os.environ[NODE_ENV] = f"node {node_index}, ip {ip}"  # inherited by the zygote
        # (build the node before `start`, which removes it again)
        self.pipes: dict[int, tuple[int, int]] = {1: os.pipe(), 2: os.pipe()}
        """Stream (1 stdout, 2 stderr) -> (read end, write end)."""
        self._wake_r, self._wake_w = os.pipe()
        self.node: Any = None
        self.subscribers: list[Any] = []
        """The head: remote worker handles (connected drivers) that asked for the output."""
        self._thread = threading.Thread(target=self._read, name="twinray-logs", daemon=True)
        self._closed = False

    @property
    def stdio(self) -> tuple[int, int]:
        """The write ends, for the zygote's stdout and stderr (`Node(worker_stdio=...)`)."""
        return self.pipes[1][1], self.pipes[2][1]

    def start(self, node: Any) -> None:
        """Serve ``node`` (built with `stdio`): close this process's write ends (the zygote
        and its workers hold theirs), register the ``logs`` request and the ``LOGS`` frame,
        start reading."""
        self.node = node
        os.environ.pop(NODE_ENV, None)  # the zygote has it (it is started once per node)
        for stream in (1, 2):
            os.close(self.pipes[stream][1])
        node.nested.request_ops[rq.LOGS] = self.req_subscribe
        if node.peers is not None:
            node.peers.frame_handlers[LOGS] = self._on_frame
        self._thread.start()

    # -- the reader thread ---------------------------------------------------------------

    def _read(self) -> None:
        """Read both pipes until both reach EOF (every worker and the zygote exited) or
        `close`; copy to this process's descriptors; post whole lines to the loop."""
        sel = selectors.DefaultSelector()
        for stream in (1, 2):
            sel.register(self.pipes[stream][0], selectors.EVENT_READ, stream)
        sel.register(self._wake_r, selectors.EVENT_READ, 0)
        partial = {1: b"", 2: b""}
        open_streams = 2
        try:
            while open_streams:
                for key, _ in sel.select():
                    stream = key.data
                    if stream == 0:
                        return
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError:
                        data = b""
                    if not data:  # EOF: the last writer exited
                        sel.unregister(key.fd)
                        open_streams -= 1
                        if partial[stream]:
                            self._post(stream, partial[stream] + b"\n")
                            partial[stream] = b""
                        continue
                    buf = partial[stream] + data
                    cut = buf.rfind(b"\n") + 1
                    partial[stream] = buf[cut:]
                    if cut:  # posted before the log is written: once a line is in the
                        self._post(stream, buf[:cut])  # log, it is queued on the loop
                    _write_all(stream, data)  # the node's own log, as before
        finally:
            sel.close()

    def _post(self, stream: int, data: bytes) -> None:
        """Hand ``data`` (whole lines) to the node's loop thread."""
        node = self.node
        if node.closed:
            return
        node._ops.append((self._op_forward, (stream, data)))
        node._wake()

    # -- the loop thread -----------------------------------------------------------------

    def _op_forward(self, arg: tuple[int, bytes], now: float) -> None:
        """Loop thread: send this node's workers' lines on (drivers here, or the head)."""
        stream, data = arg
        peers = self.node.peers
        if peers is not None and not peers.head:
            link = peers.links.get(0)
            if link is not None:
                link.send_frames([(LOGS, stream, data)])
            return
        self.deliver(stream, data)

    def _on_frame(self, link: Any, frame: tuple, now: float) -> None:
        """Loop thread of the head: a worker node's lines."""
        _tag, stream, data = frame
        if stream in (1, 2) and type(data) is bytes:
            self.deliver(stream, data)

    def deliver(self, stream: int, data: bytes) -> None:
        """Loop thread: send ``data`` to every subscribed driver still connected."""
        subscribers = self.subscribers
        if not subscribers:
            return
        pool = self.node.pool
        msg = (p.LOG, stream, data)
        for handle in subscribers:
            if handle.alive and not handle.conn.closed:
                pool.send(handle, msg)
        self.subscribers = [h for h in subscribers if h.alive and not h.conn.closed]

    def req_subscribe(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        """Request ``logs``: connected driver ``w`` wants (``payload`` true) the cluster's
        worker output, or no longer wants it."""
        if not w.remote:
            return  # a worker's own output goes to the same pipes already
        if payload and w not in self.subscribers:
            self.subscribers.append(w)
        elif not payload and w in self.subscribers:
            self.subscribers.remove(w)

    def close(self) -> None:
        """Stop the reader (after the node shut down: the workers' last lines are read
        first, up to a few seconds) and close the pipes. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        fds = [self._wake_r, self._wake_w, self.pipes[1][0], self.pipes[2][0]]
        if self.node is None:  # never started: the write ends are still ours
            fds += [self.pipes[1][1], self.pipes[2][1]]
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (errors ignored: a log that cannot be written)."""
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return
        data = data[n:]


def print_log(stream: int, data: bytes) -> None:
    """A connected driver: print lines the cluster's workers wrote (stdout or stderr)."""
    out = sys.stderr if stream == 2 else sys.stdout
    try:
        out.write(data.decode("utf-8", "replace"))
        out.flush()
    except (OSError, ValueError):  # a closed stream (interpreter shutting down)
        pass
