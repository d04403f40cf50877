"""A serving scenario on real Serve (twinray's or Ray's): the program's requests over HTTP.

`run_real_serving` deploys the scenario's deployments with ``runtime.serve`` (engine
"real") or Ray Serve ("ray"), through Serve's public API only (`serve_program`): replicas
whose method (``@serve.batch`` where the deployment batches) awaits the batch's model time,
fixed + n x per-item drawn as `sim.serving_program` says (the deployment's k-th batch takes
its k-th draw), as an accelerator call would; then an open-loop HTTP client sends the
program's requests at its offsets to its deployments and measures each one from its send
time to its answer; a 503 counts as rejected. Each answer carries what the replica saw
(batch size, id and cost draw, when the request entered and left the replica, the batch's
model time), from which `calibrate_serving` measures the model's fixed and per-item costs
(least squares over batches) and the proxy's overheads (send -> replica and replica ->
answer, medians). `run_serving_mode` is `run-scenario --mode real|both|ray` for a serving
scenario (real run, with both also the sim run, the calibrated sim run, a side-by-side
table `comparison.md` and `calibration.json`); `run_serving_compare` is its `--compare`.
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
from sim.scenario import Scenario, ServeDeploymentSpec, ServingWorkload
from sim.serving import latency_summary
from sim.serving_cost import ModelCost, batch_seconds
from sim.serving_program import ServingProgram, constant_costs

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


class CostLedger:
    """An actor handing out one deployment's batch costs in order, to all of its replicas.

    The program costs a deployment's k-th batch with its k-th draw (over all replicas, as
    the simulator does); replicas in separate processes take their draw from here. Used
    only where it matters: several replicas and a cost distribution that draws.
    """

    def __init__(self, costs: ModelCost) -> None:
        """Hand out the draws of `costs` (the deployment's stream)."""
        self.costs = costs

    def draw(self) -> tuple[int, float, float]:
        """The next batch's number (from 0), fixed and per-item model time (ms)."""
        return self.costs.draw()


def _deployment(serve: Any, dspec: ServeDeploymentSpec) -> Any:
    """A Serve deployment of `dspec` (model time awaited, as an accelerator's would be).

    Its constructor takes the deployment's batch costs (`sim.serving_program`): a
    `ModelCost` (the replica's own copy of the deployment's stream: it is the only replica,
    or the costs are constants) or the handle of the deployment's `CostLedger`. With
    ``max_batch_size`` above 1 the method is ``@serve.batch``; without, it runs at most
    ``max_concurrent_batches`` requests at once, as the simulated replica does. The class
    refers to no scenario model, so a replica imports no more than `sim.serving_cost`.
    """
    max_batch, timeout = dspec.max_batch_size, dspec.batch_wait_timeout_s
    concurrent = dspec.max_concurrent_batches

    class ServingModel:
        """A replica: batches requests and sleeps the model's drawn latency per batch."""

        def __init__(self, costs: Any) -> None:
            import os

            self.costs = costs
            self.local = isinstance(costs, ModelCost)
            self.tag = f"{os.getpid()}:{id(self):x}"
            self.batches = 0
            self.slots = asyncio.Semaphore(concurrent)

        async def _batch(self, n: int, warm: bool) -> dict[str, Any]:
            self.batches += 1
            batch_id = self.batches
            if warm:  # a warm-up batch draws nothing: the run's batches get the draws
                k, fixed, per_item = -1, 0.0, 0.0
            elif self.local:
                k, fixed, per_item = self.costs.draw()
            else:
                k, fixed, per_item = await self.costs.draw.remote()
            start = time.time()
            await asyncio.sleep(batch_seconds(fixed, per_item, n))
            model_s = time.time() - start
            return {
                "batch": n,
                "batch_id": batch_id,
                "replica": self.tag,
                "model_s": model_s,
                "cost": [k, fixed, per_item],
            }

        if max_batch > 1:

            @serve.batch(
                max_batch_size=max_batch,
                batch_wait_timeout_s=timeout,
                max_concurrent_batches=concurrent,
            )
            async def infer(self, warm: list[bool]) -> list[dict[str, Any]]:
                info = await self._batch(len(warm), any(warm))
                return [dict(info) for _ in warm]

        else:

            async def infer(self, warm: bool) -> dict[str, Any]:
                async with self.slots:
                    return await self._batch(1, warm)

        async def __call__(self, request: Any = None) -> dict[str, Any]:
            """One request (HTTP, or ``WARM_UP`` from a handle); what the replica saw."""
            entered = time.time()
            warm = request == WARM_UP or WARM_UP in getattr(request, "query_params", ())
            out = dict(await self.infer(warm))
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


def needs_ledger(spec: ServeDeploymentSpec) -> bool:
    """Whether the deployment's replicas take their batch costs from a `CostLedger`."""
    return spec.num_replicas > 1 and not constant_costs(spec)


Result = tuple[int, float, float, int, dict[str, Any] | None]
"""(deployment index, send time, answer time, HTTP status, answer body or None)."""


async def _load(url_of: list[str], offsets: list[float], pick: list[int]) -> list[Result]:
    """Open-loop HTTP load: request i at offsets[i] to url_of[pick[i]]; one record each."""
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    results: list[Result] = []
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

WARM_UP = "warmup"
"""Marks a warm-up request (the handle's argument, an HTTP query parameter): its batch
costs nothing and draws nothing, so the measured requests' batches get the program's draws."""


def _warm_up(handles: list[Any], urls: list[str]) -> None:
    """One request through each app's handle (it is deployed), then `WARMUP_REQUESTS` by HTTP."""
    import httpx

    for handle in handles:
        handle.remote(WARM_UP).result()
    with httpx.Client(timeout=120) as client:
        for url in urls:
            for _ in range(WARMUP_REQUESTS):
                client.get(url, params={WARM_UP: "1"}).raise_for_status()


def serve_program(ray: Any, serve: Any, scenario: Scenario) -> list[Result]:
    """Deploy the scenario's deployments on `serve` and send the program's requests by HTTP.

    `ray` (twinray's `runtime` or Ray) must be initialised; Serve is started here on a free
    port and shut down after. Ray's public API only, so it runs on both.
    """
    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    program = ServingProgram(spec, scenario.seed)
    requests = list(program.requests())
    offsets = [r.offset for r in requests]
    pick = [r.deployment for r in requests]
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        urls, handles = [], []
        ledger = ray.remote(CostLedger).options(num_cpus=0)
        for i, d in enumerate(spec.deployments):
            costs = program.model_cost(i)
            app = _deployment(serve, d).bind(ledger.remote(costs) if needs_ledger(d) else costs)
            handles.append(serve.run(app, name=d.name, route_prefix=f"/{d.name}"))
            urls.append(f"http://127.0.0.1:{port}/{d.name}")
        _warm_up(handles, urls)
        return asyncio.run(_load(urls, offsets, pick))
    finally:
        serve.shutdown()


def run_real_serving(
    scenario: Scenario, cpus: int | None = None, engine: str = "real"
) -> dict[str, Any]:
    """Run the serving scenario on twinray's Serve (`engine` "real") or Ray Serve ("ray").

    Starts the engine with `cpus` CPUs (default: what the replicas need, at least 2) and
    shuts it down after; returns the metrics dict (sim schema + `serving`, ``world`` the
    engine). Ray Serve needs Ray (`twin.ray_mode.RayUnavailable` says how to install it).
    """
    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    need = sum(d.num_cpus * d.num_replicas for d in spec.deployments)
    cpus = cpus or max(2, int(need + 0.999))
    ray, serve = _engine(engine)
    if engine == "ray":
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus)
    try:
        results = serve_program(ray, serve, scenario)
    finally:
        ray.shutdown()
    return real_metrics(spec, results, cpus, world=engine)


def _engine(engine: str) -> tuple[Any, Any]:
    """The (ray module, serve module) of an engine name."""
    if engine == "ray":
        from twin.ray_mode import import_ray

        ray = import_ray()
        from ray import serve

        return ray, serve
    if engine != "real":
        raise ValueError(f"expected engine 'real' or 'ray', got {engine!r}")
    import runtime
    from runtime import serve as runtime_serve

    return runtime, runtime_serve


def real_metrics(
    spec: ServingWorkload, results: list[Result], cpus: int, world: str = "real"
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
    metrics.update(messages=None, message_bytes=None, faults=[], warnings=[], world=world)
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


def _samples(results: list[Result]) -> dict[str, Any]:
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
    """A markdown table of the serving rows of each world, each compared with the last."""
    last, real = worlds[-1][0], worlds[-1][1]["serving"]
    head = "| metric | " + " | ".join(name for name, _ in worlds)
    head += " | " + " | ".join(f"{name} vs {last}" for name, _ in worlds[:-1]) + " |"
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
    """`run-scenario --mode real|both|ray` for a serving scenario; writes reports, returns 0.

    Under `output.report_dir/<name>/`: `real/` (``ray``: `ray/`, run on Ray Serve), and
    with both `sim/`, `calibrated/` (each a metrics.json, and with `plots` a report.md with
    its PNGs), `calibration.json` (the fitted costs and the calibrated p50's error) and
    `comparison.md` (the three side by side). Returns 2 when Ray is wanted but missing.
    """
    from sim.runner import run_scenario

    base = Path(scenario.output.report_dir) / scenario.name
    spec = scenario.workload
    assert isinstance(spec, ServingWorkload)
    engine = "ray" if mode == "ray" else "real"
    if engine == "ray":
        from twin.ray_mode import RayUnavailable, import_ray

        try:
            import_ray()
        except RayUnavailable as exc:
            print(f"run-scenario: cannot run in ray mode: {exc}", file=sys.stderr)
            return 2
    if any(d.num_gpus for d in spec.deployments):
        _print("note                GPU replicas run on CPU here (model time is awaited, not run)")
    real = run_real_serving(scenario, engine=engine)
    write_json(base / engine / "metrics.json", real)
    if plots:
        title = f"{scenario.name} ({engine})"
        write_report(real, base / engine, title, intro=scenario.description)
    s = real["serving"]
    _print(
        f"{engine:<20}{s['completed']} requests ({s['rejected']} rejected), "
        f"{s['throughput_rps']:.1f} req/s, p50 {s['latency_s']['p50']}"
    )
    if mode in ("real", "ray"):
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


def run_serving_compare(scenario: Scenario, engines: list[str], plots: bool = True) -> int:
    """`run-scenario --compare` for a serving scenario: each engine's run and one table.

    `engines` are two or three of sim, real (twinray's Serve), ray (Ray Serve), each run
    from the same `ServingProgram`; writes ``<engine>/metrics.json`` (and with `plots`
    its report) and ``comparison.md`` with each serving metric per engine and every
    engine's difference to the last one named. Returns 2 when Ray is wanted but missing.
    """
    from sim.runner import run_scenario

    if "ray" in engines:
        from twin.ray_mode import RayUnavailable, import_ray

        try:
            import_ray()
        except RayUnavailable as exc:
            print(f"run-scenario: cannot compare: {exc}", file=sys.stderr)
            return 2
    base = Path(scenario.output.report_dir) / scenario.name
    worlds = []
    for engine in engines:
        metrics = (
            run_scenario(scenario) if engine == "sim" else run_real_serving(scenario, engine=engine)
        )
        worlds.append((engine, metrics))
        write_json(base / engine / "metrics.json", metrics)
        if plots:
            title = f"{scenario.name} ({engine})"
            write_report(metrics, base / engine, title, intro=scenario.description)
    table = comparison(worlds)
    links = ", ".join(f"[{e}]({e}/report.md)" for e in engines) if plots else ""
    lines = [f"# {scenario.name}: {', '.join(engines)}", "", scenario.description, "", *table]
    if links:
        lines += ["", f"Per-engine reports: {links}."]
    path = base / "comparison.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in table:
        _print(line)
    _print(f"comparison          {path}")
    return 0


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
