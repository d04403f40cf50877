"""Drivers (and `twinray status`) connected to a node process over the network, served like workers.

An accept thread takes authenticated channels from a `runtime.net.channel.Listener` and
hands each to the node's loop thread, which registers it with the worker pool as a
*remote* `WorkerHandle`: its REQUESTs go to `NestedOwners` like a worker's (so a connected
driver gets a core `Owner` of its own), it is never given a task, values it fetches are
sent inline, and when its channel closes its references are dropped
(`WorkerPool.on_worker_died`). See docs/design.md, "Multi-node real mode".
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from typing import Any

from runtime.net.channel import ListenerClosedError
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.pool import WorkerHandle

__all__ = ["RemoteClients"]

log = logging.getLogger("runtime")

_ACCEPT_POLL = 0.5
"""Seconds between checks of the stop flag while the accept thread waits for a peer."""


class _Guarded:
    """A remote peer's channel as the worker pool reads it: anything but a well-formed
    REQUEST (an incompatible or buggy peer) ends that connection, never the node's loop."""

    __slots__ = ("channel",)

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def fileno(self) -> int:
        """The socket's descriptor (for the selector)."""
        return self.channel.fileno()

    @property
    def sock(self) -> Any:
        """The channel's socket."""
        return self.channel.sock

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.channel.closed

    def send_many(self, msgs: list[Any]) -> bool:
        """Send `msgs` (see `Connection.send_many`)."""
        return self.channel.send_many(msgs)

    def flush(self) -> bool:
        """Send what waited for room (see `Connection.flush`)."""
        return self.channel.flush()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def recv_many(self) -> list[Any]:
        """The peer's messages; `EOFError` (the connection ends) at the first malformed one."""
        msgs = self.channel.recv_many()
        for msg in msgs:
            if not (
                type(msg) is tuple
                and len(msg) == 4
                and msg[0] == p.REQUEST
                and type(msg[1]) is int
                and msg[2] in rq.OPS
            ):
                log.warning(
                    "twinray: closing the connection of %s: not a request: %.200r",
                    self.channel.peer,
                    msg,
                )
                raise EOFError("protocol violation")
        return msgs


class RemoteClients:
    """The connections of one node process: accepted on a thread, served on the node's loop."""

    def __init__(self, node: Any, listener: Any, audit: Any = None) -> None:
        self.node = node
        self.listener = listener
        self.audit = audit
        self.jobs: Any = None
        """The head's store (`runtime.real.gcs_store.GcsStore`): every driver that connects
        is recorded in its ``jobs`` table (loop thread)."""
        self.resume: Any = None
        """A restarted head's `runtime.real.driver_resume.DriverResume` (None otherwise):
        a driver may take its old worker id back."""
        self.handles: list[WorkerHandle] = []
        """Every remote handle registered (loop thread only); closed ones stay until stop."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name="twinray-accept", daemon=True
        )

    def start(self) -> None:
        """Start accepting connections."""
        self._thread.start()

    def _accept_loop(self) -> None:
        """Accept authenticated peers until stopped (refusals are the listener's, audited)."""
        while not self._stop.is_set():
            try:
                channel, hello = self.listener.accept(timeout=_ACCEPT_POLL)
            except TimeoutError:
                continue
            except ListenerClosedError:
                return
            if self._stop.is_set() or self.node.closed:
                channel.close()
                return
            if hello.kind == "node":
                peers = self.node.peers
                if peers is None or not peers.head:
                    log.warning("twinray: refusing node %s: this is not a head", channel.peer)
                    channel.close()
                    continue
                from runtime.real.head_restart import rejoin_index

                index = rejoin_index(hello.id)  # a node that knew a previous head
                if index is None:
                    self.node._ops.append((peers.op_join, channel))
                else:
                    self.node._ops.append((peers.op_rejoin, (channel, index)))
                self.node._wake()
                continue
            if hello.kind == "driver" and self.audit is not None:
                self.audit.record("job", channel.peer, True, ident=hello.id)
            if hello.kind == "driver" and self.jobs is not None:
                job = {"peer": str(channel.peer), "connected_at": time.time()}
                self.node._ops.append((lambda a, now: self.jobs.put("jobs", *a), (hello.id, job)))
            self.node._ops.append((self._op_attach, (channel, hello)))
            self.node._wake()

    def _op_attach(self, arg: tuple[Any, Any], now: float) -> None:
        """Loop thread: serve `channel` as a remote worker handle."""
        channel, hello = arg
        pool = self.node.pool
        if pool.stopping:
            channel.close()
            return
        channel.setblocking(False)  # driven by the node's selector from now on
        worker_id = self._rejoined(hello)
        rejoined = worker_id is not None
        if worker_id is None:
            worker_id = pool.next_worker_id
            pool.next_worker_id += 1
        elif self.resume.defer(
            worker_id, channel, lambda t: self._attach(channel, worker_id, True)
        ):
            return  # welcomed once the nodes it ran tasks on are back
        self._attach(channel, worker_id, rejoined)

    def _attach(self, channel: Any, worker_id: int, rejoined: bool) -> None:
        """Loop thread: register `channel` as remote worker handle `worker_id`, welcome it."""
        pool = self.node.pool
        if pool.stopping or channel.closed:
            channel.close()
            return
        handle = WorkerHandle(worker_id, 0, _Guarded(channel), remote=True)
        self.handles.append(handle)
        self.node._sel.register(handle.conn, selectors.EVENT_READ, (pool.on_worker_io, handle))
        welcome = {
            "worker_id": worker_id,
            "node_id": f"{self.node.raylet.node:056x}",
            "arena": (os.getpid(), self.node.arena.fd, self.node.arena.capacity),
            "rejoined": rejoined,
        }  # a driver on this machine may map the arena through /proc (see remote_driver)
        pool.send(handle, p.reply(0, True, welcome))  # its owner's address derives from the id

    def _rejoined(self, hello: Any) -> int | None:
        """The worker id a driver asks back after the head restarted (its owner's index:
        `runtime.real.driver_resume`), when it may have it; None: a new one."""
        if self.resume is None or hello.kind != "driver":
            return None
        from runtime.real.head_restart import rejoin_index

        wanted = rejoin_index(hello.id)
        if wanted is None:
            return None
        in_use = {h.worker_id for h in self.handles if h.alive}
        return wanted if self.resume.may_rejoin(wanted, in_use) else None

    def close(self) -> None:
        """Stop accepting and wait for the accept thread (call before the node shuts down)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._thread.join(timeout=5.0)

    def drop_all(self) -> None:
        """Close every remote connection (after the node's loop stopped)."""
        for handle in self.handles:
            handle.alive = False
            if not handle.conn.closed:
                with contextlib.suppress(OSError):
                    handle.conn.close()
