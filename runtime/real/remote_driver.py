"""A driver connected to a running cluster: `init(address=...)` makes `runtime.api._node` a `RemoteDriver`.

The driver opens one authenticated `runtime.net` channel to the cluster's head node
process and speaks the worker request protocol over it (`runtime.real.requests`): the
`RemoteDriver` is the worker's `WorkerClient` (same encoding of arguments, refs, borrows
and loans), talking through a `_Link` instead of a worker's socketpair. The head serves it
as a remote worker handle with a core `Owner` of its own (`runtime.real.remote_clients`);
see docs/design.md, "Multi-node real mode".
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from runtime.core.ids import owner_index_of, task_of
from runtime.exceptions import (
    AuthenticationError,
    MultiNodeNotAvailableError,
    OwnerDiedError,
    RayError,
)
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real import sessions
from runtime.real.logs import print_log
from runtime.real.worker import queue_bookkeeping
from runtime.real.worker_client import WorkerClient, _sessions

__all__ = [
    "ADDRESS_ENV",
    "ClusterConnectionLost",
    "RemoteDriver",
    "client_tls",
    "connect_driver",
    "parse_address",
    "resolve_address",
]

ADDRESS_ENV = "TWINRAY_ADDRESS"
"""Read by `init()` and `init(address="auto")`, as Ray reads ``RAY_ADDRESS``."""
CONNECT_TIMEOUT = 10.0
"""Seconds the handshake and the welcome may take."""
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[^:\s/]+):(\d{1,5})$")
_RESENT = frozenset({rq.GET, rq.WAIT, rq.INFO, rq.INSPECT, rq.GET_ACTOR, rq.SUBMIT_AS, rq.CALL_AS})
"""Requests sent again when a restarted head took the driver back (they only read, or
submit under a task id the resumed owner recognises)."""
_CHOSEN = frozenset({rq.SUBMIT, rq.CALL_ACTOR})
"""Submissions sent under a task id the driver chooses (`driver_lineage.begin`)."""


class ClusterConnectionLost(RayError, ConnectionError):
    """The connection to the cluster closed (its node process stopped or crashed)."""


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; `MultiNodeNotAvailableError` when it is not one."""
    if "://" in address:
        raise MultiNodeNotAvailableError(
            f"init(address={address!r}): client addresses ({address.split('://')[0]}://) are "
            "not supported: twinray has no client mode; give the cluster's HOST:PORT or 'auto'"
        )
    m = _ADDRESS.match(address)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise MultiNodeNotAvailableError(
            f"init(address={address!r}): expected 'HOST:PORT' (e.g. '127.0.0.1:6380'), 'auto' "
            "or 'local'"
        )
    return m.group(1).strip("[]"), int(m.group(2))


TLS_ENV = ("TWINRAY_TLS_CA_CERT", "TWINRAY_TLS_CERT", "TWINRAY_TLS_KEY")
"""A driver's TLS files (the CA it verifies the cluster with; its own certificate and key
for mutual TLS), as Ray's ``RAY_TLS_*`` variables; on the head's machine they default to
what the head was started with (``head.json``)."""


def client_tls(session: Path | None, target: str) -> Any:
    """The client TLS context to reach `target`, or None for a plain connection.

    TLS is on when a ``TWINRAY_TLS_*`` variable is set, or when `target` is the head of
    `session` and that head was started with TLS.
    """
    ca, cert, key = (os.environ.get(name) or None for name in TLS_ENV)
    info = sessions.head_info(session) if session is not None else None
    tls = info.get("tls") if info is not None and info.get("address") == target else None
    if tls:
        ca = ca or tls.get("ca") or tls.get("cert")
        if tls.get("ca"):  # mutual TLS: this machine's driver presents the node's pair
            cert, key = cert or tls.get("cert"), key or tls.get("key")
    if ca is None and cert is None:
        return None
    from runtime.net.channel import client_ssl_context

    return client_ssl_context(ca, cert, key)


def resolve_address(address: str) -> tuple[str, Path | None]:
    """The ``HOST:PORT`` to connect to and the local session it belongs to (if known).

    ``"auto"`` means ``TWINRAY_ADDRESS`` when set, else the head of this machine's latest
    session (``session_latest/head.json``); `MultiNodeNotAvailableError` when there is none.
    """
    latest = sessions.latest_session()
    if address == "auto":
        env = os.environ.get(ADDRESS_ENV)
        if env:
            address = env
        else:
            info = sessions.head_info(latest) if latest is not None else None
            if info is None or not sessions.pid_alive(int(info.get("pid", 0))):
                raise MultiNodeNotAvailableError(
                    "init(address='auto'): could not find any running twinray cluster on this "
                    f"machine (no live head in {sessions.session_root() / sessions.LATEST}); "
                    "start one with `twinray start --head`, or give HOST:PORT or "
                    f"{ADDRESS_ENV}"
                )
            return str(info["address"]), latest
    parse_address(address)
    return address, latest


class _Link:
    """What a `WorkerClient` expects of its worker, for a driver: the channel and its queues."""

    task_id = None
    actor_id = None
    arena = None
    """Values come inline (the node sends arena values' bytes to remote handles)."""

    def __init__(self, channel: Any, address: str) -> None:
        self.conn = channel
        self.address = address
        self.replies: list[tuple] = []
        self.inbox: deque[tuple] = deque()
        self.client: Any = None
        self.worker_id = 0
        self.concurrent: Any = None
        """The `_Multiplexer` the requests go through (set by `RemoteDriver`)."""

    def _recv(self) -> list[tuple]:
        try:
            return self.conn.recv_many()
        except (EOFError, ConnectionError) as exc:
            raise ClusterConnectionLost(
                f"the connection to the cluster at {self.address} was lost: {exc}"
            ) from None

    def _flush(self) -> None:
        client = self.client
        if client is not None:
            queue_bookkeeping(client, self.replies)
        if self.replies:
            try:
                self.conn.send_many(self.replies)
            except OSError as exc:
                raise ClusterConnectionLost(
                    f"the connection to the cluster at {self.address} was lost: {exc}"
                ) from None
            self.replies.clear()


def _map_arena(info: Any) -> Any:
    """Map the node's arena when the node runs on this machine (through its process's
    ``/proc/<pid>/fd/<fd>``, which only the same user can open); None otherwise."""
    if not info:
        return None
    from runtime.real.arena import Arena

    pid, fd, capacity = info
    try:
        mine = os.open(f"/proc/{int(pid)}/fd/{int(fd)}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None  # another machine (or another user's process)
    try:
        return Arena.attach(mine, int(capacity))
    except (OSError, ValueError):
        return None


class _Multiplexer:
    """Requests of several program threads in flight at once on one channel, replies
    matched by request id on a reader thread (what `WorkerClient.request` uses as a
    worker's `concurrent`; the node already answers a worker's requests in any order)."""

    is_async = False
    """Not an async actor: a blocking `get` is the program's business."""
    loop_thread = None

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.slots: dict[int, Any] = {}
        self.send_lock = threading.Lock()
        self.lost: ClusterConnectionLost | None = None
        self.reader = threading.Thread(target=self._read, name="twinray-driver-reader", daemon=True)
        self.connected = threading.Event()
        """Clear while the driver reconnects to a restarted head (requests wait for it)."""
        self.connected.set()
        self.reconnect_for = 0.0
        """Seconds to retry reaching the head after the channel closed (0: do not)."""
        self.reconnect: Any = None
        """Called (reader thread) with the loss to reconnect; True once reconnected."""
        self.sent: dict[int, tuple[str, Any]] = {}
        """Request id -> (op, payload) of the requests not answered yet: after the head
        restarted and took this driver back under its owner, reads are sent again."""
        self.rejoined = False
        """The last reconnection took this driver back under its old owner (its refs live)."""

    def start(self) -> None:
        """Start reading replies."""
        self.reader.start()

    def _send(self, client: Any, req_id: int, slot: Any, op: str, payload: Any) -> None:
        if not self.connected.is_set():  # the head restarts: wait for the reconnection
            self.connected.wait(self.reconnect_for + CONNECT_TIMEOUT)
        with client.pickling, self.send_lock:
            if self.lost is not None:
                raise self.lost
            self.slots[req_id] = slot
            if op in _RESENT:
                self.sent[req_id] = (op, payload)
            self.link.replies.append(p.request(req_id, op, payload))
            try:
                self.link._flush()
            except ClusterConnectionLost:
                self.slots.pop(req_id, None)
                raise

    def request(self, op: str, payload: Any, timeout: float | None = None) -> Any:
        """Send one request and block (this thread only) for its reply."""
        from runtime.exceptions import GetTimeoutError
        from runtime.real.concurrent_actor import _reply_value, _Slot

        client = self.link.client
        slot = _Slot()
        req_id = next(client._req_ids)
        self._send(client, req_id, slot, op, payload)
        if timeout is None:
            slot.lock.acquire()
        elif not slot.lock.acquire(True, max(timeout, 0.0)):
            with client.pickling, self.send_lock:
                gone = self.slots.pop(req_id, None)
                self.sent.pop(req_id, None)
                if gone is not None and self.lost is None:
                    self.link.replies.append(p.request(0, rq.UNWAIT, req_id))
                    self.link._flush()
            if gone is not None:
                raise GetTimeoutError(f"timed out after {timeout} s")
            slot.lock.acquire()  # the reply raced the timeout: it is here
        return _reply_value(slot.reply)

    def request_async(self, op: str, payload: Any, callback: Any) -> None:
        """Send a request whose reply runs `callback(reply)` on the reader thread."""
        from runtime.real.concurrent_actor import _Slot

        client = self.link.client
        self._send(client, next(client._req_ids), _Slot(callback), op, payload)

    def _read(self) -> None:
        """Reader thread: hand each REPLY to its slot; on EOF fail every pending request,
        then reconnect (a restarted head) when the driver may, else stay lost."""
        while True:
            lost = self._read_until_lost()
            closing = self.link.client is None or self.link.client.closed
            may = not closing and self.reconnect_for > 0 and self.reconnect is not None
            with self.send_lock:
                self.lost = lost
                if may:
                    self.connected.clear()
                pending, self.slots = self.slots, {}
                sent, self.sent = self.sent, {}
            kept = {i: slot for i, slot in pending.items() if i in sent}
            for req_id, slot in pending.items():
                if req_id not in kept:
                    slot.deliver(p.reply(0, False, lost))
            if not may or not self.reconnect(lost):
                for slot in kept.values():
                    slot.deliver(p.reply(0, False, self.lost or lost))
                self.connected.set()
                return
            if not self.rejoined:  # a new owner: what these read is gone with the old one
                for slot in kept.values():
                    slot.deliver(p.reply(0, False, lost))
                kept = {}
            with self.send_lock:
                self.lost = None
                for req_id, slot in kept.items():  # reads in flight: asked again
                    self.slots[req_id] = slot
                    self.sent[req_id] = sent[req_id]
                    op, payload = sent[req_id]
                    self.link.replies.append(p.request(req_id, op, payload))
                if kept:
                    with contextlib.suppress(ClusterConnectionLost):
                        self.link._flush()  # a loss now: the reader sees it next
            self.connected.set()

    def _read_until_lost(self) -> ClusterConnectionLost:
        try:
            while True:
                for msg in self.link._recv():
                    if msg[0] == p.REPLY:
                        self.sent.pop(msg[1], None)
                        slot = self.slots.pop(msg[1], None)
                        if slot is not None:
                            slot.deliver(msg)
                    elif msg[0] == p.LOG:
                        print_log(msg[1], msg[2])
        except ClusterConnectionLost as exc:
            return exc
        except Exception as exc:  # a reply that could not be unpickled, ...
            return ClusterConnectionLost(f"the connection to the cluster failed: {exc!r}")


class RemoteDriver(WorkerClient):
    """The `NodeLike` of a driver connected to a cluster (`init(address=...)`)."""

    in_worker = False
    """A driver: the job's namespace and runtime_env are this process's (`runtime.api`)."""

    def __init__(
        self,
        channel: Any,
        address: str,
        welcome: dict[str, Any],
        session: Path | None = None,
        log_to_driver: bool = False,
    ) -> None:
        link = _Link(channel, address)
        link.worker_id = int(welcome["worker_id"])
        super().__init__(link)
        link.client = self
        mux = _Multiplexer(link)
        link.concurrent = mux  # program threads' requests in flight together
        self.address = address
        self.node_id: str = welcome["node_id"]
        self.job_namespace: str | None = None
        self.arena = _map_arena(welcome.get("arena"))
        if self.arena is not None:  # values come as offsets into the mapped arena
            link.arena = self.arena
            link.replies.append(p.request(0, rq.SHARED, None))  # goes out first
        self._log_to_driver = log_to_driver
        if log_to_driver:  # the cluster's worker output is printed here (runtime.real.logs)
            link.replies.append(p.request(0, rq.LOGS, True))
        self.dead_owners: set[int] = set()
        """Owner indexes of this driver's previous owners (on a head that restarted since):
        their objects are gone (`OwnerDiedError`)."""
        self._session_dir = session
        from runtime.real.driver_lineage import DriverLineage

        self.lineage = DriverLineage()
        """What a restarted head needs to rebuild this driver's owner (`driver_lineage`)."""
        self.resumed = 0
        """Times a restarted head took this driver back under its owner (refs kept)."""
        self.reconnects = 0
        """Times this driver reconnected to a restarted head."""
        self.reconnect_seconds: list[float] = []
        """How long each reconnection took (from the loss to the new welcome)."""
        from runtime.real.node_process import reconnect_timeout

        mux.reconnect_for = reconnect_timeout()
        mux.reconnect = self._reconnect
        mux.start()
        self.job_actors: list[int] = []
        """Named actors this driver created that are not detached: they end with it, as in
        Ray (unnamed ones end when its references go, on the node's side)."""

    def _oid(self, ref: Any) -> int:
        oid = super()._oid(ref)
        if self.dead_owners and owner_index_of(task_of(oid)) in self.dead_owners:
            raise OwnerDiedError(
                f"{ref!r} was owned by this driver's owner on the head, which restarted since: "
                "its value and lineage are gone"
            )
        return oid

    def release_ref(self, oid: int) -> None:
        """Drop a reference (see `WorkerClient.release_ref`); the lineage hears of it."""
        self.releases.append(oid)
        self.lineage.handle_dropped(oid)

    def adopt_ref(self, oid: int, owner: int) -> Any:
        """A ref unpickled here (see `WorkerClient.adopt_ref`); the lineage counts it."""
        if owner == self.addr:
            self.lineage.handle_made(oid)
        return super().adopt_ref(oid, owner)

    def _reconnect(self, lost: ClusterConnectionLost) -> bool:
        """Reader thread: the channel closed; retry reaching the head for the reconnect
        timeout, asking for this driver's worker id (its owner's index) back. A restarted
        head gives it back: the driver sends its lineage first (``resume``: the new owner
        at the same address rebuilds what the old one held, `runtime.real.driver_resume`)
        and every ref stays valid. Otherwise this driver has a new owner on the head (a
        new worker id): refs it owned before are dead (`OwnerDiedError`), refs it
        borrowed are registered again."""
        from runtime.real.addresses import OWNER_INDEX_BASE, WORKER_OWNER_BASE

        link = self.worker
        mux = link.concurrent
        t0 = time.monotonic()
        last: BaseException = lost
        while time.monotonic() - t0 < mux.reconnect_for and not self.closed:
            try:
                channel, welcome, extra = _open(
                    self.address,
                    self._session_dir,
                    "driver",
                    self.address,
                    retry_for=0.5,
                    rejoin=link.worker_id,
                )
                break
            except (MultiNodeNotAvailableError, AuthenticationError) as exc:
                last = exc
                time.sleep(0.2)
        else:
            mux.lost = ClusterConnectionLost(
                f"the connection to the cluster at {self.address} was lost and could not be "
                f"made again within {mux.reconnect_for:g} s (TWINRAY_RECONNECT_TIMEOUT): {last}"
            )
            return False
        rejoined = bool(welcome.get("rejoined")) and int(welcome["worker_id"]) == link.worker_id
        with self.pickling, mux.send_lock:
            old = link.conn
            mine = OWNER_INDEX_BASE + link.worker_id + 1
            link.conn = channel
            link.worker_id = int(welcome["worker_id"])
            self.addr = WORKER_OWNER_BASE + link.worker_id
            self.session = next(_sessions)  # functions and classes register again
            borrowed = [(o, w) for o, w in self.owners.items()]  # to the new owner
            if rejoined:  # same owner index: the lineage goes first, borrows with it
                releases = [o for o in self.releases if owner_index_of(task_of(o)) != mine]
                self.releases, self.borrows = releases, []
                resume = p.request(0, rq.RESUME, self.lineage.resume_payload(borrowed))
                try:
                    channel.send_many([resume])
                except OSError as exc:
                    mux.lost = ClusterConnectionLost(f"the resumed connection failed: {exc}")
                    return False
                self.resumed += 1
            else:
                self.dead_owners.add(mine)
                dead = self.dead_owners
                self.releases = [o for o in self.releases if owner_index_of(task_of(o)) not in dead]
                self.borrows = borrowed
            mux.rejoined = rejoined
            self.unpins, self.lent, self.loans, self.stream_drops = [], [], [], []
            link.replies = []
            link.inbox.extend(extra)
            if self.arena is not None:
                self.arena.close()
            self.arena = _map_arena(welcome.get("arena"))
            link.arena = self.arena
            if self.arena is not None:
                link.replies.append(p.request(0, rq.SHARED, None))
            if self._log_to_driver:  # ask the restarted head for the workers' output again
                link.replies.append(p.request(0, rq.LOGS, True))
            self.node_id = welcome["node_id"]
        with contextlib.suppress(OSError):
            old.close()
        self.reconnects += 1
        self.reconnect_seconds.append(time.monotonic() - t0)
        return True

    def request(self, op: str, payload: Any, timeout: float | None = None) -> Any:
        """Send one request to the cluster and block for its reply; what a submission
        made is kept in the lineage (`runtime.real.driver_lineage`)."""
        if self.closed:
            raise RayError("the connection to the cluster was shut down: call runtime.init()")
        lineage = self.lineage
        if op in _CHOSEN:  # under a task id of our own: kept until answered
            from runtime.real.addresses import OWNER_INDEX_BASE

            chosen = lineage.begin(op, payload, OWNER_INDEX_BASE + self.worker.worker_id + 1)
            if chosen is not None:
                op, (task_id, body) = chosen  # submit_as / call_as
                try:
                    reply = super().request(op, (task_id, body), timeout)
                except BaseException:
                    lineage.abort(task_id)
                    raise
                return lineage.finish(task_id, reply)
        return lineage.record(op, payload, super().request(op, payload, timeout))

    def create_actor(self, ac: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Create an actor owned by this driver (see `WorkerClient.create_actor`)."""
        handle = super().create_actor(ac, args, kwargs, options)
        if options.name and options.lifetime != "detached" and not options.get_if_exists:
            self.job_actors.append(handle._actor_id)
        return handle

    def context(self) -> dict[str, Any]:
        """What `init` returns: the cluster's resources as the head node reports them."""
        info = self.runtime_info()
        return {
            "address": self.address,
            "node_id": info["node_id"],
            "num_cpus": info["total"].get("CPU", 0.0),
            "resources": dict(info["total"]),
            "object_store_memory": info["store"],
        }

    def assigned_resources(self) -> dict[str, float]:
        """Only tasks and actors have assigned resources: the driver has none (as in Ray)."""
        raise AssertionError(
            "get_assigned_resources() is only available in a task or an actor, not in the driver"
        )

    def current_placement_group(self) -> tuple[int, list[dict[str, float]], bool] | None:
        """The driver runs in no placement group."""
        return None

    def timeline(self, filename: str | None = None) -> list:
        """Not available to a connected driver (the spans are the node process's)."""
        raise RayError("timeline() is not available in a driver connected to a cluster")

    def explain(self, target: Any) -> Any:
        """Not available to a connected driver (the core tables are the node process's)."""
        raise RayError("explain() is not available in a driver connected to a cluster")

    def shutdown(self) -> None:
        """End the job's named non-detached actors, send what is batched (reference
        releases) and close the connection. Idempotent."""
        if self.closed:
            return
        mux = self.worker.concurrent
        try:
            for actor_id in self.job_actors:  # they end with the job, as in Ray
                self.request(rq.KILL_ACTOR, (actor_id, True), timeout=30.0)
            with self.pickling, mux.send_lock:
                if mux.lost is None:
                    self.worker._flush()
        except (ClusterConnectionLost, RayError):
            pass
        self.closed = True
        self.worker.conn.close()  # the reader sees EOF and ends
        mux.reader.join(timeout=10.0)
        if self.arena is not None:
            self.arena.close()  # values still alive keep their pages


def connect_driver(address: str, kind: str = "driver", log_to_driver: bool = False) -> RemoteDriver:
    """Connect this process to the cluster at `address` ("auto" or "HOST:PORT") as a driver
    (`kind` "client": a tool such as `twinray status`, not a job); `log_to_driver`: print
    the output of the cluster's workers here (`init`'s option)."""

    target, session = resolve_address(address)
    channel, welcome, extra = _open(target, session, kind, address)
    driver = RemoteDriver(channel, target, welcome, session, log_to_driver)
    driver.worker.inbox.extend(extra)
    if kind != "driver":  # a tool (`twinray status`) reports a lost head at once
        driver.worker.concurrent.reconnect_for = 0.0
    return driver


def _open(
    target: str,
    session: Path | None,
    kind: str,
    address: str,
    retry_for: float = 0.0,
    rejoin: int | None = None,
) -> tuple[Any, dict[str, Any], list[Any]]:
    """Connect to the node at `target` and read its welcome: the channel, the welcome and
    what came after it. `rejoin`: the worker id this driver had (a restarted head gives
    it back, with ``"rejoined"`` in the welcome)."""
    from runtime.net.auth import Hello, find_token
    from runtime.net.channel import connect

    token = find_token(session)
    if token is None:
        raise AuthenticationError(
            f"init(address={address!r}): no auth token found to connect to {target}: set "
            "TWINRAY_AUTH_TOKEN or TWINRAY_AUTH_TOKEN_FILE (on the head's machine it is read "
            "from the session directory)"
        )
    ident = f"{socket.gethostname()}:{os.getpid()}"
    hello = Hello(kind, ident if rejoin is None else f"{ident}:rejoin-{rejoin}")
    try:
        channel, _server = connect(
            target,
            token,
            hello,
            timeout=CONNECT_TIMEOUT,
            retry_for=retry_for,
            ssl_context=client_tls(session, target),
        )
    except AuthenticationError:
        raise
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out
        raise MultiNodeNotAvailableError(
            f"init(address={address!r}): could not connect to a twinray cluster at {target}: {exc}"
        ) from None
    try:
        channel.sock.settimeout(CONNECT_TIMEOUT)
        msgs = channel.recv_many()
        channel.sock.settimeout(None)
    except (OSError, EOFError) as exc:
        channel.close()
        raise MultiNodeNotAvailableError(
            f"init(address={address!r}): the cluster at {target} did not welcome the driver: {exc}"
        ) from None
    welcome = msgs[0] if msgs else None
    if not (welcome and welcome[0] == p.REPLY and welcome[1] == 0 and welcome[2]):
        channel.close()
        raise MultiNodeNotAvailableError(
            f"init(address={address!r}): unexpected first message from {target}"
        )
    return channel, welcome[3], msgs[1:]
