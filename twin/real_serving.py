"""A serving scenario on real Serve: HTTP load with the sim's arrivals, metrics, calibration.

`run_real_serving` deploys the scenario's deployments with ``runtime.serve`` (replicas whose
``@serve.batch`` method awaits the drawn model time: fixed + n x per-item, as an accelerator
call does), then an open-loop HTTP client sends ``requests`` requests at exactly the arrival
times the simulator uses (same seed, same generator) and measures each one from its send
time to its answer; a 503 counts as rejected. Each answer carries what the replica saw
(batch size and id, when the request entered and left the replica, the batch's model time),
from which `calibrate_serving` measures the model's fixed and per-item costs (least squares
over batches) and the proxy's overheads (send -> replica and replica -> answer, medians).
`run_serving_mode` is `run-scenario --mode real|both` for a serving scenario: real run, sim
run, calibrated sim run, side-by-side table (`comparison.md`) and `calibration.json`.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sim.metrics import LogHistogram, MetricsRecorder, round_sig, write_json
from sim.report import write_report
from sim.scenario import Scenario, ServingWorkload
from sim.serving import arrival_offsets, latency_summary

COMPARED: tuple[tuple[str, str], ...] = (
    ("throughput_rps", "throughput (req/s)"),
    ("latency_s.p50", "latency p50 (s)"),
    ("latency_s.p95", "latency p95 (s)"),
    ("latency_s.p99", "latency p99 (s)"),
    ("rejected", "rejected (503)"),
    ("mean_batch_size", "mean batch size"),
)
"""(path in the serving section, label) of the rows put side by side."""

GOAL = 0.20
"""The calibrated simulation's p50 should be within this of the real run's."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deployment(spec: Any, seed: int) -> Any:
    """A Serve deployment for one `ServeDeploymentSpec` (model time awaited, not burned)."""
    from runtime import serve

    dspec = spec

    class ServingModel:
        """A replica: batches requests and sleeps the model's drawn latency per batch."""

        def __init__(self) -> None:
            import os
            import random

            from sim.distributions import make_sampler

            rng = random.Random(f"{seed}:{dspec.name}:{os.getpid()}:{id(self)}")
            self.fixed_ms = make_sampler(dspec.latency_fixed_ms, rng)
            self.per_item_ms = make_sampler(dspec.latency_per_item_ms, rng)
            self.tag = f"{os.getpid()}:{id(self):x}"
            self.batches = 0

        @serve.batch(
            max_batch_size=dspec.max_batch_size,
            batch_wait_timeout_s=dspec.batch_wait_timeout_s,
            max_concurrent_batches=dspec.max_concurrent_batches,
        )
        async def infer(self, entered: list[float]) -> list[dict[str, Any]]:
            n = len(entered)
            self.batches += 1
            batch_id = self.batches
            start = time.time()
            await asyncio.sleep((self.fixed_ms() + n * self.per_item_ms()) * 1e-3)
            model_s = time.time() - start
            return [
                {"batch": n, "batch_id": batch_id, "replica": self.tag, "model_s": model_s}
                for _ in entered
            ]

        async def __call__(self, request: Any) -> dict[str, Any]:
            entered = time.time()
            out = dict(await self.infer(entered))
            out["entered"] = entered
            out["left"] = time.time()
            return out

    options: dict[str, Any] = {"num_cpus": dspec.num_cpus}
    return serve.deployment(
        ServingModel,
        name=dspec.name,
        num_replicas=dspec.num_replicas,
        max_ongoing_requests=dspec.max_ongoing_requests,
        max_queued_requests=dspec.max_queued_requests,
        ray_actor_options=options,
    )


async def _load(
    url_of: list[str], offsets: list[float], pick: list[int]
) -> list[tuple[int, float, float, int, dict[str, Any] | None]]:
    """Open-loop HTTP load: request i at offsets[i] to url_of[pick[i]]; one record each."""
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    results: list[tuple[int, float, float, int, dict[str, Any] | None]] = []
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        loop = asyncio.get_running_loop()

        async def one(i: int, send_at: float) -> None:
            r = await client.get(url_of[pick[i]])
            got = time.time()
            body = r.json() if r.status_code == 200 else None
            results.append((pick[i], send_at, got, r.status_code, body))

        t0_loop = loop.time() + 0.05
        t0_wall = time.time() + (t0_loop - loop.time())
        tasks = []
        for i, offset in enumerate(offsets):
            delay = t0_loop + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, t0_wall + offset)))
        await asyncio.gather(*tasks)
    return results


WARMUP_REQUESTS = 10
"""Requests sent one at a time to each deployment before the measured load (connections,
first-request imports in the proxy and replicas)."""


def _warm_up(urls: list[str]) -> None:
    import httpx

    with httpx.Client(timeout=120) as client:
        for url in urls:
            for _ in range(WARMUP_REQUESTS):
                client.get(url).raise_for_status()


def run_real_serving(scenario: Scenario, cpus: int | None = None) -> dict[str, Any]:
    """Run the serving scenario on real Serve; the metrics dict (sim schema + `serving`)."""
    import random

    import runtime
    from runtime import serve

    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    need = sum(d.num_cpus * d.num_replicas for d in spec.deployments)
    cpus = cpus or max(2, int(need + 0.999))
    rng = random.Random(f"{scenario.seed}:workload:0")  # the sim driver's arrival stream
    offsets = list(arrival_offsets(spec, rng))
    if len(spec.deployments) == 1:
        pick = [0] * len(offsets)
    else:  # the sim driver's stream for the deployment of each request
        weights, picker = (
            [d.weight for d in spec.deployments],
            random.Random(f"{scenario.seed}:serve:pick"),
        )
        pick = [picker.choices(range(len(weights)), weights)[0] for _ in offsets]
    port = _free_port()
    runtime.init(num_cpus=cpus)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        urls = []
        for d in spec.deployments:
            serve.run(_deployment(d, scenario.seed).bind(), name=d.name, route_prefix=f"/{d.name}")
            urls.append(f"http://127.0.0.1:{port}/{d.name}")
        _warm_up(urls)
        results = asyncio.run(_load(urls, offsets, pick))
    finally:
        serve.shutdown()
        runtime.shutdown()
    return real_metrics(spec, results, cpus)


def real_metrics(
    spec: ServingWorkload,
    results: list[tuple[int, float, float, int, dict[str, Any] | None]],
    cpus: int,
) -> dict[str, Any]:
    """The real run's metrics in the simulator's schema, with its `serving` section."""
    recorder = MetricsRecorder()
    first = min(r[1] for r in results)
    last = max(r[2] for r in results if r[3] == 200) if results else first
    per_dep: list[dict[str, Any]] = [
        {"latency": LogHistogram(), "completed": 0, "rejected": 0, "failed": 0, "batches": {}}
        for _ in spec.deployments
    ]
    latency = LogHistogram()
    for dep_i, sent, got, status, body in sorted(results, key=lambda r: r[2]):
        dep = per_dep[dep_i]
        if status == 200 and body is not None:
            lat = got - sent
            latency.add(lat)
            dep["latency"].add(lat)
            dep["completed"] += 1
            recorder.task_done(lat, got - first)
            key = (body["replica"], body["batch_id"])
            dep["batches"][key] = (body["batch"], body["model_s"])
        elif status == 503:
            dep["rejected"] += 1
        else:
            dep["failed"] += 1
            recorder.task_failed(got - first)
    span = max(0.0, last - first)
    hist: dict[int, int] = {}
    deployments = {}
    for d, dep in zip(spec.deployments, per_dep, strict=True):
        sizes: dict[int, int] = {}
        busy: dict[str, float] = {}
        for (replica, _), (n, model_s) in dep["batches"].items():
            sizes[n] = sizes.get(n, 0) + 1
            hist[n] = hist.get(n, 0) + 1
            busy[replica] = busy.get(replica, 0.0) + model_s
        slots = span * d.max_concurrent_batches
        util = [round_sig(b / slots) if slots > 0 else 0.0 for b in busy.values()]
        batches = sum(sizes.values())
        items = sum(n * c for n, c in sizes.items())
        deployments[d.name] = {
            "replicas": d.num_replicas,
            "completed": dep["completed"],
            "rejected": dep["rejected"],
            "failed": dep["failed"],
            "latency_s": latency_summary(dep["latency"]),
            "batches": batches,
            "mean_batch_size": round_sig(items / batches) if batches else 0.0,
            "batch_size_histogram": {str(n): sizes[n] for n in sorted(sizes)},
            "replica_utilization": util,
            "mean_replica_utilization": round_sig(sum(util) / len(util)) if util else 0.0,
        }
    completed = sum(dep["completed"] for dep in per_dep)
    metrics = recorder.summary(span, cpus)
    metrics.update(messages=None, message_bytes=None, faults=[], warnings=[], world="real")
    metrics["serving"] = {
        "requests": spec.requests,
        "completed": completed,
        "rejected": sum(dep["rejected"] for dep in per_dep),
        "failed": sum(dep["failed"] for dep in per_dep),
        "duration_s": round_sig(span),
        "throughput_rps": round_sig(completed / span) if span > 0 else 0.0,
        "latency_s": latency_summary(latency),
        "batch_size_histogram": {str(n): hist[n] for n in sorted(hist)},
        "deployments": deployments,
    }
    metrics["serving_samples"] = _samples(results)
    return metrics


def _samples(
    results: list[tuple[int, float, float, int, dict[str, Any] | None]],
) -> dict[str, Any]:
    """What calibration needs: (batch size, model s) per batch, the proxy's two legs."""
    batches: dict[tuple[str, int], tuple[int, float]] = {}
    inbound, outbound = [], []
    for _, sent, got, status, body in results:
        if status != 200 or body is None:
            continue
        batches[(body["replica"], body["batch_id"])] = (body["batch"], body["model_s"])
        inbound.append(body["entered"] - sent)
        outbound.append(got - body["left"])
    return {"batches": sorted(batches.values()), "inbound_s": inbound, "outbound_s": outbound}


def calibrate_serving(real: dict[str, Any]) -> dict[str, float]:
    """Model fixed/per-item costs (ms, least squares over batches) and proxy overheads (ms)."""
    samples = real["serving_samples"]
    pts = samples["batches"]
    if not pts:
        raise ValueError("calibration needs at least one completed batch in the real run")
    xs = [float(n) for n, _ in pts]
    ys = [s * 1e3 for _, s in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    if var == 0.0 or slope < 0:
        slope = 0.0
        fixed = my - mx * slope
    else:
        fixed = my - slope * mx
    return {
        "latency_fixed_ms": round(max(0.0, fixed), 4),
        "latency_per_item_ms": round(max(0.0, slope), 4),
        "proxy_overhead_ms": round(max(0.0, statistics.median(samples["inbound_s"]) * 1e3), 4),
        "response_overhead_ms": round(max(0.0, statistics.median(samples["outbound_s"]) * 1e3), 4),
    }


def calibrated(scenario: Scenario, fit: dict[str, float]) -> Scenario:
    """`scenario` with the measured costs: every deployment's model, the proxy's overheads."""
    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    deployments = [
        d.model_copy(
            update={
                "latency_fixed_ms": _const(fit["latency_fixed_ms"]),
                "latency_per_item_ms": _const(fit["latency_per_item_ms"]),
            }
        )
        for d in spec.deployments
    ]
    workload = spec.model_copy(
        update={
            "deployments": deployments,
            "proxy_overhead_ms": _const(fit["proxy_overhead_ms"]),
            "response_overhead_ms": _const(fit["response_overhead_ms"]),
        }
    )
    return scenario.model_copy(update={"workload": workload})


def _const(value: float) -> Any:
    from sim.scenario import ConstantDist

    return ConstantDist(dist="constant", value=value)


def _at(section: dict[str, Any], path: str) -> float | None:
    if path == "mean_batch_size":
        hist = section.get("batch_size_histogram") or {}
        batches = sum(hist.values())
        return sum(int(k) * v for k, v in hist.items()) / batches if batches else None
    value: Any = section
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def comparison(worlds: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """A markdown table of the serving rows of each world, the last one being real."""
    real = worlds[-1][1]["serving"]
    head = "| metric | " + " | ".join(name for name, _ in worlds)
    head += " | " + " | ".join(f"{name} vs real" for name, _ in worlds[:-1]) + " |"
    lines = [head, "|---" * (2 * len(worlds)) + "|"]
    for path, label in COMPARED:
        vals = [_at(m["serving"], path) for _, m in worlds]
        r = _at(real, path)
        cells = ["n/a" if v is None else f"{v:.4g}" for v in vals]
        diffs = ["n/a" if v is None or not r else f"{(v - r) / r * 100:+.1f} %" for v in vals[:-1]]
        lines.append(f"| {label} | " + " | ".join(cells + diffs) + " |")
    return lines


def p50_error(sim: dict[str, Any], real: dict[str, Any]) -> float | None:
    """(sim p50 - real p50) / real p50, None without data."""
    s, r = _at(sim["serving"], "latency_s.p50"), _at(real["serving"], "latency_s.p50")
    return None if s is None or not r else (s - r) / r


def run_serving_mode(scenario: Scenario, mode: str, plots: bool = True) -> int:
    """`run-scenario --mode real|both` for a serving scenario; writes reports, returns 0.

    Under `output.report_dir/<name>/`: `real/`, and with both `sim/`, `calibrated/` (each a
    metrics.json, and with `plots` a report.md with its PNGs), `calibration.json` (the fitted
    costs and the calibrated p50's error) and `comparison.md` (the three side by side).
    """
    from sim.runner import run_scenario

    base = Path(scenario.output.report_dir) / scenario.name
    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    if any(d.num_gpus for d in spec.deployments):
        _print("note                GPU replicas run on CPU here (model time is awaited, not run)")
    real = run_real_serving(scenario)
    write_json(base / "real" / "metrics.json", real)
    if plots:
        write_report(real, base / "real", f"{scenario.name} (real)", intro=scenario.description)
    s = real["serving"]
    _print(
        f"real                {s['completed']} requests ({s['rejected']} rejected), "
        f"{s['throughput_rps']:.1f} req/s, p50 {s['latency_s']['p50']}"
    )
    if mode == "real":
        return 0
    sim = run_scenario(scenario)
    fit = calibrate_serving(real)
    tuned = run_scenario(calibrated(scenario, fit))
    for name, metrics in (("sim", sim), ("calibrated", tuned)):
        write_json(base / name / "metrics.json", metrics)
        if plots:
            title = f"{scenario.name} ({name})"
            write_report(metrics, base / name, title, intro=scenario.description)
    err = p50_error(tuned, real)
    result = {
        "fit": fit,
        "p50_error": err,
        "goal": GOAL,
        "within_goal": err is not None and abs(err) <= GOAL,
    }
    write_json(base / "calibration.json", result)
    table = comparison([("sim", sim), ("calibrated", tuned), ("real", real)])
    fitted = ", ".join(f"{k} {v:g}" for k, v in fit.items())
    verdict = (
        "n/a"
        if err is None
        else f"{err * 100:+.1f} % ({'within' if abs(err) <= GOAL else 'outside'} the {GOAL:.0%} goal)"
    )
    lines = [
        f"# {scenario.name}: simulated vs real Serve",
        "",
        scenario.description,
        "",
        *table,
        "",
        f"Calibrated from the real run: {fitted}.",
        "",
        f"Calibrated p50 vs real: {verdict}.",
        "",
        "Per-world reports: [sim](sim/report.md), [calibrated](calibrated/report.md), "
        "[real](real/report.md).",
    ]
    path = base / "comparison.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in table:
        _print(line)
    _print(f"calibration         {fitted}")
    _print(f"calibrated p50      {verdict}")
    _print(f"comparison          {path}")
    return 0


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
