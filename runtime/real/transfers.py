"""Objects between node processes: the raylet's `Transfer` carried out with `runtime.net.bulk`, arena to arena.

Each node process of a cluster serves its arena with an `ObjectServer` (the bytes go out of
the arena's memfd with ``sendfile``, pinned while they are sent) and pulls with a
`BulkClient` (``recv_into`` straight into a range of its own arena, reserved on the loop
thread first). The servers' addresses travel on the control links (`runtime.real.peers`:
a node announces its own, the head tells every node the table).

Two things start a pull, both ending in the raylet's own bookkeeping (`TransferDone`, so
that its store accounts for the copy and the GCS's directory lists it):

* the raylet's ``Transfer`` command, for a task's input held on another node (the core
  decides; the host only moves the bytes);
* an ``ObjectReady`` whose value is stored on another node (a `get` by an owner on this
  node of what a task on another node returned): the host pulls it first, then lets the
  ready command through. The embedded single node never installs this wrapper.

Small values never come here: they travel inline in the core's messages.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runtime.core.messages import ObjectLost, ObjectReady, Transfer, TransferDone, TransferFailed
from runtime.core.task import ERR_OBJECT_LOST
from runtime.exceptions import ObjectStoreFullError, ObjectTransferError
from runtime.net.auth import Hello
from runtime.net.bulk import BulkClient, Destination, ObjectServer, Source, arena_source

__all__ = ["Transfers"]

log = logging.getLogger("runtime")

PULL_THREADS = 4
"""Pulls in flight at once (one connection each)."""


class Transfers:
    """One node process's object server, puller and the effects that use them."""

    def __init__(self, node: Any, peers: Any, token: str, host: str = "127.0.0.1") -> None:
        self.node = node
        self.peers = peers
        self.objects = node.objects
        self.arena = node.arena
        self.raylet = node.raylet
        self.node_id = node.raylet.node
        self.server = ObjectServer(
            self.lookup, token, host, hello=Hello("node", f"objects-{self.node_id}")
        )
        self.client = BulkClient(token, Hello("node", f"puller-{self.node_id}"))
        self.threads = ThreadPoolExecutor(PULL_THREADS, thread_name_prefix="twinray-pull")
        self.pulling: dict[int, list[ObjectReady]] = {}
        """Object id -> the ready commands waiting for its pull (loop thread)."""
        self.inflight: set[int] = set()
        """Objects being pulled: a second request for one joins the pull under way."""
        self.notify: set[int] = set()
        """Objects whose pull the raylet asked for (it hears `TransferDone`/`TransferFailed`)."""
        self.fetching: dict[int, list[Any]] = {}
        """Object id -> callbacks ``(error, now)`` of the gets waiting for its pull."""
        self.pulled = 0
        """Pulls completed (for tests and stats)."""
        self._ready: Any = None

    # -- serving -------------------------------------------------------------------------

    def lookup(self, oid: int) -> Source | None:
        """Server thread: the arena range of ``oid``, pinned until it is sent (None: not here)."""
        objects = self.objects
        with objects.lock:
            loc = objects.arena_objects.get(oid)
            if loc is None:
                return None
            offset, size = loc
            objects.pins[offset] = objects.pins.get(offset, 0) + 1

        def release() -> None:
            objects.unpins.append(offset)  # applied by the loop's next step
            self.node._wake()

        return arena_source(self.arena, offset, size, release)

    # -- effects (loop thread) -----------------------------------------------------------

    def install(self, effects: dict[type, Any]) -> None:
        """Carry out ``Transfer`` and hold back ``ObjectReady`` of values stored elsewhere."""
        self._ready = effects[ObjectReady]
        effects[Transfer] = self.transfer
        effects[ObjectReady] = self.object_ready
        self.node.nested.fetch = self.fetch

    def transfer(self, cmd: Transfer, now: float) -> None:
        """The raylet wants ``cmd.oid`` from node ``cmd.src``: pull it into the arena."""
        self.notify.add(cmd.oid)
        self._start(cmd.oid, cmd.src, cmd.nbytes, now)

    def object_ready(self, cmd: ObjectReady, now: float) -> None:
        """A value is ready; if a get (not a wait) here needs it and it is stored on another node,
        pull it before resolving. Nobody waiting: it stays where it is (a later get pulls it,
        `fetch`), so the only copy of a task's output may be on the node that made it."""
        result = cmd.result
        if (
            result is None
            or not result.stored
            or cmd.node == self.node_id
            or cmd.oid in self.objects.arena_objects
            or not any(
                r.num_returns < 0 for r in self.node.nested.waits.get((cmd.owner, cmd.oid), ())
            )
        ):
            self._ready(cmd, now)
            return
        self.pulling.setdefault(cmd.oid, []).append(cmd)
        self._start(cmd.oid, cmd.node, result.size, now)

    def fetch(self, oid: int, src: int, nbytes: int, done: Any) -> None:
        """Loop thread: pull ``oid`` (``nbytes``, stored on node ``src``) for a get, then
        call ``done(error, now)``: None once the value is in this node's arena."""
        self.fetching.setdefault(oid, []).append(done)
        self._start(oid, src, nbytes, time.monotonic() - self.node._t0)

    def _start(self, oid: int, src: int, nbytes: int, now: float) -> None:
        if oid in self.inflight:
            return  # its end tells every waiter
        address = self.peers.object_servers.get(src)
        if oid in self.objects.arena_objects:  # already here (a second request)
            self._finish(oid, src, -1, nbytes, None, now)
            return
        if address is None:
            self._finish(oid, src, -1, nbytes, f"node {src} serves no objects", now)
            return
        try:
            offset = self.node.effects.allocate_loop(nbytes, now)
        except ObjectStoreFullError as exc:
            self._finish(oid, src, -1, nbytes, str(exc), now)
            return
        self.inflight.add(oid)
        self.threads.submit(self._pull, oid, src, nbytes, address, offset)

    def _pull(self, oid: int, src: int, nbytes: int, address: str, offset: int) -> None:
        """Pull thread: the bytes into the reserved range; then back to the loop."""
        arena = self.arena

        def into(n: int) -> Destination:
            if n != nbytes:
                raise ObjectTransferError(f"object {oid:x} is {n} bytes, {nbytes} expected")
            return Destination(arena.writable_view(offset, n), lambda: None)

        error = None
        try:
            self.client.pull(address, oid, into)
        except Exception as exc:  # noqa: BLE001  # reported to the raylet / the getter
            error = f"pulling object {oid:x} from node {src} failed: {exc}"
        node = self.node
        node._ops.append((self._op_pulled, (oid, src, offset, nbytes, error)))
        node._wake()

    def _op_pulled(self, arg: tuple[int, int, int, int, str | None], now: float) -> None:
        oid, src, offset, nbytes, error = arg
        self.inflight.discard(oid)
        self._finish(oid, src, offset, nbytes, error, now)

    def _finish(
        self, oid: int, src: int, offset: int, nbytes: int, error: str | None, now: float
    ) -> None:
        """Loop thread: record the pulled copy (or release its range), tell who waits."""
        objects = self.objects
        out = self.node._out
        if offset >= 0:
            with objects.lock:
                if error is None and oid not in objects.arena_objects:
                    objects.arena_objects[oid] = (offset, nbytes)
                else:
                    objects.release_range_locked(offset, oid, nbytes)
        if error is None:
            self.pulled += 1
            self.raylet.handle(TransferDone(oid, nbytes, src), now, out)
        elif oid in self.notify:
            log.warning("twinray: %s", error)
            self.raylet.handle(TransferFailed(oid, src), now, out)
        self.notify.discard(oid)
        for done in self.fetching.pop(oid, ()):
            done(error, now)
        for cmd in self.pulling.pop(oid, ()):
            owner = self.node.components.get(cmd.owner) if error is not None else None
            if owner is not None:
                # its node died (or lost it): the owner re-creates it from its lineage, or
                # fails it; the gets waiting here stay registered for that ObjectReady
                owner.handle(ObjectLost([oid]), now, out)
                continue
            if error is not None:
                cmd.result = None
                cmd.error_kind, cmd.error = ERR_OBJECT_LOST, error
            self._ready(cmd, now)

    def close(self) -> None:
        """Stop serving and pulling (after the node's loop stopped)."""
        self.server.close()
        self.threads.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.client.close()
