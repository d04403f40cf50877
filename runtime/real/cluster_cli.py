"""`twinray start`, `twinray stop` and `twinray status`: node processes of this machine, from the shell.

`start --head` makes a session directory with a fresh token and starts the head node
process (`runtime.real.node_process`) in the background, waits until it listens and prints
how to connect; `--block` runs it in the foreground instead. `stop` sends SIGTERM to every
node process recorded in this machine's sessions, then SIGKILL after a grace period.
`status` asks the head (over an authenticated connection) for its resources and usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from runtime.core.health import RAY_HEALTH_CHECK_PERIOD_S, RAY_NODE_TIMEOUT_S
from runtime.real import sessions

__all__ = ["add_parsers", "start", "status", "stop", "store_usage"]

DEFAULT_PORT = 6380
"""The head's default port (Ray's is 6379: both can run side by side)."""
DEFAULT_GRACE = 10.0
"""Seconds `stop` waits after SIGTERM before SIGKILL."""
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A bad flag value: printed as ``twinray: ...``, exit code 2."""


def add_parsers(commands: Any) -> None:
    """Add `start`, `stop` and `status` to the `twinray` command's subparsers."""
    start_p = commands.add_parser(
        "start",
        help="start the head node process of a cluster on this machine",
        description="Start a twinray head node process (GCS, global scheduler, raylet, "
        "workers, object store) in the background, with a fresh session directory and "
        "auth token, and print how to connect to it.",
    )
    start_p.add_argument("--head", action="store_true", help="start a head node")
    start_p.add_argument(
        "--address", help="HOST:PORT of a running head: start a worker node that joins it"
    )
    start_p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on (0: any; default {DEFAULT_PORT}, or the previous head's "
        "port with --session)",
    )
    start_p.add_argument(
        "--node-ip-address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other logs a warning)",
    )
    start_p.add_argument("--num-cpus", type=float, help="CPUs of the node (default: the machine's)")
    start_p.add_argument(
        "--session",
        help="--head: restart the head on this existing session directory (its token, and "
        "the GCS tables it persisted: nodes and drivers reconnect)",
    )
    start_p.add_argument(
        "--reconnect-timeout",
        type=float,
        help="seconds a node retries reaching a head whose link closed (the head: how long "
        "it waits for the nodes it knew to come back) before giving up "
        "(default: TWINRAY_RECONNECT_TIMEOUT, else 30; 0: never)",
    )
    start_p.add_argument("--num-gpus", type=float, help="GPUs of the node (default 0)")
    start_p.add_argument("--resources", help="custom resources as JSON, e.g. '{\"disk\": 2}'")
    start_p.add_argument("--object-store-memory", type=int, help="bytes of object store")
    start_p.add_argument(
        "--block", action="store_true", help="stay in the foreground (SIGTERM stops it cleanly)"
    )
    start_p.add_argument(
        "--heartbeat-period-s",
        type=float,
        default=RAY_HEALTH_CHECK_PERIOD_S,
        help="seconds between this node's heartbeats to the head "
        f"(default {RAY_HEALTH_CHECK_PERIOD_S:g}, Ray's health_check_period_ms)",
    )
    start_p.add_argument(
        "--node-timeout-s",
        type=float,
        help="the head: a node silent this long is declared dead and fenced "
        f"(default {RAY_NODE_TIMEOUT_S:g}: Ray's period x health_check_failure_threshold)",
    )
    start_p.add_argument("--tls-cert", help="TLS: this node's certificate (PEM)")
    start_p.add_argument("--tls-key", help="TLS: the certificate's private key (PEM)")
    start_p.add_argument(
        "--tls-ca", help="TLS: a CA that peers' certificates must be signed by (mutual TLS)"
    )
    stop_p = commands.add_parser(
        "stop",
        help="stop every node process started on this machine",
        description="SIGTERM every twinray node process recorded in this machine's sessions, "
        "then SIGKILL those still running after the grace period.",
    )
    stop_p.add_argument(
        "--grace-period",
        type=float,
        default=DEFAULT_GRACE,
        help=f"seconds to wait before SIGKILL (default {DEFAULT_GRACE:g})",
    )
    stop_p.add_argument("--force", action="store_true", help="SIGKILL at once")
    commands.add_parser(
        "status",
        help="nodes, resources and usage of the cluster of this machine's latest session",
        description="Ask the head node of the latest session for its nodes, resources and usage.",
    )


def _resources(text: str | None) -> dict[str, float]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--resources must be a JSON object, got {text!r}: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"--resources must be a JSON object of name: amount, got {text!r}")
    out = {}
    for name, amount in value.items():
        if name in ("CPU", "GPU", "memory", "object_store_memory"):
            raise CliError(f"--resources: {name!r} is set by its own flag, not in --resources")
        ok = isinstance(amount, (int, float)) and not isinstance(amount, bool)
        if not ok or not math.isfinite(amount) or amount < 0:
            raise CliError(f"--resources: {name!r} must be a non-negative number, got {amount!r}")
        out[str(name)] = float(amount)
    return out


def _config(args: argparse.Namespace, session: Path) -> Any:
    from runtime.real.node_process import NodeProcessConfig

    if args.head == (args.address is not None):
        raise CliError("start: give either --head or --address HOST:PORT (of a running head)")
    if args.address is not None:
        from runtime.net.channel import parse_address

        try:
            parse_address(args.address)
        except ValueError as exc:
            raise CliError(f"--address: {exc}") from None
    if args.port is None:  # a restarted head keeps its previous port (0: the one it recorded)
        args.port = 0 if getattr(args, "session", None) is not None else DEFAULT_PORT
    if not 0 <= args.port < 65536:
        raise CliError(f"--port must be between 0 and 65535, got {args.port}")
    for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise CliError(f"{flag} must be a non-negative number, got {value}")
    if args.object_store_memory is not None and args.object_store_memory <= 0:
        raise CliError(f"--object-store-memory must be positive, got {args.object_store_memory}")
    tls = _tls_paths(args)
    reconnect = getattr(args, "reconnect_timeout", None)
    if reconnect is not None and (not math.isfinite(reconnect) or reconnect < 0):
        raise CliError(f"--reconnect-timeout must be a non-negative number, got {reconnect}")
    config = NodeProcessConfig(
        reconnect_timeout=reconnect,
        tls_cert=tls[0],
        tls_key=tls[1],
        tls_ca=tls[2],
        session=str(session),
        head=args.head,
        head_address=args.address,
        host=args.node_ip_address,
        port=args.port,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        resources=_resources(args.resources),
        object_store_memory=args.object_store_memory,
        heartbeat_period_s=args.heartbeat_period_s,
        node_timeout_s=args.node_timeout_s,
    )
    try:
        config.check_health()
    except ValueError as exc:
        flag = "--node-timeout-s" if "node_timeout_s" in str(exc) else "--heartbeat-period-s"
        raise CliError(f"{flag}: {exc}") from None
    return config


def _tls_paths(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """The TLS files given (absolute paths), checked to exist; cert and key go together."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together (give both, or neither)")
    if args.tls_ca is not None and args.tls_cert is None:
        raise CliError("--tls-ca needs --tls-cert and --tls-key")
    paths = []
    for flag, value in (
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
        ("--tls-ca", args.tls_ca),
    ):
        if value is not None and not Path(value).is_file():
            raise CliError(f"{flag}: no such file: {value}")
        paths.append(str(Path(value).resolve()) if value is not None else None)
    return paths[0], paths[1], paths[2]


def _how_to_connect(address: str, session: Path, pid: int) -> str:
    return (
        f"twinray head node started (pid {pid}), listening on {address}\n"
        f"  session directory: {session} (auth token, logs, audit log)\n"
        "To connect a driver on this machine:\n"
        f"  runtime.init(address={address!r})   # or address='auto'\n"
        "From another machine, also set TWINRAY_AUTH_TOKEN (or TWINRAY_AUTH_TOKEN_FILE) to "
        f"the token in {session / 'auth_token'}.\n"
        "To see the cluster: twinray status    To stop it: twinray stop"
    )


def start(args: argparse.Namespace) -> int:
    """`twinray start --head ...`: start the head node process; 0 once it listens."""
    from runtime.net.auth import new_token, save_token

    if args.address is not None and not args.head:
        return _start_worker_node(args)
    if getattr(args, "session", None) is not None:
        session = _restart_session(args)
        config = _config(args, session)
    else:
        session = sessions.new_session()
        try:
            config = _config(args, session)
        except CliError:
            with contextlib.suppress(OSError):
                for sub in ("logs", "nodes"):
                    (session / sub).rmdir()
                session.rmdir()
            raise
        save_token(session, new_token())
    if args.block:
        from runtime.real.node_process import serve

        def ready(address: str) -> None:
            print(_how_to_connect(address, session, os.getpid()), flush=True)

        return serve(config, ready=ready)
    from runtime.real.node_process import NodeStartError, launch

    try:
        proc, address = launch(config)
    except NodeStartError as exc:
        print(f"twinray start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(_how_to_connect(address, session, proc.pid))
    return 0


def _restart_session(args: argparse.Namespace) -> Path:
    """`start --head --session DIR`: the session to restart the head on (checked)."""
    from runtime.net.auth import find_token

    if not args.head:
        raise CliError("--session is for --head (a worker node joins its head's session)")
    session = Path(args.session).resolve()
    if not session.is_dir():
        raise CliError(f"--session: no such session directory: {args.session}")
    if find_token(session) is None:
        raise CliError(f"--session: {session} has no auth token (not a twinray session)")
    info = sessions.head_info(session)
    if info is not None and sessions.pid_alive(int(info.get("pid", 0))):
        raise CliError(f"--session: the head of {session} is running (pid {info['pid']})")
    for sub in ("logs", "nodes"):
        (session / sub).mkdir(exist_ok=True)
    return session


def _is_node_process(pid: int) -> bool:
    """True if `pid` is still a twinray node process (not a reused pid)."""
    if not sessions.pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return (
        b"runtime.real.node_process" in cmdline
        or b"twinray" in cmdline
        or b"runtime.cli" in cmdline
    )


def _all_records() -> list[sessions.NodeRecord]:
    root = sessions.session_root()
    records = []
    for session in sorted(root.glob("session_*")):
        if session.is_dir() and not session.is_symlink():
            records.extend(sessions.node_records(session))
    return records


def stop(args: argparse.Namespace) -> int:
    """`twinray stop`: SIGTERM every node process of this machine, SIGKILL after the grace period."""
    records = _all_records()
    live = [r for r in records if _is_node_process(r.pid)]
    for rec in records:
        if rec not in live:  # a crashed node left its record behind
            sessions.remove_record(Path(rec.session), rec.pid)
    sig = signal.SIGKILL if args.force else signal.SIGTERM
    for rec in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, sig)
    deadline = time.monotonic() + (0.0 if args.force else max(0.0, args.grace_period))
    waiting = list(live)
    while waiting and time.monotonic() < deadline:
        waiting = [r for r in waiting if sessions.pid_alive(r.pid)]
        if waiting:
            time.sleep(0.05)
    killed = 0
    for rec in waiting:
        if sessions.pid_alive(rec.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
            killed += 1
    for rec in live:
        end = time.monotonic() + 5.0
        while sessions.pid_alive(rec.pid) and time.monotonic() < end:
            time.sleep(0.02)
        sessions.remove_record(Path(rec.session), rec.pid)
        info = sessions.head_info(Path(rec.session))
        if rec.head and info is not None and info.get("pid") == rec.pid:
            (Path(rec.session) / "head.json").unlink(missing_ok=True)
    if not live:
        print("twinray stop: no twinray node process is running on this machine")
        return 0
    note = f" ({killed} did not stop within {args.grace_period:g} s: SIGKILLed)" if killed else ""
    print(f"twinray stop: stopped {len(live)} node process(es){note}")
    return 0


def store_usage(view: Any) -> dict[str, Any]:
    """Run on the head (the state API's `inspect`): each node's object store use, live actors."""
    return {
        "stores": [
            {
                "node": r.node,
                "used": r.store.used,
                "capacity": r.store.capacity,
                "objects": len(r.store),
            }
            for r in view.raylets
        ],
        "actors": sum(1 for rec in view.gcs.actor_table().values() if rec.state != "DEAD"),
    }


def _head_session(address: str) -> Path | None:
    """The session directory of the head at ``address`` on this machine (None: not here)."""
    session = sessions.latest_session()
    info = sessions.head_info(session) if session is not None else None
    if info is not None and str(info.get("address")) == address:
        return session
    return None


def _start_worker_node(args: argparse.Namespace) -> int:
    """`twinray start --address HOST:PORT`: a worker node process joining that head.

    On the head's machine the node shares the head's session (its token, logs and
    records, so `twinray stop` stops it too); elsewhere a fresh session, the token given
    by ``TWINRAY_AUTH_TOKEN`` or ``TWINRAY_AUTH_TOKEN_FILE``.
    """
    from runtime.net.auth import find_token

    session = _head_session(args.address)
    fresh = session is None
    if session is None:
        session = sessions.new_session()
    try:
        config = _config(args, session)
        if find_token(session) is None:
            raise CliError(
                f"no auth token for the head at {args.address}: set TWINRAY_AUTH_TOKEN or "
                "TWINRAY_AUTH_TOKEN_FILE (on the head's machine it is found by itself)"
            )
    except CliError:
        if fresh:
            with contextlib.suppress(OSError):
                for sub in ("logs", "nodes"):
                    (session / sub).rmdir()
                session.rmdir()
        raise
    if args.block:
        from runtime.real.node_process import serve

        def ready(address: str) -> None:
            print(f"twinray node (pid {os.getpid()}) joined the head at {address}", flush=True)

        return serve(config, ready=ready)
    from runtime.real.node_process import NodeStartError, launch

    try:
        proc, _ = launch(config)
    except NodeStartError as exc:
        print(f"twinray start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"twinray node started (pid {proc.pid}), joined the head at {args.address}")
    return 0


def status(args: argparse.Namespace) -> int:
    """`twinray status`: the head's nodes, resources and usage; 1 when no cluster runs."""
    from runtime.real.remote_driver import connect_driver

    session = sessions.latest_session()
    info = sessions.head_info(session) if session is not None else None
    if info is None or not sessions.pid_alive(int(info.get("pid", 0))):
        print("twinray status: no twinray cluster is running on this machine", file=sys.stderr)
        return EXIT_FAILED
    client = connect_driver(str(info["address"]), kind="client")
    try:
        runtime_info = client.runtime_info()
        usage = client.inspect(store_usage)
    finally:
        client.shutdown()
    assert session is not None
    records = sessions.node_records(session)
    total, available = runtime_info["total"], runtime_info["available"]
    print(f"cluster at {info['address']} (session {session})")
    table = runtime_info.get("nodes") or []
    alive = [row for row in table if row[1]]
    print(f"nodes: {len(alive) or len(records)}")
    for rec in records:
        role = "head" if rec.head else "node"
        where = f"at {rec.address}" if rec.head else f"joined {rec.address}"
        print(f"  {role} pid {rec.pid} {where}")
    for node, is_alive, resources, _store in table:
        state = "alive" if is_alive else "dead"
        shown = ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if k != "memory")
        print(f"  node {node} ({state}): {shown}")
    print("resources (used / total):")
    for name in sorted(total):
        used = total[name] - available.get(name, 0.0)
        if name in ("memory", "object_store_memory"):
            print(f"  {name}: {used / 2**30:.2f} / {total[name] / 2**30:.2f} GiB")
        else:
            print(f"  {name}: {used:g} / {total[name]:g}")
    for store in usage["stores"]:
        print(
            f"object store of node {store['node']}: {store['used'] / 2**20:.1f} / "
            f"{store['capacity'] / 2**20:.1f} MiB used, {store['objects']} objects"
        )
    print(f"actors alive: {usage['actors']}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the `start`, `stop` or `status` command; its exit code."""
    commands = {"start": start, "stop": stop, "status": status}
    try:
        return commands[args.command](args)
    except CliError as exc:
        print(f"twinray {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
