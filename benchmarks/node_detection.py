"""How long a node's death takes to be noticed in twinray's multi-node real mode.

A `runtime.cluster_utils.Cluster` (head + one worker node, this process its driver); each
round adds a node and then either freezes it (SIGSTOP: its sockets stay open, only the
missing heartbeats tell) or kills it (SIGKILL: its connection closes at once), and times
from the signal to ``runtime.nodes()`` showing it dead (polled every 10 ms, so figures
include up to that and a driver round trip). A frozen node is resumed afterwards and must
stop by itself (fenced).

    python3 -m benchmarks.node_detection                      # 0.25 s period, 2.5 s timeout
    python3 -m benchmarks.node_detection --period 3 --timeout 15 --rounds 1   # Ray's defaults
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time


def _dead_after(node_id: str, since: float, limit: float) -> float:
    """Seconds from `since` until the driver sees `node_id` dead."""
    import runtime as ray

    while time.monotonic() - since < limit:
        if not {n["NodeID"]: n["Alive"] for n in ray.nodes()}[node_id]:
            return time.monotonic() - since
        time.sleep(0.01)
    raise TimeoutError(f"node {node_id} was not declared dead within {limit:g} s")


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print each detection time and the median per signal."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.node_detection")
    parser.add_argument("--period", type=float, default=0.25, help="heartbeat period (s)")
    parser.add_argument("--timeout", type=float, default=2.5, help="node timeout (s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per signal")
    args = parser.parse_args(argv)
    os.environ.setdefault("TWINRAY_SESSION_ROOT", tempfile.mkdtemp(prefix="twinray-detect-"))
    from runtime.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1},
        heartbeat_period_s=args.period,
        node_timeout_s=args.timeout,
    )
    times: dict[str, list[float]] = {"SIGSTOP": [], "SIGKILL": []}
    try:
        for index in range(2 * args.rounds):
            sig = signal.SIGSTOP if index % 2 == 0 else signal.SIGKILL
            node = cluster.add_node(num_cpus=1)
            node_id = f"{index + 1:056x}"  # node indexes are handed out in order
            time.sleep(2 * args.period)  # a few beats in
            start = time.monotonic()
            os.kill(node.pid, sig)
            took = _dead_after(node_id, start, args.timeout + 60)
            times[sig.name].append(took)
            print(f"{sig.name}: declared dead after {took:.3f} s", flush=True)
            if sig == signal.SIGSTOP:
                os.kill(node.pid, signal.SIGCONT)
                code = node.process.wait(timeout=60)
                print(f"  resumed: it stopped by itself (exit status {code})", flush=True)
            cluster.remove_node(node, allow_graceful=False)
    finally:
        cluster.shutdown()
    print(f"period {args.period:g} s, timeout {args.timeout:g} s:")
    for name, values in times.items():
        print(f"  {name}: median {statistics.median(values):.3f} s, "
              f"min {min(values):.3f}, max {max(values):.3f} ({len(values)} rounds)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
