"""A node process: a real `Node` without a user program, serving connected drivers over the network.

`twinray start --head` runs `serve` (in the foreground with ``--block``, else in a
background process started as ``python -m runtime.real.node_process``). The process builds
the node (raylet, worker pool, arena; the head also hosts the cluster's GCS and global
scheduler), listens with `runtime.net.channel.listen` on its address with the session's
token, writes ``head.json`` and its ``nodes/<pid>.json`` record, and serves until SIGTERM or
SIGINT, then stops its workers, releases its shared memory and removes its record.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.core.health import (
    RAY_HEALTH_CHECK_FAILURE_THRESHOLD,
    RAY_HEALTH_CHECK_PERIOD_S,
    RAY_NODE_TIMEOUT_S,
    check_health_config,
)
from runtime.real import sessions

__all__ = ["NodeProcessConfig", "NodeStartError", "launch", "main", "serve"]

DEFAULT_STORE = 512 << 20
"""Bytes of object store of a node when `--object-store-memory` is not given (as `init`)."""
START_TIMEOUT = 60.0
"""Seconds `launch` waits for a background node process to listen."""
RECONNECT_ENV = "TWINRAY_RECONNECT_TIMEOUT"
"""Seconds a worker node (or a connected driver) retries reaching a head whose link
closed; also how long a restarted head waits for the nodes it knew (`--reconnect-timeout`)."""
DEFAULT_RECONNECT = 30.0


def reconnect_timeout(given: float | None = None) -> float:
    """`given`, else ``TWINRAY_RECONNECT_TIMEOUT``, else 30 s (`ValueError` when not a
    non-negative number)."""
    if given is not None:
        return float(given)
    raw = os.environ.get(RECONNECT_ENV)
    if not raw:
        return DEFAULT_RECONNECT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{RECONNECT_ENV}={raw!r}: must be a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{RECONNECT_ENV}={raw!r}: must be a non-negative number of seconds")
    return value


class NodeStartError(RuntimeError):
    """A background node process did not start listening (it exited, or took too long);
    the message carries the end of its log."""


@dataclass(slots=True)
class NodeProcessConfig:
    """What one node process is started with (`twinray start` flags)."""

    session: str
    """The session directory (holds the token, records, logs and the audit log)."""
    head: bool = True
    head_address: str | None = None
    """A worker node: the head's ``HOST:PORT`` it joins."""
    host: str = "127.0.0.1"
    port: int = 0
    """0: any free port (the one chosen is in ``head.json``)."""
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    tls_cert: str | None = None
    """TLS: this node's certificate (PEM); with `tls_key`, every connection is TLS."""
    tls_key: str | None = None
    tls_ca: str | None = None
    """TLS: the CA peers' certificates must be signed by (mutual TLS); also what local
    drivers verify this node with (else its own, self-signed, certificate)."""
    reconnect_timeout: float | None = None
    """A worker node: seconds it retries reaching the head after its link closed (0: it
    stops at once); the head: how long a restarted head waits for the nodes it knew.
    None: `reconnect_timeout()`'s default."""
    heartbeat_period_s: float = RAY_HEALTH_CHECK_PERIOD_S
    """Seconds between this node's heartbeats to the head's GCS (Ray's 3 s by default)."""
    node_timeout_s: float | None = None
    """The head: a node silent this long is declared dead (None: Ray's 15 s); a worker
    node takes the head's, so it must be None there."""

    def check_health(self) -> None:
        """Raise ``ValueError`` naming the bad value unless the heartbeat settings hold."""
        period = self.heartbeat_period_s
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
            raise ValueError(f"heartbeat_period_s must be a positive number, got {period!r}")
        if self.node_timeout_s is not None and not self.head:
            raise ValueError("node_timeout_s is the head's setting (its GCS detects deaths)")
        check_health_config(float(period), self.timeout())

    def timeout(self) -> float:
        """The head's node timeout in seconds (``node_timeout_s`` or Ray's 15 s); a worker
        node's idle GCS copy gets Ray's threshold times its own period."""
        if self.node_timeout_s is not None:
            return float(self.node_timeout_s)
        if self.head:
            return RAY_NODE_TIMEOUT_S
        return self.heartbeat_period_s * RAY_HEALTH_CHECK_FAILURE_THRESHOLD

    def tls(self) -> dict[str, str | None] | None:
        """What ``head.json`` says of TLS (paths), None without it."""
        if self.tls_cert is None:
            return None
        return {"cert": self.tls_cert, "key": self.tls_key, "ca": self.tls_ca}

    def to_json(self) -> str:
        """The config as JSON (how `twinray start` passes it to the background process)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> NodeProcessConfig:
        """The config `to_json` wrote."""
        return cls(**json.loads(text))


def node_resources(config: NodeProcessConfig) -> tuple[float, int, dict[str, float]]:
    """``(num_cpus, store bytes, other resources)`` of the node, with `init`'s defaults."""
    from runtime.init_options import available_memory

    num_cpus = config.num_cpus if config.num_cpus is not None else float(os.cpu_count() or 1)
    store = config.object_store_memory or DEFAULT_STORE
    res = {k: float(v) for k, v in config.resources.items()}
    if config.num_gpus:
        res["GPU"] = float(config.num_gpus)
    res.setdefault("memory", float(available_memory()))
    res["object_store_memory"] = float(store)
    return num_cpus, store, res


class _Stop:
    """Set by SIGTERM/SIGINT (or `request`): the node process stops cleanly."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def request(self, *_: Any) -> None:
        """Ask the node process to stop (a signal handler)."""
        self.event.set()


def serve(config: NodeProcessConfig, ready: Any = None, stop: _Stop | None = None) -> int:
    """Run a node process until SIGTERM/SIGINT (or `stop`); return its exit code.

    `ready`, if given, is called with the listening address once drivers can connect
    (a worker node: with the head's address once it joined).
    """
    if not config.head:
        return serve_worker_node(config, ready, stop)
    from runtime.net.audit import AuditLog
    from runtime.net.auth import find_token
    from runtime.net.channel import listen
    from runtime.real.logs import NodeLogs
    from runtime.real.node import Node
    from runtime.real.peers import Peers
    from runtime.real.remote_clients import RemoteClients

    session = Path(config.session)
    token = find_token(session)
    if token is None:
        print(f"twinray: no auth token in {session} (nor in TWINRAY_AUTH_TOKEN)", file=sys.stderr)
        return 1
    stop = stop or _Stop()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop.request)
        signal.signal(signal.SIGINT, stop.request)
    from runtime.real.gcs_store import GcsStoreError
    from runtime.real.head_restart import HeadState

    try:
        state = HeadState(session)  # the session's GCS store: a restart restores from it
    except GcsStoreError as exc:
        print(f"twinray: {exc}", file=sys.stderr)
        return 1
    port = config.port or state.previous_port()  # a restarted head keeps its address
    audit = AuditLog(session / "audit.log")
    try:  # listen first: a port in use or bad TLS files fail before any worker starts
        ssl_context = None
        if config.tls_cert is not None:
            from runtime.net.channel import server_ssl_context

            ssl_context = server_ssl_context(config.tls_cert, config.tls_key, config.tls_ca)
        listener = listen(config.host, port, token, audit=audit, ssl_context=ssl_context)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        audit.close()
        state.close()
        print(f"twinray: cannot listen on {config.host}:{port}: {exc}", file=sys.stderr)
        return 1
    logs = NodeLogs(0, config.host)
    try:
        grace = reconnect_timeout(config.reconnect_timeout)
        num_cpus, store, res = node_resources(config)
        peers = Peers(head=True)
        peers.gcs_setup = state.setup
        node = Node(
            num_cpus, store, resources=res, peers=peers, worker_stdio=logs.stdio, **_health(config)
        )
        logs.start(node)
        transfers = _attach(node, peers, token, config.host)
    except BaseException:
        listener.close()
        audit.close()
        logs.close()
        state.close()
        raise
    clients = None
    pid = os.getpid()
    try:
        address = listener.address
        clients = RemoteClients(node, listener, audit)
        clients.jobs = state.store
        clients.resume = state.resume
        clients.start()
        state.start(address, grace)
        if state.restarted:
            print(
                f"twinray: head restarted on {session}: GCS tables restored in "
                f"{state.restored_at:.3f} s; waiting up to {grace:g} s for its nodes",
                file=sys.stderr,
                flush=True,
            )
        if config.head:
            head = {"address": address, "pid": pid, "tls": config.tls()}
            sessions.write_json(session / "head.json", head)
            sessions.link_latest(session)  # `init(address="auto")` finds it from now on
        sessions.write_record(
            session, sessions.NodeRecord(pid, address, config.head, str(session), time.time())
        )
        if ready is not None:
            ready(address)
        while not stop.event.wait(0.5):
            if node.closed or node.loop_error is not None:
                print(f"twinray: the node's loop stopped: {node.loop_error!r}", file=sys.stderr)
                return 1
        return 0
    finally:
        if clients is not None:
            clients.close()
        transfers.close()  # no pull writes into the arena once it is released
        node.shutdown()
        logs.close()
        state.close()
        if clients is not None:
            clients.drop_all()
        else:
            listener.close()
        audit.close()
        sessions.remove_record(session, pid)
        if config.head:
            info = sessions.head_info(session)
            if info is not None and info.get("pid") == pid:
                (session / "head.json").unlink(missing_ok=True)


NODE_INDEX_VAR = "TWINRAY_NODE_INDEX"
"""What `runtime.real.addresses` reads (its ``NODE_INDEX_VAR``; not imported here: importing
it fixes the values)."""


def _set_node_index(index: int) -> None:
    """Make this process (and the workers it starts) node ``index`` of the cluster; must
    run before `runtime.real.addresses` is first imported (`RuntimeError` otherwise)."""
    os.environ[NODE_INDEX_VAR] = str(index)
    loaded = sys.modules.get("runtime.real.addresses")
    if loaded is not None and index != loaded.NODE_ID:
        raise RuntimeError(
            f"runtime.real.addresses was imported as node {loaded.NODE_ID} before this "
            f"process became node {index}"
        )


def _health(config: NodeProcessConfig) -> dict[str, float]:
    """The `Node` arguments of the heartbeat settings (checked: `ValueError`)."""
    config.check_health()
    return {
        "heartbeat_period_s": float(config.heartbeat_period_s),
        "node_timeout_s": config.timeout(),
    }


def _attach(node: Any, peers: Any, token: str, host: str) -> Any:
    """Serve ``peers``' links and the node's objects (`runtime.real.transfers`) on
    ``node``'s loop thread; return the `Transfers`."""
    from runtime.core.messages import FenceNode
    from runtime.real.transfers import Transfers

    transfers = Transfers(node, peers, token, host)

    def attach(_arg: Any, _now: float) -> None:
        peers.attach(node)
        transfers.install(node._effects)
        if peers.head:  # its GCS declares silent nodes dead: the head cuts them off
            node._effects[FenceNode] = peers.fence
        peers.announce_objects(node.raylet.node, transfers.server.address)

    node._ops.append((attach, None))
    node._wake()
    return transfers


def serve_worker_node(
    config: NodeProcessConfig, ready: Any = None, stop: _Stop | None = None
) -> int:
    """Run a worker node process: join the head at ``config.head_address``, serve until
    SIGTERM/SIGINT (or `stop`) or until the head is gone; return the exit code.

    The head gives the node its index in its welcome; the node's addresses, owner
    indexes and function ids derive from it (`runtime.real.addresses`), so they are set
    (``TWINRAY_NODE_INDEX``) before the node's modules are imported and its zygote starts.
    """
    from runtime.net.auth import Hello, find_token
    from runtime.net.channel import connect
    from runtime.real.peers import JoinError, Peers, await_welcome

    session = Path(config.session)
    if config.head_address is None:
        print("twinray: a worker node needs the head's address", file=sys.stderr)
        return 1
    token = find_token(session)
    if token is None:
        print(f"twinray: no auth token in {session} (nor in TWINRAY_AUTH_TOKEN)", file=sys.stderr)
        return 1
    stop = stop or _Stop()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop.request)
        signal.signal(signal.SIGINT, stop.request)
    pid = os.getpid()
    try:
        channel, _ = connect(
            config.head_address, token, Hello("node", f"node-{pid}"), retry_for=10.0
        )
        index, servers = await_welcome(channel)
    except (OSError, JoinError) as exc:  # AuthenticationError, ConnectionError are OSErrors
        print(f"twinray: cannot join the head at {config.head_address}: {exc}", file=sys.stderr)
        return 1
    logs = None
    try:
        _set_node_index(index)
        from runtime.real.logs import NodeLogs
        from runtime.real.node import Node

        num_cpus, store, res = node_resources(config)
        peers = Peers(head=False)
        from runtime.real.owner_mail import HeadOwnerMail

        peers.mail = HeadOwnerMail(peers.stride)  # results kept for a restarted head
        peers.object_servers.update(servers)
        peers.add_link(channel, 0)
        logs = NodeLogs(index, config.host)
        node = Node(
            num_cpus, store, resources=res, peers=peers, worker_stdio=logs.stdio, **_health(config)
        )
        logs.start(node)
        transfers = _attach(node, peers, token, config.host)
    except BaseException:
        channel.close()
        if logs is not None:
            logs.close()
        raise
    try:
        # the GCS answers the raylet's subscription (sent after its registration) with the
        # head's node: from then on the head knows this node (what `launch` waits for)
        deadline = time.monotonic() + START_TIMEOUT
        while not peers.registered:
            if time.monotonic() > deadline or peers.lost_head or node.loop_error is not None:
                print("twinray: the head did not register this node", file=sys.stderr)
                return 1
            time.sleep(0.01)
        sessions.write_record(
            session,
            sessions.NodeRecord(pid, config.head_address, False, str(session), time.time()),
        )
        if ready is not None:
            ready(config.head_address)
        while not stop.event.wait(0.2):
            if node.closed or node.loop_error is not None:
                print(f"twinray: the node's loop stopped: {node.loop_error!r}", file=sys.stderr)
                return 1
            if peers.lost_head and not _rejoin(config, token, index, node, peers, stop):
                return 1
        return 0
    finally:
        transfers.close()  # no pull writes into the arena once it is released
        node.shutdown()
        logs.close()
        peers.close()
        sessions.remove_record(session, pid)


def _rejoin(
    config: NodeProcessConfig,
    token: str,
    index: int,
    node: Any,
    peers: Any,
    stop: _Stop | None = None,
) -> bool:
    """A worker node lost the head: retry reaching it for the reconnect timeout, then
    re-register as node ``index`` (a restarted head restores the tables; this node's
    running tasks, actors and stored objects stay). False (printed why): this node stops."""
    from runtime.net.auth import Hello
    from runtime.net.channel import connect
    from runtime.real.head_restart import rejoin_hello_id
    from runtime.real.peers import FencedError, JoinError, await_welcome

    timeout = reconnect_timeout(config.reconnect_timeout)
    if timeout <= 0:
        print("twinray: the head is gone; this node stops", file=sys.stderr)
        return False
    print(f"twinray: the head is gone; reconnecting for up to {timeout:g} s", file=sys.stderr)
    t0 = time.monotonic()
    hello = Hello("node", rejoin_hello_id(os.getpid(), index))
    while True:
        left = timeout - (time.monotonic() - t0)
        try:
            if left <= 0:
                raise ConnectionError("the reconnect timeout ran out")
            try:  # in slices: a SIGTERM meanwhile stops the node
                channel, _ = connect(config.head_address, token, hello, retry_for=min(left, 1.0))
            except ConnectionError:
                if stop is not None and stop.event.is_set():
                    return False
                if time.monotonic() - t0 < timeout:
                    continue
                raise
            got, servers = await_welcome(channel)
            break
        except FencedError as exc:  # this head declared the node dead: never back
            print(f"twinray: the head refused this node: {exc}; this node stops", file=sys.stderr)
            return False
        except JoinError as exc:  # a head that is still starting closes early: retry
            if time.monotonic() - t0 >= timeout:
                print(
                    f"twinray: could not rejoin the head: {exc}; this node stops", file=sys.stderr
                )
                return False
            time.sleep(0.2)
        except OSError as exc:  # AuthenticationError, ConnectionError are OSErrors
            print(
                f"twinray: could not reconnect to the head at {config.head_address} within "
                f"{timeout:g} s ({RECONNECT_ENV} / --reconnect-timeout): {exc}; this node stops",
                file=sys.stderr,
            )
            return False
    if got != index:
        channel.close()
        print(
            f"twinray: the head gave node index {got}, not {index}; this node stops",
            file=sys.stderr,
        )
        return False
    peers.registered = False  # set again by the restarted GCS's answer
    node._ops.append((peers.op_relink, (channel, servers)))
    node._wake()
    deadline = time.monotonic() + START_TIMEOUT
    while not peers.registered:
        if time.monotonic() > deadline or node.loop_error is not None:
            print("twinray: the restarted head did not register this node", file=sys.stderr)
            return False
        time.sleep(0.01)
    print(
        f"twinray: rejoined the head as node {index} in {time.monotonic() - t0:.3f} s",
        file=sys.stderr,
        flush=True,
    )
    return True


def _child_env() -> dict[str, str]:
    """The environment of a background node process: this `runtime` package first on its path."""
    import runtime

    env = dict(os.environ)
    root = str(Path(runtime.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def launch(
    config: NodeProcessConfig, timeout: float = START_TIMEOUT, wrap: Sequence[str] = ()
) -> tuple[subprocess.Popen, str]:
    """Start a node process in the background (its own session id, output to the session's
    ``logs/``); return it and its address once it listens, else raise `NodeStartError`.
    `wrap`: an argv prefix that execs the node (``ip netns exec NAME``: the pid stays)."""
    session = Path(config.session)
    log_path = session / "logs" / ("head.out" if config.head else f"node_{time.time_ns()}.out")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*wrap, sys.executable, "-m", "runtime.real.node_process", config.to_json()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by the shell's Ctrl-C; `twinray stop` does
            env=_child_env(),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = session / "nodes" / f"{proc.pid}.json"
        if record.exists():
            data = json.loads(record.read_text(encoding="utf-8"))
            return proc, str(data["address"])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        why = f"did not listen within {timeout:g} s"
    else:
        why = f"exited with status {proc.returncode}"
    tail = log_path.read_text(errors="replace")[-2000:]
    raise NodeStartError(f"the node process {why}; its log ({log_path}):\n{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.real.node_process CONFIG_JSON``: what `twinray start` runs in the background."""
    parser = argparse.ArgumentParser(prog="python -m runtime.real.node_process")
    parser.add_argument("config", help="the node process's config as JSON (NodeProcessConfig)")
    args = parser.parse_args(argv)
    return serve(NodeProcessConfig.from_json(args.config))


if __name__ == "__main__":
    sys.exit(main())
