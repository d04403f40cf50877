"""Node-to-node object transfer on loopback: twinray's `runtime.net.bulk` beside Ray's multi-node mode.

Two rows, each measured between two processes that stand for two nodes (``twinray``: the
transfer layer alone), and the same two through the whole stack (``twinray-cluster``: the
Ray program below, unchanged but for ``import runtime as ray``, on a real two-node
`runtime.cluster_utils.Cluster`):

- **100 MiB get**: one array moved from node A to node B. twinray: node A is a child process
  whose `ObjectServer` serves the array out of its own arena (`runtime/real/arena.py`);
  node B (this process) pulls it into its own arena with `BulkClient.pull`. Ray: a
  `ray.cluster_utils.Cluster` of two nodes; the driver (on the head, node A) puts the array,
  a task pinned to node B takes it as its argument (Ray pulls it node to node before the task
  runs) and returns its size; timed is `get` of that task. A fresh object every round, so no
  round finds a copy already on B.
- **many small objects**: N objects of S bytes made on node A, all fetched by node B.
  twinray: `BulkClient.pull_many` (pipelined over 4 connections). Ray: an actor on node A
  `ray.put`s them (plasma objects on A), a task on node B `ray.get`s the list of refs.

Ray's figures include one task's scheduling (about a millisecond, small beside the
transfers); twinray's are the transfer alone (multi-node tasks are the cluster layer's). Each
system runs in its own subprocess; the table shows the best and median of the rounds and
twinray/Ray ratios (>1: twinray faster).

    python3 -m benchmarks.node_transfer                      # twinray and, when installed, Ray
    python3 -m benchmarks.node_transfer --systems twinray --smoke
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
from typing import Any

SYSTEMS = ("twinray", "twinray-cluster", "ray")
ROOT = Path(__file__).resolve().parents[1]


def _fill(oid: int, size: int) -> bytes:
    """Bytes for object `oid`: a random block repeated (cheap to make, not compressible
    within a block)."""
    block = os.urandom(min(size, 1 << 20)) if size else b""
    reps = -(-size // max(1, len(block))) if size else 0
    return (block * reps)[:size]


# -- twinray ---------------------------------------------------------------------------------


def _serve(argv: list[str]) -> None:
    """Node A of the twinray run: serve one big object (id 1) and N small ones (2..N+1)."""
    from runtime.net.bulk import ObjectServer, arena_source
    from runtime.real.arena import Arena

    big, count, small = (int(a) for a in argv)
    arena = Arena(big + count * (small + 64) + (4 << 20), prefault_bytes=big + (4 << 20))
    where: dict[int, tuple[int, int]] = {}
    for oid, size in [(1, big)] + [(2 + k, small) for k in range(count)]:
        off = arena.allocate(size)
        arena.write(off, [_fill(oid, size)])
        where[oid] = (off, size)

    def lookup(oid: int):
        off_size = where.get(oid)
        return None if off_size is None else arena_source(arena, *off_size)

    server = ObjectServer(lookup, os.environ["TWINRAY_AUTH_TOKEN"])
    print(server.address, flush=True)
    sys.stdin.read()
    server.close()
    arena.close()


def _measure_twinray(big: int, count: int, small: int, rounds: int) -> dict[str, Any]:
    from runtime.net.auth import Hello, new_token
    from runtime.net.bulk import BulkClient, arena_destination
    from runtime.real.arena import Arena

    token = new_token()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.node_transfer",
            "--serve",
            str(big),
            str(count),
            str(small),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TWINRAY_AUTH_TOKEN": token},
    )
    assert proc.stdout is not None and proc.stdin is not None
    address = proc.stdout.readline().strip()
    if not address:
        raise RuntimeError("node A did not start")
    arena = Arena(big + count * (small + 64) + (4 << 20), prefault_bytes=big + (4 << 20))
    into = arena_destination(arena)
    big_s: list[float] = []
    small_s: list[float] = []
    try:
        with BulkClient(token, Hello("node", "B")) as client:
            client.pull(address, 2, into).release()  # warm up: connect
            ids = list(range(2, 2 + count))
            for _ in range(rounds):
                t0 = time.perf_counter()
                dest = client.pull(address, 1, into)
                big_s.append(time.perf_counter() - t0)
                if len(dest.view) != big:
                    raise RuntimeError("short transfer")
                dest.release()
                t0 = time.perf_counter()
                dests = client.pull_many(address, ids, into, parallel=4)
                small_s.append(time.perf_counter() - t0)
                for d in dests:
                    d.release()
    finally:
        proc.stdin.close()
        proc.wait(60)
        arena.close()
    return {"big_s": big_s, "small_s": small_s}


# -- Ray -------------------------------------------------------------------------------------


def _two_node_program(ray: Any, big: int, count: int, small: int, rounds: int) -> dict[str, Any]:
    """The measured program, for `ray` (Ray, or twinray as ``import runtime as ray``) already
    connected to a two-node cluster whose nodes carry the custom resources A and B."""
    import numpy as np

    @ray.remote(resources={"B": 0.01})
    def size_of(arr: Any) -> int:
        return int(arr.nbytes)

    @ray.remote(resources={"B": 0.01})
    def get_all(refs: list) -> int:
        return sum(len(v) for v in ray.get(refs))

    @ray.remote(resources={"A": 0.01})
    class Maker:
        def make(self, n: int, size: int, seed: int) -> list:
            return [ray.put(bytes([(seed + k) % 256]) * size) for k in range(n)]

    maker = Maker.remote()
    ray.get(size_of.remote(np.zeros(16, np.uint8)))  # warm up both nodes' workers
    ray.get(get_all.remote(ray.get(maker.make.remote(2, small, 0))))
    big_s: list[float] = []
    small_s: list[float] = []
    for r in range(rounds):
        arr = np.frombuffer(_fill(r, big), np.uint8)
        ref = ray.put(arr)  # on node A (the driver's node), fresh each round
        t0 = time.perf_counter()
        n = ray.get(size_of.remote(ref))
        big_s.append(time.perf_counter() - t0)
        if n != big:
            raise RuntimeError("short transfer")
        del ref
        refs = ray.get(maker.make.remote(count, small, r * count))
        t0 = time.perf_counter()
        total = ray.get(get_all.remote(refs))
        small_s.append(time.perf_counter() - t0)
        if total != count * small:
            raise RuntimeError("short shuffle")
        del refs
    return {"big_s": big_s, "small_s": small_s}


def _measure_ray(big: int, count: int, small: int, rounds: int) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    store = max(big * 4, 200 << 20)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"A": 1},
            "object_store_memory": store,
            "include_dashboard": False,
        },
    )
    cluster.add_node(num_cpus=1, resources={"B": 1}, object_store_memory=store)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        return _two_node_program(ray, big, count, small, rounds)
    finally:
        ray.shutdown()
        cluster.shutdown()


# -- twinray through the full stack (a real Cluster, the same program as Ray's) ---------------


def _measure_twinray_cluster(big: int, count: int, small: int, rounds: int) -> dict[str, Any]:
    """The Ray program above, run on `runtime.cluster_utils.Cluster` with `import runtime`."""
    import runtime as ray
    from runtime.cluster_utils import Cluster

    store = max(big * 4, 200 << 20)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"A": 1}, "object_store_memory": store},
    )
    try:
        cluster.add_node(num_cpus=1, resources={"B": 1}, object_store_memory=store)
        ray.init(address=cluster.address, log_to_driver=False)
        return _two_node_program(ray, big, count, small, rounds)
    finally:
        ray.shutdown()
        cluster.shutdown()


MEASURE = {
    "twinray": _measure_twinray,
    "twinray-cluster": _measure_twinray_cluster,
    "ray": _measure_ray,
}


# -- the parent ------------------------------------------------------------------------------


def _run_system(system: str, params: dict[str, int], timeout: float) -> dict[str, Any]:
    """Run one system's measurement in its own subprocess; return its samples or an error."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.node_transfer", "--system", system,
               "--size-mib-bytes", str(params["big"]), "--count", str(params["count"]),
               "--small-bytes", str(params["small"]), "--repeat", str(params["rounds"]),
               "--result", str(out)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": " | ".join(tail) or f"exit status {proc.returncode}"}
        return json.loads(out.read_text())


def _figures(samples: dict[str, Any], params: dict[str, int]) -> dict[str, float]:
    big, count, small = params["big"], params["count"], params["small"]
    b, s = samples["big_s"], samples["small_s"]
    return {
        "big_gbps_best": big / min(b) / 1e9,
        "big_gbps_median": big / statistics.median(b) / 1e9,
        "small_objs_per_s_best": count / min(s),
        "small_objs_per_s_median": count / statistics.median(s),
        "small_mbps_median": count * small / statistics.median(s) / 1e6,
    }


def _installed(system: str) -> bool:
    if system.startswith("twinray"):
        return True
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _table(results: dict[str, dict[str, Any]], params: dict[str, int]) -> str:
    big_mib = params["big"] / (1 << 20)
    rows = [
        ("big_gbps_best", f"{big_mib:g} MiB get, GB/s (best)"),
        ("big_gbps_median", f"{big_mib:g} MiB get, GB/s (median)"),
        ("small_objs_per_s_best", f"{params['count']} x {params['small']} B, objects/s (best)"),
        ("small_objs_per_s_median", f"{params['count']} x {params['small']} B, objects/s (median)"),
        ("small_mbps_median", f"{params['count']} x {params['small']} B, MB/s (median)"),
    ]
    systems = list(results)
    mine = [s for s in systems if s.startswith("twinray")]
    lines = [
        f"{'row':<42}"
        + "".join(f"{s:>16}" for s in systems)
        + ("".join(f"{s + '/ray':>22}" for s in mine) if "ray" in results else "")
    ]
    for key, label in rows:
        cells, values = [], {}
        for s in systems:
            r = results[s]
            if "error" in r:
                cells.append(f"{'error':>16}")
                continue
            values[s] = r["figures"][key]
            cells.append(f"{values[s]:>16.3f}" if values[s] < 100 else f"{values[s]:>16.0f}")
        ratio = ""
        if values.get("ray", 0) > 0:
            ratio = "".join(
                f"{values[m] / values['ray']:>21.2f}x" if m in values else f"{'':>22}" for m in mine
            )
        lines.append(f"{label:<42}" + "".join(cells) + ratio)
    for s in systems:
        if "error" in results[s]:
            lines.append(f"{s}: error: {results[s]['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure the systems, print the table, optionally write JSON."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        _serve(argv[1:])
        return 0
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.node_transfer", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--systems",
        default=None,
        help="comma-separated: twinray,twinray-cluster,ray (default: the installed ones)",
    )
    p.add_argument(
        "--size-mib", type=float, default=100.0, help="the big object, MiB (default 100)"
    )
    p.add_argument("--count", type=int, default=2000, help="number of small objects (default 2000)")
    p.add_argument(
        "--small-bytes", type=int, default=10_000, help="size of each small object (default 10000)"
    )
    p.add_argument(
        "--repeat", type=int, default=5, help="rounds; figures are best and median (default 5)"
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that it runs, not how fast"
    )
    p.add_argument(
        "--json", default=None, metavar="PATH", help="write parameters, samples and figures"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="per-system limit in seconds")
    p.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--size-mib-bytes", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.system:  # one system, in this (child) process
        samples = MEASURE[args.system](
            args.size_mib_bytes, args.count, args.small_bytes, args.repeat
        )
        Path(args.result).write_text(json.dumps(samples))
        return 0
    if args.smoke:
        args.size_mib = min(args.size_mib, 4.0)
        args.count, args.repeat = min(args.count, 200), min(args.repeat, 2)
    for name in ("count", "small_bytes", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.size_mib <= 0:
        p.error("--size-mib must be > 0")
    systems = (
        [s for s in SYSTEMS if _installed(s)] if args.systems is None else args.systems.split(",")
    )
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {list(SYSTEMS)}")
    params = {"big": int(args.size_mib * (1 << 20)), "count": args.count, "small": args.small_bytes,
              "rounds": args.repeat}  # fmt: skip
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    for s in systems:
        if not _installed(s):
            results[s] = {"error": "not installed"}
            continue
        r = _run_system(s, params, args.timeout)
        if "error" not in r:
            r = {"samples": r, "figures": _figures(r, params)}
        results[s] = r
    print(_table(results, params))
    print(f"load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"params": params, "systems": results}, indent=2))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
