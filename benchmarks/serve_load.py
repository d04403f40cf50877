"""Serve load benchmark: N closed-loop HTTP clients against twinray's Serve and Ray Serve 2.60.

Each system serves from its own subprocess (its driver, proxy and replicas); the clients run
here, in this process, as N asyncio tasks on httpx (each sends a request, waits for the
answer, sends the next). Two apps per system: ``unbatched`` (one request per call) and
``batched`` (``@serve.batch``). Reported: requests/s, p50 and p99 latency, and twinray/Ray
ratios. Not a test; ``--smoke`` (2 clients, 0.5 s) checks that everything runs.

    python3 -m benchmarks.serve_load                          # both systems, 16 clients, 5 s
    python3 -m benchmarks.serve_load --clients 32 --duration 10 --json out.json
    python3 -m benchmarks.serve_load --systems twinray --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

SYSTEMS = ("twinray", "ray")
MODES = ("unbatched", "batched")


# -- the server (in a subprocess) --------------------------------------------------------------


def _apps(serve: Any, replicas: int, max_batch: int, wait_s: float, work_ms: float) -> dict:
    """The two deployments, written once for both systems (the same code under either serve)."""

    def work(n: int) -> None:  # a model's cost: a fixed part per call, the same for a batch
        if work_ms > 0:
            end = time.perf_counter() + work_ms / 1000.0 * (1 + 0.1 * (n - 1))
            while time.perf_counter() < end:
                pass

    @serve.deployment(
        num_replicas=replicas, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0}
    )
    class Unbatched:
        async def __call__(self, request: Any) -> dict:
            x = (await request.json())["x"]
            work(1)
            return {"y": 2 * x}

    @serve.deployment(
        num_replicas=replicas, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0}
    )
    class Batched:
        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def predict(self, xs: list[int]) -> list[dict]:
            work(len(xs))
            return [{"y": 2 * x, "batch": len(xs)} for x in xs]

        async def __call__(self, request: Any) -> dict:
            return await self.predict((await request.json())["x"])

    return {"unbatched": Unbatched, "batched": Batched}


def serve_main(args: argparse.Namespace) -> int:
    """Start `args.system`'s Serve with both apps, print READY, serve until stdin closes."""
    if args.system == "ray":
        import ray
        from ray import serve

        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        import runtime as ray
        from runtime import serve

        ray.init(num_cpus=args.num_cpus)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    apps = _apps(serve, args.replicas, args.max_batch_size, args.batch_wait_s, args.work_ms)
    for mode, dep in apps.items():
        serve.run(dep.bind(), name=mode, route_prefix=f"/{mode}")
    print("READY", flush=True)
    sys.stdin.read()
    serve.shutdown()
    ray.shutdown()
    return 0


# -- the clients (here) ----------------------------------------------------------------------


class _Client:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: one connection, one request
    at a time (JSON POST, Content-Length bodies). httpx's AsyncClient is the tests' client but
    it tops out near 150 requests/s here and falls with more connections (the client, not the
    server, was measured); this one does over 1000/s on one core."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, payload: dict) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        self.writer.write(
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, chunked = 0, False
        for line in lines[1:]:
            low = line.lower()
            if low.startswith(b"content-length:"):
                length = int(line[15:])
            elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = await self.reader.readexactly(length)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _HttpxClient:
    """The same requests through one shared ``httpx.AsyncClient`` (``--client httpx``)."""

    def __init__(self, shared: Any, url: str) -> None:
        self.shared, self.url = shared, url

    async def post(self, payload: dict) -> tuple[int, Any]:
        r = await self.shared.post(self.url, json=payload)
        return r.status_code, (r.json() if r.status_code == 200 else r.text)

    async def close(self) -> None:
        pass


async def _load(
    port: int, path: str, clients: int, duration: float, warmup: float, kind: str
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    batches: list[int] = []
    shared = None
    if kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        shared = httpx.AsyncClient(timeout=60, limits=limits)
        conns: list[Any] = [
            _HttpxClient(shared, f"http://127.0.0.1:{port}{path}") for _ in range(clients)
        ]
    else:
        conns = [_Client("127.0.0.1", port, path) for _ in range(clients)]
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def one(i: int) -> None:
        nonlocal errors
        conn = conns[i]
        n = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            status, body = await conn.post({"x": i * 1_000_000 + n})
            t1 = time.perf_counter()
            n += 1
            if t0 < measure_from:
                continue
            if status != 200:
                errors += 1
                continue
            latencies.append(t1 - t0)
            if isinstance(body, dict) and "batch" in body:
                batches.append(body["batch"])

    try:
        await asyncio.gather(*[one(i) for i in range(clients)])
    finally:
        for conn in conns:
            await conn.close()
        if shared is not None:
            await shared.aclose()
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "rps": n / duration,
        "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "mean_batch": statistics.fmean(batches) if batches else None,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_system(system: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start `system`'s server subprocess, load each app, stop it; its results by mode."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "benchmarks.serve_load", "--serve", system,
        "--port", str(port), "--replicas", str(args.replicas),
        "--num-cpus", str(args.num_cpus), "--max-batch-size", str(args.max_batch_size),
        "--batch-wait-s", str(args.batch_wait_s), "--work-ms", str(args.work_ms),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and line.strip() != "READY":
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{system}'s server exited before it was ready")
        out = {}
        for mode in args.modes:
            out[mode] = asyncio.run(
                _load(port, f"/{mode}", args.clients, args.duration, args.warmup, args.client)
            )
        return out
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _print(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"serve load: {args.clients} closed-loop clients, {args.duration:g} s, "
        f"{args.replicas} replica(s), work {args.work_ms:g} ms, batch <= {args.max_batch_size} "
        f"(wait {args.batch_wait_s * 1000:g} ms), {args.client} client"
    )
    header = f"{'system':8} {'mode':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6}"
    print(header)
    for system, modes in results.items():
        for mode, r in modes.items():
            batch = f"{r['mean_batch']:.1f}" if r.get("mean_batch") else "-"
            print(
                f"{system:8} {mode:10} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                f"{r['errors']:6d} {batch:>6}"
            )
    if "twinray" in results and "ray" in results:
        for mode in args.modes:
            t, r = results["twinray"][mode], results["ray"][mode]
            print(
                f"{mode}: twinray/ray requests/s {t['rps'] / r['rps']:.2f}x, "
                f"p99 {t['p99_ms']:.1f} ms vs {r['p99_ms']:.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--systems", default="twinray,ray", help="comma-separated: twinray,ray")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: unbatched,batched")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per app")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load not measured")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--batch-wait-s", type=float, default=0.005)
    p.add_argument("--work-ms", type=float, default=0.0, help="model cost per call, ms")
    p.add_argument(
        "--client", choices=("raw", "httpx"), default="raw",
        help="raw: a minimal asyncio HTTP/1.1 client (default); httpx: httpx.AsyncClient",
    )  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="2 clients, 0.5 s: a correctness run")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--serve", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        args.system = args.serve
        return serve_main(args)
    if args.smoke:
        args.clients, args.duration, args.warmup = 2, 0.5, 0.2
    args.modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in args.modes if m not in MODES]
    systems = [s for s in args.systems.split(",") if s]
    bad += [s for s in systems if s not in SYSTEMS]
    if bad:
        p.error(f"unknown system or mode: {bad}")
    results = {}
    for system in systems:
        if system == "ray":
            try:
                import ray.serve  # noqa: F401
            except ImportError:
                print("ray: skipped (ray[serve]==2.60.0 is not installed: the peers extra)")
                continue
        results[system] = run_system(system, args)
    _print(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"params": {k: v for k, v in vars(args).items()}, "results": results}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
