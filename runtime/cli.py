"""The `twinray` command: `memory` (memory report of running drivers), `rllib`, and `start`/`stop`/`status` (a cluster's node processes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.real.memory import find_sessions, request_summary

EXIT_NO_SESSION = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twinray", description="Start, stop and inspect twinray clusters and drivers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    memory = commands.add_parser(
        "memory",
        help="object store, objects by owner and reference, and process memory of a driver",
        description="Ask each running twinray driver of this user (or the one given with "
        "--pid) for its memory report, like `ray memory`.",
    )
    memory.add_argument("--pid", type=int, help="only the driver with this process id")
    memory.add_argument("--stats-only", action="store_true", help="totals only, no line per object")
    from runtime.rllib import cli as rllib_cli

    rllib_cli.add_parser(commands)
    from runtime.real import cluster_cli

    cluster_cli.add_parsers(commands)
    return parser


def memory(pid: int | None, stats_only: bool) -> int:
    """Print the memory report of the running drivers; 1 when there is none."""
    sessions = [s for s in find_sessions() if pid is None or s[0] == pid]
    if not sessions:
        which = f"with pid {pid}" if pid is not None else "on this machine"
        print(
            f"twinray memory: no running twinray session {which} (a driver answers while "
            "it is between runtime.init() and runtime.shutdown())",
            file=sys.stderr,
        )
        return EXIT_NO_SESSION
    for driver_pid, name in sessions:
        try:
            text = request_summary(name, stats_only)
        except OSError as exc:
            print(f"twinray memory: driver {driver_pid} did not answer: {exc}", file=sys.stderr)
            continue
        if len(sessions) > 1:
            print(f"# driver pid {driver_pid}")
        print(text, end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `twinray` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "memory":
        return memory(args.pid, args.stats_only)
    if args.command == "rllib":
        from runtime.rllib import cli as rllib_cli

        return rllib_cli.main(args)
    if args.command in ("start", "stop", "status"):
        from runtime.real import cluster_cli

        return cluster_cli.run(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
