"""A connected driver's `put` and `get` of a large array: the embedded node beside a driver connected to a local head.

Each mode runs in its own subprocess. `embedded`: `runtime.init()` in the process (the
arena is the driver's own). `connected`: a `runtime.cluster_utils.Cluster` head on this
machine and `runtime.init(address=...)`: the driver maps the head's arena (see
docs/design.md, "Values"), so its gets read in place and its puts write in place (reserve,
write, seal) instead of sending pickled bytes over the socket. Each round puts a fresh
array (the previous one freed), then gets it back; the table shows best and median MiB/s.

    python3 -m benchmarks.driver_put                 # 100 MiB, 5 rounds, both modes
    python3 -m benchmarks.driver_put --mib 16 --repeat 3 --modes connected
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("embedded", "connected")
ROOT = Path(__file__).resolve().parents[1]


def _measure(mode: str, mib: int, repeat: int) -> dict[str, list[float]]:
    """Run the rounds in this process; seconds per put and per get."""
    import numpy as np

    import runtime

    size = mib << 20
    store = 3 * size + (64 << 20)
    cluster = None
    if mode == "embedded":
        runtime.init(num_cpus=1, object_store_memory=store)
    else:
        from runtime.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            connect=True,
            head_node_args={"num_cpus": 1, "object_store_memory": store},
            shutdown_at_exit=False,
        )
    try:
        array = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
        puts, gets = [], []
        for i in range(repeat):
            array[0] = i  # a fresh value each round
            t0 = time.perf_counter()
            ref = runtime.put(array)
            t1 = time.perf_counter()
            back = runtime.get(ref)
            t2 = time.perf_counter()
            if back[0] != i or back.nbytes != size:
                raise AssertionError("the value read back differs")
            del back, ref
            puts.append(t1 - t0)
            gets.append(t2 - t1)
        return {"put": puts, "get": gets}
    finally:
        if cluster is not None:
            cluster.shutdown()
        else:
            runtime.shutdown()


def _row(mode: str, what: str, seconds: list[float], mib: int) -> str:
    rates = sorted(mib / s for s in seconds)
    return f"| {mode} | {what} {mib} MiB | {rates[-1]:,.0f} | {statistics.median(rates):,.0f} |"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (each mode in a subprocess) and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.driver_put")
    parser.add_argument("--mib", type=int, default=100, help="array size in MiB")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per mode")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mib <= 0 or args.repeat <= 0:
        parser.error("--mib and --repeat must be positive")
    if args.child:
        result = _measure(args.child, args.mib, args.repeat)
        Path(os.environ["DRIVER_PUT_OUT"]).write_text(json.dumps(result))
        return 0
    lines = ["| mode | operation | best MiB/s | median MiB/s |", "|---|---|---|---|"]
    for mode in args.modes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            env = dict(os.environ, DRIVER_PUT_OUT=str(out), TWINRAY_SESSION_ROOT=tmp)
            cmd = [sys.executable, "-m", "benchmarks.driver_put", "--child", mode]
            cmd += ["--mib", str(args.mib), "--repeat", str(args.repeat)]
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=600)
            result = json.loads(out.read_text())
        lines.append(_row(mode, "put", result["put"], args.mib))
        lines.append(_row(mode, "get", result["get"], args.mib))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
