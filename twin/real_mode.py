"""Run a scenario's workload on real worker processes and report it in the sim's metrics schema.

Every workload kind runs here (the drivers are in `twin.real_workloads`): task bodies
sleep (or spin, below a millisecond) for their drawn durations and return outputs of
their drawn sizes through the real object store; times are wall-clock. `fit_to_machine`
maps a cluster onto this machine (`--scale-down`: one node, one driver, GPU requests as
CPUs, a time budget); `run_mode` is what `run-scenario --mode real|both` calls.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.drivers import rl_summary, tree_template
from sim.metrics import wait_summary, write_json
from sim.report import comparison_rows, write_comparison, write_report
from sim.scenario import (
    ActorWorkload,
    AllreduceWorkload,
    GraphWorkload,
    HyperparameterSearchWorkload,
    ParameterServerWorkload,
    RLWorkload,
    Scenario,
    ScenarioError,
    read_task_graph,
    validate_scenario,
)
from twin.real_workloads import RUNNERS, SPIN_BELOW_S, RealDriver, work

__all__ = [
    "SPIN_BELOW_S",
    "Fit",
    "comparison_lines",
    "RealModeRefused",
    "fit_to_machine",
    "run_mode",
    "run_real",
    "work",
]

STORE_CAP_BYTES = 1 << 30
"""Real object store size: the scenario's, capped at 1 GiB (this machine is not a cluster node)."""

WARMUP_TASKS = 8

BUDGET_S = 4.0
"""Scaling down also shortens a workload whose estimated real run exceeds this (seconds)."""

TASK_OVERHEAD_S = 1e-3
"""Estimated real cost of one task beyond its body (submission, dispatch, result)."""


class RealModeRefused(ValueError):
    """The scenario cannot run on this machine as asked (and scaling down was not asked for)."""


@dataclass(frozen=True)
class Fit:
    """How a scenario maps onto this machine: the scenario to run and what was changed."""

    scenario: Scenario
    cpus: int
    note: str = ""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources of the one node (passed to `runtime.init`)."""


def fit_to_machine(scenario: Scenario, scale_down: bool, cpus: int | None = None) -> Fit:
    """Check that `scenario` fits this machine, or map it onto 1 node x `cpus` when allowed.

    A cluster fits when it has one node, no more CPUs than the machine (`cpus`, default
    `os.cpu_count()`), no GPUs (real workers run on CPUs only) and room for the CPUs its
    actors hold. Otherwise `RealModeRefused` explains why, unless `scale_down`, which
    returns a scenario with 1 node x `cpus` CPUs and one driver doing all drivers' work,
    GPU requests mapped to CPUs, actor counts cut to fit, and a workload estimated to run
    longer than `BUDGET_S` shortened; the note says what changed.
    """
    cpus = cpus or os.cpu_count() or 1
    faults = getattr(scenario, "faults", None)
    if faults:
        raise RealModeRefused(
            f"scenario {scenario.name!r} injects {len(faults)} fault(s); real mode does not "
            "inject faults (use --mode sim, or --set faults=[] to run it without them)"
        )
    problem = _misfit(scenario, cpus)
    if problem is None:
        group = scenario.cluster.node_groups()[0]
        custom = dict(group.custom_resources)
        return Fit(scenario, group.cpus, "", custom)
    if not scale_down:
        raise RealModeRefused(
            f"scenario {scenario.name!r} {problem}; pass --scale-down to run it on 1 node x "
            f"{cpus} CPUs (the simulator can run the full cluster: --mode sim)"
        )
    return _scale_down(scenario, cpus)


def _misfit(scenario: Scenario, cpus: int) -> str | None:
    """Why `scenario` does not fit a machine of `cpus` CPUs as it is (None: it fits)."""
    cluster, workload = scenario.cluster, scenario.workload
    groups = cluster.node_groups()
    total = sum(g.count * g.cpus for g in groups)
    problems = []
    if cluster.nodes != 1 or total > cpus:
        shape = f"{cluster.cpus_per_node} CPUs" if not cluster.groups else "CPUs (groups)"
        problems.append(
            f"needs {cluster.nodes} node(s) x {shape} = {total} CPUs, but real mode runs on "
            f"this one machine with {cpus} CPUs"
        )
    gpus = [path for path, demand in workload.demands() if demand.get("GPU")]
    if gpus or any(g.gpus for g in groups):
        where = ", ".join(gpus) or "cluster"
        problems.append(f"requests GPUs ({where}), but real mode runs on CPUs only")
    held = _held_cpus(workload)
    if held and held[0] > total:
        problems.append(
            f"has actors holding {held[0]:g} CPUs ({held[1]}), more than its {total} CPUs"
        )
    return "; it ".join(problems) or None


def _held_cpus(workload: Any) -> tuple[float, str] | None:
    """CPUs held by the workload's actors while alive (plus one task's, for iterative ones)."""
    if isinstance(workload, ActorWorkload):
        return workload.actors * workload.actor_cpus, "workload.actors x actor_cpus"
    if isinstance(workload, RLWorkload):
        held = workload.rollout_actors * workload.rollout_cpus + workload.learner_cpus
        return held, "workload.rollout_actors x rollout_cpus + learner_cpus"
    if isinstance(workload, ParameterServerWorkload):
        held = workload.servers * workload.server_cpus + workload.num_cpus
        return held, "workload.servers x server_cpus + one worker's num_cpus"
    if isinstance(workload, AllreduceWorkload):
        held = workload.drivers * workload.actors * workload.actor_cpus
        return held, "workload.drivers x actors x actor_cpus (one ring per driver)"
    return None


# --- scaling down --------------------------------------------------------------------------


def _scale_down(scenario: Scenario, cpus: int) -> Fit:
    """The scenario mapped onto 1 node x `cpus` CPUs and one driver, with a note of changes."""
    cluster, workload = scenario.cluster, scenario.workload
    groups = cluster.node_groups()
    custom: dict[str, float] = {}
    for group in groups:
        for key, value in group.custom_resources.items():
            custom[key] = max(custom.get(key, 0.0), value)
    raw = scenario.model_dump(mode="json")
    raw["cluster"] = {
        "nodes": 1,
        "cpus_per_node": cpus,
        "object_store_mb": min(g.object_store_mb for g in groups),
        "custom_resources": custom,
    }
    wl = raw["workload"]
    drivers, wl["drivers"] = wl["drivers"], 1
    shape = f"{cluster.cpus_per_node} CPUs" if not cluster.groups else "CPUs in groups"
    notes = [
        f"scaled down from {cluster.nodes} node(s) x {shape} and {drivers} driver(s) to "
        f"1 node x {cpus} CPUs and 1 driver"
    ]
    gpu_fields = _map_gpus(wl, workload, cpus)
    if gpu_fields:
        notes.append(
            f"GPU requests mapped to CPU ({', '.join(gpu_fields)}; real workers have no "
            "GPUs: a GPU request becomes a request of that many CPUs, at least)"
        )
    _SCALERS[workload.kind](wl, drivers, cpus, notes)
    try:
        scaled = validate_scenario(raw, f"{scenario.name} (scaled down)")
    except ScenarioError as exc:  # e.g. a placement group that needs several nodes
        raise RealModeRefused(
            f"scenario {scenario.name!r} cannot run scaled down to 1 node x {cpus} CPUs: {exc}"
        ) from None
    held = _held_cpus(scaled.workload)
    if held and held[0] > cpus:
        raise RealModeRefused(
            f"scenario {scenario.name!r}: its actors hold {held[0]:g} CPUs ({held[1]}) even "
            f"scaled down, more than this machine's {cpus}"
        )
    scaled = _fit_budget(scaled, raw, cpus, notes)
    return Fit(scaled, cpus, "; ".join(notes), custom)


def _gpus_to_cpus(item: dict[str, Any], cpu_key: str, gpu_key: str, cpus: int) -> bool:
    """Turn `item[gpu_key]` GPUs into CPUs under `cpu_key` (at least as many); True if any."""
    gpus = float(item.get(gpu_key) or 0)
    if not gpus:
        return False
    item[cpu_key] = min(max(float(item.get(cpu_key, 1.0)), gpus), float(cpus))
    item[gpu_key] = 0.0
    return True


def _map_gpus(wl: dict[str, Any], workload: Any, cpus: int) -> list[str]:
    """Map every GPU request of the raw workload `wl` to CPUs; return the fields changed."""
    changed = []
    if _gpus_to_cpus(wl, "num_cpus", "num_gpus", cpus):
        changed.append("workload.num_gpus")
        if wl.get("gpu_duration_ms") is not None:  # GPU tasks keep their duration model
            wl["duration_ms"], wl["gpu_duration_ms"] = wl["gpu_duration_ms"], None
    wl["num_cpus"] = min(float(wl["num_cpus"]), float(cpus))
    for cpu_key, gpu_key in (("actor_cpus", "actor_gpus"), ("learner_cpus", "learner_gpus")):
        if _gpus_to_cpus(wl, cpu_key, gpu_key, cpus):
            changed.append(f"workload.{gpu_key}")
    if isinstance(workload, GraphWorkload):
        tasks = read_task_graph(Path(workload.file))
        mapped = [dict(t) for t in tasks]
        hits = [t for t in mapped if _gpus_to_cpus(t, "num_cpus", "num_gpus", cpus)]
        for t in mapped:
            if "num_cpus" in t:
                t["num_cpus"] = min(float(t["num_cpus"]), float(cpus))
        if hits:
            wl["file"] = str(_write_graph(Path(workload.file), mapped))
            changed.append(f"num_gpus of {len(hits)} task(s) in {Path(workload.file).name}")
    return changed


def _write_graph(source: Path, tasks: list[dict[str, Any]]) -> Path:
    """A copy of a task graph with CPU-only requests, in the temp dir (named by content)."""
    text = json.dumps({"tasks": tasks}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / "twinray-real" / f"{source.stem}-cpu-{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


def _merge_windows(wl: dict[str, Any], drivers: int, *keys: str) -> None:
    """One driver does the work of `drivers`: windows (and per-driver counts) multiply."""
    for key in keys:
        wl[key] = wl[key] * drivers


def _cap(wl: dict[str, Any], key: str, room: float, each: float, notes: list[str]) -> None:
    """At most `room // each` of `wl[key]` (at least 1), announced when cut."""
    if each <= 0:
        return
    most = max(1, int(room // each + 1e-9))
    if wl[key] > most:
        notes.append(f"workload.{key} {wl[key]} -> {most} (each holds {each:g} CPU)")
        wl[key] = most


def _scale_actors(wl: dict[str, Any], drivers: int, cpus: int, notes: list[str]) -> None:
    _cap(wl, "actors", cpus, float(wl["actor_cpus"]), notes)


def _scale_rl(wl: dict[str, Any], drivers: int, cpus: int, notes: list[str]) -> None:
    rllib = wl.get("from_rllib")
    if isinstance(rllib, dict):
        _scale_rllib(wl, rllib, cpus, notes)
        return
    room = cpus - float(wl["learner_cpus"])
    _cap(wl, "rollout_actors", room, float(wl["rollout_cpus"]), notes)


def _scale_rllib(wl: dict[str, Any], rllib: dict[str, Any], cpus: int, notes: list[str]) -> None:
    """Cut an RLlib config's env runners to fit; the shape fields are derived again."""
    from sim.rl_shape import SHAPE_FIELDS, TIMING_FIELDS, shape_of

    for key in SHAPE_FIELDS + (TIMING_FIELDS if wl.get("timing_profile") else ()):
        wl.pop(key, None)
    settings = {k: v for k, v in rllib.items() if v is not None}
    shape = shape_of(settings)
    room = cpus - shape.learner_cpus
    each = shape.runner_cpus
    if each > 0 and shape.num_env_runners * each > room:
        most = max(1, int(room // each + 1e-9))
        notes.append(
            f"workload.from_rllib.num_env_runners {shape.num_env_runners} -> {most} "
            f"(each holds {each:g} CPU)"
        )
        rllib["num_env_runners"] = most


def _scale_ps(wl: dict[str, Any], drivers: int, cpus: int, notes: list[str]) -> None:
    _cap(wl, "servers", cpus - float(wl["num_cpus"]), float(wl["server_cpus"]), notes)


ALLREDUCE_TASK_FIELDS = (
    "duration_ms", "gpu_duration_ms", "output_bytes", "num_cpus", "num_gpus", "placement_group",
)  # fmt: skip
"""Task fields an allreduce workload refuses (it runs actor calls only)."""


PUTS_TASK_FIELDS = (*ALLREDUCE_TASK_FIELDS, "resources", "scheduling_strategy")
"""Task fields a puts workload refuses (it runs no task)."""


def _scale_puts(wl: dict[str, Any], drivers: int, cpus: int, notes: list[str]) -> None:
    """One driver putting every driver's objects."""
    for key in PUTS_TASK_FIELDS:  # unset in a valid scenario: the dump's defaults
        wl.pop(key, None)
    _merge_windows(wl, drivers, "puts")


def _scale_allreduce(wl: dict[str, Any], drivers: int, cpus: int, notes: list[str]) -> None:
    """One ring doing every driver's rounds, with as many actors as fit (a ring has 2+)."""
    for key in ALLREDUCE_TASK_FIELDS:  # unset in a valid scenario: the dump's defaults
        wl.pop(key, None)
    _merge_windows(wl, drivers, "rounds")
    _cap(wl, "actors", cpus, float(wl["actor_cpus"]), notes)


_SCALERS: dict[str, Callable[[dict[str, Any], int, int, list[str]], None]] = {
    "independent": lambda wl, d, c, n: _merge_windows(wl, d, "window"),
    "chain": lambda wl, d, c, n: None,
    "tree": lambda wl, d, c, n: _merge_windows(wl, d, "window"),
    "shuffle": lambda wl, d, c, n: _merge_windows(wl, d, "window", "rounds"),
    "graph": lambda wl, d, c, n: _merge_windows(wl, d, "window", "repeats"),
    "actors": _scale_actors,
    "rl": _scale_rl,
    "parameter_server": _scale_ps,
    "hyperparameter_search": lambda wl, d, c, n: _merge_windows(wl, d, "concurrent_trials"),
    "stream": lambda wl, d, c, n: _merge_windows(wl, d, "window"),
    "allreduce": _scale_allreduce,
    "puts": _scale_puts,
}
"""Workload kind -> how one driver on 1 node x `cpus` CPUs takes over the workload."""


# --- the time budget of a scaled-down run --------------------------------------------------


PUT_OVERHEAD_S = 1e-4
PUT_BYTES_PER_S = 1e9
"""A real put's rough cost (fixed + copy), for the time budget of a puts workload."""


def _mean(dist: Any) -> float:
    """The mean of a distribution spec (normal: its untruncated mean)."""
    for name in ("value", "mean"):
        if hasattr(dist, name):
            return float(getattr(dist, name))
    return (dist.low + dist.high) / 2


def _slots(per_task: float, cpus: int) -> int:
    """How many tasks requesting `per_task` CPUs run at once on `cpus` CPUs."""
    return max(1, int(cpus // per_task)) if per_task > 0 else cpus


def _task_s(w: Any) -> float:
    """Estimated real seconds of one task of the workload's default model."""
    return _mean(w.duration_ms) * 1e-3 + TASK_OVERHEAD_S


def _graph_unit_s(w: GraphWorkload, cpus: int) -> float:
    tasks = read_task_graph(Path(w.file))
    total = sum(float(t.get("duration_ms", _mean(w.duration_ms))) * 1e-3 for t in tasks)
    return (total + len(tasks) * TASK_OVERHEAD_S) / _slots(w.num_cpus, cpus)


def _iteration_s(w: RLWorkload | ParameterServerWorkload, cpus: int) -> float:
    if isinstance(w, RLWorkload):
        return _mean(w.rollout_ms) * 1e-3 + _mean(w.train_ms) * 1e-3 + 2 * TASK_OVERHEAD_S
    free = _slots(w.num_cpus, max(1, int(cpus - w.servers * w.server_cpus)))
    return math.ceil(w.workers / free) * _task_s(w) + _mean(w.update_ms) * 1e-3


def _expected_epochs(w: HyperparameterSearchWorkload) -> float:
    """Epochs per trial if each rung passes 1/rf of the trials on (ASHA, roughly)."""
    rungs, epoch = [], w.grace_epochs
    while epoch < w.epochs:
        rungs.append(epoch)
        epoch *= w.reduction_factor
    return sum(
        w.reduction_factor ** -sum(1 for r in rungs if r < e) for e in range(1, w.epochs + 1)
    )


_BUDGETS: dict[str, tuple[str, Callable[[Any, int], float]]] = {
    "independent": ("tasks", lambda w, c: _task_s(w) / _slots(w.num_cpus, c)),
    "chain": ("length", lambda w, c: w.chains * _task_s(w) / min(w.chains, _slots(w.num_cpus, c))),
    "tree": (
        "trees",
        lambda w, c: len(tree_template(w.leaves, w.fan_in)) * _task_s(w) / _slots(w.num_cpus, c),
    ),
    "shuffle": ("rounds", lambda w, c: (w.maps + w.reduces) * _task_s(w) / _slots(w.num_cpus, c)),
    "graph": ("repeats", _graph_unit_s),
    "actors": ("calls", lambda w, c: _task_s(w)),
    "rl": ("iterations", _iteration_s),
    "parameter_server": ("iterations", _iteration_s),
    "hyperparameter_search": (
        "trials",
        lambda w, c: (
            _expected_epochs(w) * _task_s(w) / min(w.concurrent_trials, _slots(w.num_cpus, c))
        ),
    ),
    "stream": (
        "producers",
        lambda w, c: (
            (_task_s(w) + w.items * (_mean(w.consumer_duration_ms) * 1e-3 + TASK_OVERHEAD_S))
            / _slots(w.num_cpus, c)
        ),
    ),
    "puts": ("puts", lambda w, c: PUT_OVERHEAD_S + w.object_bytes / PUT_BYTES_PER_S),
    "allreduce": (  # a round: 2n - 1 steps of each actor's calls, one per piece
        "rounds",
        lambda w, c: (2 * w.actors - 1) * w.chunks * (w.injected_delay_ms * 1e-3 + TASK_OVERHEAD_S),
    ),
}
"""Workload kind -> (the count that repeats its shape, estimated seconds per unit of it)."""


def _fit_budget(scaled: Scenario, raw: dict[str, Any], cpus: int, notes: list[str]) -> Scenario:
    """Cut the repeating count of a workload estimated to run longer than `BUDGET_S`."""
    w = scaled.workload
    key, unit_s = _BUDGETS[w.kind]
    count = getattr(w, key)
    estimate = count * unit_s(w, cpus)
    if estimate <= BUDGET_S:
        return scaled
    fewer = max(1, int(count * BUDGET_S / estimate))
    raw["workload"][key] = fewer
    if key == "trials" and raw["workload"].get("curves") is not None:
        raw["workload"]["curves"] = raw["workload"]["curves"][:fewer]  # one row per trial
    notes.append(
        f"workload.{key} {count} -> {fewer} to run in about {BUDGET_S:g} s "
        f"(estimated {estimate:.0f} s on {cpus} CPUs)"
    )
    return validate_scenario(raw, f"{scaled.name}")


# --- running -------------------------------------------------------------------------------


def run_real(
    scenario: Scenario,
    cpus: int,
    trace: str | Path | None = None,
    resources: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run the (fitting) scenario's workload on `cpus` real workers; return the metrics dict.

    Starts and shuts down the runtime; the metrics follow `MetricsRecorder.summary` with
    wall-clock seconds, plus `world`. Control messages are not counted in real mode (None).
    """
    import runtime as ray
    from runtime.api import _current_node

    if ray.is_initialized():
        raise RuntimeError("run_real starts its own runtime: call runtime.shutdown() first")
    workload = scenario.workload
    if isinstance(workload, RLWorkload) and workload.from_rllib is not None:
        from twin.real_rllib import run_rllib

        return run_rllib(scenario, cpus, trace)  # the RLlib config itself, trained
    run = RUNNERS.get(workload.kind)
    if run is None:  # pragma: no cover - new workload kinds
        raise RealModeRefused(f"real mode does not support workload {workload.kind!r}")
    store = min(int(scenario.cluster.object_store_mb * 2**20), STORE_CAP_BYTES)
    ray.init(num_cpus=cpus, object_store_memory=store, resources=dict(resources or {}))
    try:
        warm = ray.remote(work)
        ray.get([warm.remote(0.0, 0) for _ in range(max(WARMUP_TASKS, 2 * cpus))])
        driver = RealDriver(ray, scenario)  # after the warm-up: its groups reserve CPUs
        node = _current_node()
        spans = node.pool.spans  # the worker pool's record of finished bodies
        spans.clear()
        waited = node.raylet.wait_seconds()  # the core's wait clock, net of the warm-up
        driver.t0 = time.monotonic()
        run(driver, workload)
        waited = {cause: s - waited[cause] for cause, s in node.raylet.wait_seconds().items()}
        driver.record_spans(spans, node.pool.workers)
        if trace is not None:
            Path(trace).parent.mkdir(parents=True, exist_ok=True)
            ray.timeline(str(trace))
        groups = _placement_groups(ray) if driver.strategies else None
    finally:
        ray.shutdown()
    metrics = engine_metrics(driver, cpus, "real", groups)
    metrics["wait_breakdown"] = wait_summary(waited, metrics["tasks"])
    return metrics


def engine_metrics(
    driver: RealDriver, cpus: int, world: str, groups: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A real engine's run in the simulator's metrics schema (wall-clock seconds).

    Control messages are not counted by real engines (None); ``world`` names the engine.
    """
    metrics = driver.metrics.summary(max(0.0, driver.last - driver.t0), cpus)
    if driver.rl_times is not None:
        metrics["rl"] = rl_summary([driver.rl_times.summary()])
    if groups:
        metrics["placement_groups"] = groups
    cpu = metrics["cpu_utilization"]
    metrics.update(
        messages=None,
        message_bytes=None,
        utilization={"CPU": cpu},
        node_utilization={"CPU": [cpu]},
        faults=[],
        warnings=[],
        world=world,
    )
    return metrics


def _placement_groups(ray: Any) -> list[dict[str, Any]]:
    """The placement-group table in the simulator's metrics shape (see `Simulation`)."""
    rows = []
    for row in ray.util.placement_group_table().values():
        nodes = [int(n, 16) if n else -1 for _, n in sorted(row["bundles_to_node_id"].items())]
        rows.append(
            {
                "id": row["placement_group_id"],
                "strategy": row["strategy"],
                "state": row["state"],
                "bundle_nodes": nodes,
                "reason": row["stats"].get("reason", ""),
            }
        )
    return rows


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
    address: str | None = None,
) -> int:
    """`run-scenario --mode real|both|ray`: run, print, write reports; return the exit code.

    real: `reports/<name>/real/{metrics.json,report.md,*.png}`. ray: the same under `ray/`,
    run on Ray (a local one started for the run, or the cluster at `address`). both: the
    real run and the simulated run of the same (possibly scaled-down) scenario under
    `sim/`, and `comparison.md` plus `report.md` with the side-by-side table and plots.
    """
    engine = "ray" if mode == "ray" else "real"
    try:
        if engine == "ray":
            from twin.ray_mode import cluster_cpus, import_ray

            import_ray()
            if address is not None:
                cpus = cluster_cpus(address)
        fit = fit_to_machine(scenario, scale_down, cpus)
    except (RealModeRefused, RuntimeError) as exc:
        print(f"run-scenario: cannot run in {engine} mode: {exc}", file=sys.stderr)
        return 2
    if fit.note:
        _print(f"note                {fit.note}")
    base = Path(scenario.output.report_dir) / scenario.name
    intro = " ".join(x for x in (scenario.description, fit.note and f"Real mode: {fit.note}.") if x)
    trace = base / engine / "trace.json"
    if engine == "ray":
        from twin.ray_mode import RayModeRefused, run_ray

        try:
            real = run_ray(fit.scenario, fit.cpus, trace, fit.resources, address)
        except RayModeRefused as exc:
            print(f"run-scenario: cannot run in ray mode: {exc}", file=sys.stderr)
            return 2
    else:
        real = run_real(fit.scenario, fit.cpus, trace, fit.resources)
    write_json(base / engine / "metrics.json", real)
    write_report(real, base / engine, f"{scenario.name} ({engine})", intro=intro)
    rate = f"{real['throughput_tps']:,.0f} tasks/s over {real['tasks']} tasks"
    _print(f"{engine + ' throughput':<19} {rate}")
    _print(f"{engine + ' report':<19} {base / engine / 'report.md'}")
    if mode != "both":
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
