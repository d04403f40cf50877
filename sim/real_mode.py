"""Run a scenario's workload on real worker processes and report it in the sim's metrics schema.

Task bodies sleep (or spin, below a millisecond) for their drawn durations and return
outputs of their drawn sizes through the real object store; submission is windowed like
the simulated drivers'; times are wall-clock. `run_mode` is what `run-scenario --mode
real|both` calls.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.distributions import make_sampler
from sim.metrics import MetricsRecorder, write_json
from sim.report import comparison_rows, write_comparison, write_report
from sim.scenario import ChainWorkload, IndependentWorkload, Scenario, validate_scenario

SPIN_BELOW_S = 1e-3
"""Durations shorter than this are busy-waited; longer ones sleep, then spin the last 0.2 ms."""

STORE_CAP_BYTES = 1 << 30
"""Real object store size: the scenario's, capped at 1 GiB (this machine is not a cluster node)."""

WARMUP_TASKS = 8


class RealModeRefused(ValueError):
    """The scenario's cluster does not fit this machine (and scaling down was not asked for)."""


@dataclass(frozen=True)
class Fit:
    """How a scenario maps onto this machine: the scenario to run and what was changed."""

    scenario: Scenario
    cpus: int
    note: str = ""


def fit_to_machine(scenario: Scenario, scale_down: bool, cpus: int | None = None) -> Fit:
    """Check that `scenario` fits this machine, or map it onto 1 node x `cpus` when allowed.

    A cluster fits when it has one node and no more CPUs than the machine (`cpus`,
    default `os.cpu_count()`). Otherwise `RealModeRefused` explains why, unless
    `scale_down`, which returns a scenario with 1 node x `cpus` CPUs and one driver whose
    window is the sum of the drivers' windows (chains keep their count and length).
    """
    cpus = cpus or os.cpu_count() or 1
    cluster, workload = scenario.cluster, scenario.workload
    if not isinstance(workload, IndependentWorkload | ChainWorkload):
        raise RealModeRefused(
            f"scenario {scenario.name!r}: real mode runs the 'independent' and 'chain' "
            f"workloads, not {workload.kind!r} (use --mode sim)"
        )
    faults = getattr(scenario, "faults", None)
    if faults:
        raise RealModeRefused(
            f"scenario {scenario.name!r} injects {len(faults)} fault(s); real mode does not "
            "inject faults (use --mode sim, or --set faults=[] to run it without them)"
        )
    total = cluster.nodes * cluster.cpus_per_node
    if cluster.nodes == 1 and total <= cpus:
        return Fit(scenario, cluster.cpus_per_node)
    if not scale_down:
        raise RealModeRefused(
            f"scenario {scenario.name!r} needs {cluster.nodes} node(s) x "
            f"{cluster.cpus_per_node} CPUs = {total} CPUs, but real mode runs on this one "
            f"machine with {cpus} CPUs; pass --scale-down to run it on 1 node x {cpus} CPUs "
            "(the simulator can run the full cluster: --mode sim)"
        )
    raw = scenario.model_dump(mode="json")
    raw["cluster"].update(nodes=1, cpus_per_node=cpus)
    raw["workload"]["drivers"] = 1
    raw["workload"]["num_cpus"] = min(workload.num_cpus, float(cpus))
    if isinstance(workload, IndependentWorkload):
        raw["workload"]["window"] = workload.window * workload.drivers
    scaled = validate_scenario(raw, f"{scenario.name} (scaled down)")
    note = (
        f"scaled down from {cluster.nodes} node(s) x {cluster.cpus_per_node} CPUs and "
        f"{workload.drivers} driver(s) to 1 node x {cpus} CPUs and 1 driver"
    )
    return Fit(scaled, cpus, note)


# --- the task body (runs in worker processes) ----------------------------------------------


def work(duration_s: float, nbytes: int, *_args: Any) -> Any:
    """Occupy a CPU slot for `duration_s` and return `nbytes` of output (numpy above 100 KiB)."""
    deadline = time.perf_counter() + duration_s
    if duration_s >= SPIN_BELOW_S:
        time.sleep(duration_s - 2e-4)
    while time.perf_counter() < deadline:
        pass
    if nbytes > 100 * 1024:
        import numpy as np

        return np.zeros(nbytes, dtype=np.uint8)
    return bytes(nbytes)


# --- the driver ----------------------------------------------------------------------------


class _Driver:
    """Windowed submission of one scenario's tasks; records metrics as results arrive."""

    def __init__(self, ray: Any, scenario: Scenario) -> None:
        spec = scenario.workload
        rng = random.Random(f"{scenario.seed}:workload:0")  # the sim's stream of driver 0
        self.ray = ray
        self.duration_ms = make_sampler(spec.duration_ms, rng)
        self.output_bytes = make_sampler(spec.output_bytes, rng)
        self.remote = ray.remote(num_cpus=spec.num_cpus)(work)
        self.metrics = MetricsRecorder()
        self.submitted_at: dict[str, float] = {}
        self.pending: dict[Any, tuple[str, Any]] = {}
        self.t0 = 0.0
        self.last = 0.0
        self.count = 0

    def submit(self, tag: Any, *args: Any) -> Any:
        """Submit one task with freshly drawn duration and size (sim's draw order)."""
        duration = self.duration_ms() * 1e-3
        nbytes = int(self.output_bytes())
        name = f"t{self.count}"
        self.count += 1
        self.submitted_at[name] = time.monotonic()
        ref = self.remote.options(name=name).remote(duration, nbytes, *args)
        self.pending[ref] = (name, tag)
        return ref

    def next_done(self) -> list[tuple[Any, Any]]:
        """Block until at least one pending task finishes; return (ref, tag) of finished ones."""
        refs = list(self.pending)
        ready, rest = self.ray.wait(refs, num_returns=1)
        if rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        now = time.monotonic()
        done = []
        for ref in ready:
            name, tag = self.pending.pop(ref)
            try:
                self.ray.get(ref)  # read the output through the store
                self.metrics.task_done(now - self.submitted_at[name], now - self.t0)
            except Exception:
                self.metrics.task_failed(now - self.t0)
            done.append((ref, tag))
        self.last = now
        return done

    def run_independent(self, spec: IndependentWorkload) -> None:
        """`tasks` independent tasks, at most `window` in flight."""
        remaining = spec.tasks
        for _ in range(min(spec.window, remaining)):
            self.submit(None)
            remaining -= 1
        while self.pending:
            for _ in self.next_done():
                if remaining > 0:
                    self.submit(None)
                    remaining -= 1

    def run_chains(self, spec: ChainWorkload) -> None:
        """`chains` chains of `length` tasks, each consuming its predecessor; 2 submitted each."""
        submitted = [0] * spec.chains
        last: list[Any] = [None] * spec.chains

        def extend(chain: int) -> None:
            args = () if last[chain] is None else (last[chain],)
            last[chain] = self.submit(chain, *args)
            submitted[chain] += 1

        for chain in range(spec.chains):
            for _ in range(min(2, spec.length)):
                extend(chain)
        while self.pending:
            for _, chain in self.next_done():
                if submitted[chain] < spec.length:
                    extend(chain)

    def record_spans(self, spans: Any) -> None:
        """Execution start/end of each task from the node's timeline spans (queueing, busy time)."""
        for span in list(spans):
            name, start, end = span[0], span[4], span[5]
            submitted = self.submitted_at.get(name)
            if submitted is None:
                continue
            self.metrics.task_started(0, start - self.t0)
            self.metrics.task_finished(end - start, max(0.0, start - submitted), 0, end - self.t0)


def run_real(scenario: Scenario, cpus: int, trace: str | Path | None = None) -> dict[str, Any]:
    """Run the (fitting) scenario's workload on `cpus` real workers; return the metrics dict.

    Starts and shuts down the runtime; the metrics follow `MetricsRecorder.summary` with
    wall-clock seconds, plus `world`. Control messages are not counted in real mode (None).
    """
    import runtime as ray
    from runtime.api import _current_node

    if ray.is_initialized():
        raise RuntimeError("run_real starts its own runtime: call runtime.shutdown() first")
    store = min(int(scenario.cluster.object_store_mb * 2**20), STORE_CAP_BYTES)
    ray.init(num_cpus=cpus, object_store_memory=store)
    try:
        driver = _Driver(ray, scenario)
        warm = ray.remote(work)
        ray.get([warm.remote(0.0, 0) for _ in range(max(WARMUP_TASKS, 2 * cpus))])
        node = _current_node()
        spans = getattr(node, "spans", None)
        if spans is not None:
            spans.clear()
        driver.t0 = time.monotonic()
        workload = scenario.workload
        if isinstance(workload, IndependentWorkload):
            driver.run_independent(workload)
        elif isinstance(workload, ChainWorkload):
            driver.run_chains(workload)
        else:  # pragma: no cover - new workload kinds
            raise RealModeRefused(f"real mode does not support workload {workload.kind!r}")
        if spans is not None:
            driver.record_spans(spans)
        if trace is not None:
            Path(trace).parent.mkdir(parents=True, exist_ok=True)
            ray.timeline(str(trace))
    finally:
        ray.shutdown()
    metrics = driver.metrics.summary(max(0.0, driver.last - driver.t0), cpus)
    cpu = metrics["cpu_utilization"]
    metrics.update(
        messages=None,
        message_bytes=None,
        utilization={"CPU": cpu},
        node_utilization={"CPU": [cpu]},
        world="real",
    )
    return metrics


# --- the command-line modes ----------------------------------------------------------------


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def comparison_lines(sim: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """A plain-text side-by-side table with relative differences (sim vs real)."""
    lines = [f"{'metric':<22} {'sim':>14} {'real':>14} {'sim vs real':>12}"]
    for label, s, r, d in comparison_rows(sim, real):
        fs = "n/a" if s is None else f"{s:.6g}"
        fr = "n/a" if r is None else f"{r:.6g}"
        fd = "n/a" if d is None else f"{d * 100:+.1f} %"
        lines.append(f"{label:<22} {fs:>14} {fr:>14} {fd:>12}")
    return lines


def _sim(scenario: Scenario) -> dict[str, Any]:
    """Simulate `scenario` (a calibration profile's per-task overhead is in its costs)."""
    from sim.runner import run_scenario

    return run_scenario(scenario)


def run_mode(
    scenario: Scenario,
    mode: str,
    scale_down: bool = False,
    *,
    cpus: int | None = None,
    simulate: Callable[[Scenario], dict[str, Any]] = _sim,
) -> int:
    """`run-scenario --mode real|both`: run, print, write reports; return the exit code.

    real: `reports/<name>/real/{metrics.json,report.md,*.png}`. both: also the simulated
    run of the same (possibly scaled-down) scenario under `sim/`, and `comparison.md`
    plus `report.md` with the side-by-side table and sim-vs-real plots.
    """
    try:
        fit = fit_to_machine(scenario, scale_down, cpus)
    except RealModeRefused as exc:
        print(f"run-scenario: cannot run in real mode: {exc}", file=sys.stderr)
        return 2
    if fit.note:
        _print(f"note                {fit.note}")
    base = Path(scenario.output.report_dir) / scenario.name
    intro = " ".join(x for x in (scenario.description, fit.note and f"Real mode: {fit.note}.") if x)
    real = run_real(fit.scenario, fit.cpus, trace=base / "real" / "trace.json")
    write_json(base / "real" / "metrics.json", real)
    write_report(real, base / "real", f"{scenario.name} (real)", intro=intro)
    _print(f"real throughput     {real['throughput_tps']:,.0f} tasks/s over {real['tasks']} tasks")
    _print(f"real report         {base / 'real' / 'report.md'}")
    if mode == "real":
        return 0
    sim = simulate(fit.scenario)
    write_json(base / "sim" / "metrics.json", sim)
    write_report(sim, base / "sim", f"{scenario.name} (sim)", intro=intro)
    for line in comparison_lines(sim, real):
        _print(line)
    comparison = write_comparison(sim, real, base, scenario.name)
    text = comparison.read_text(encoding="utf-8")
    links = "\n\nPer-world reports: [sim](sim/report.md), [real](real/report.md).\n"
    (base / "report.md").write_text(
        text.rstrip() + ("\n\n" + intro if intro else "") + links, encoding="utf-8"
    )
    _print(f"comparison          {comparison}")
    return 0
