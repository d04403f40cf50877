"""Measure an engine's overheads on this machine and fit the simulator's control-plane costs to them.

`calibrate()` runs micro-workloads on an engine (no-op tasks with a window: per-task
dispatch cost; a chain of no-op tasks: per-hop latency; put/get of a large array: store
bandwidth), then fits the sim's per-message service times so that the simulator
reproduces the first two on a one-node cluster of this machine. The result is a YAML
profile that scenarios use with `control_plane: {profile: PATH}`. The engine is twinray's
real mode (the default) or real Ray (``engine="ray"``, through Ray's public API on a local
Ray started for the calibration, `twin.ray_mode.RaySession`); `validate()` reports how
well the calibrated simulator predicts the engine's runs of the shipped small scenarios.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.profile import DEFAULT_PROFILE

BASE_COSTS_US = {"owner_us": 3.0, "raylet_us": 5.0, "global_scheduler_us": 10.0, "gcs_us": 10.0}
"""The default control-plane costs; calibration scales them by one fitted factor."""

NOOP_TASKS = 3000
CHAIN_LENGTH = 300
WINDOW = 64


# --- measuring -----------------------------------------------------------------------------


def _scenario(workload: dict[str, Any], cpus: int, plane: dict[str, Any] | None = None) -> Any:
    from sim.scenario import validate_scenario

    raw: dict[str, Any] = {
        "name": "calibration",
        "seed": 1,
        "cluster": {"nodes": 1, "cpus_per_node": cpus},
        "workload": workload,
        "output": {"progress": False},
    }
    if plane:
        raw["control_plane"] = {k: v for k, v in plane.items() if k != "local_latency_us"}
        raw["network"] = {"local_latency_us": plane.get("local_latency_us", 2.0)}
    return validate_scenario(raw, "calibration")


NOOP = {"kind": "independent", "tasks": NOOP_TASKS, "window": WINDOW, "duration_ms": 0}
CHAIN = {"kind": "chain", "chains": 1, "length": CHAIN_LENGTH, "duration_ms": 0}


def measure_store(nbytes: int = 64 << 20, repeats: int = 3) -> dict[str, float]:
    """Best-of-`repeats` put and get bandwidth (GiB/s) of a numpy array on the real store."""
    import runtime as ray

    ray.init(num_cpus=1, object_store_memory=4 * nbytes)
    try:
        return measure_store_on(ray, nbytes, repeats)
    finally:
        ray.shutdown()


def measure_store_on(ray: Any, nbytes: int = 64 << 20, repeats: int = 3) -> dict[str, float]:
    """As `measure_store`, through an initialised `ray` module (twinray's or Ray's)."""
    import numpy as np

    data = np.ones(nbytes, dtype=np.uint8)
    put_s = get_s = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ref = ray.put(data)
        put_s = min(put_s, time.perf_counter() - t)
        t = time.perf_counter()
        ray.get(ref)
        get_s = min(get_s, time.perf_counter() - t)
        del ref
    return {"put_gib_s": nbytes / 2**30 / put_s, "get_gib_s": nbytes / 2**30 / get_s}


Runner = Callable[[Any, int], dict[str, Any]]
"""Runs a (fitting) scenario on `cpus` CPUs of an engine; returns the metrics dict."""


@dataclass
class Engine:
    """An engine calibration measures: how to run a scenario on it and time its store."""

    name: str
    """`twinray` or `ray` (`ENGINES`)."""
    label: str
    """How reports name its runs, e.g. ``twinray real mode`` or ``Ray 2.60.0``."""
    run: Runner
    """One run of a scenario (validation: with queueing and busy time)."""
    probe: Runner
    """One run of a calibration probe (throughput and latency suffice)."""
    store: Callable[[], dict[str, float]]
    """Put and get bandwidth (GiB/s) of a large array."""
    version: str = ""
    """The engine's version, for the profile."""


class CalibrationError(ValueError):
    """A calibration request that cannot be served (unknown engine; the text says which)."""


RAY_PROFILE = Path("scenarios") / "calibration" / "ray_this_machine.yaml"
"""Where `run-scenario --calibrate --engine ray` writes its profile unless told otherwise."""

RAY_REPORT = Path("reports") / "calibration" / "ray"
"""Where it writes its prediction report (`report.md` and plots)."""

CALIBRATION_STORE_BYTES = 512 * 2**20
"""Ray's object store for a calibration session (probes keep at most ~64 MiB alive)."""


@contextmanager
def _twinray(cpus: int) -> Iterator[Engine]:
    from twin.real_mode import run_real

    def run(scenario: Any, n: int) -> dict[str, Any]:
        return run_real(scenario, n)

    yield Engine("twinray", "real", run, run, measure_store)


@contextmanager
def _ray(cpus: int) -> Iterator[Engine]:
    from twin.ray_mode import RaySession

    with RaySession(cpus, CALIBRATION_STORE_BYTES) as session:

        def run(scenario: Any, n: int) -> dict[str, Any]:
            return session.run(scenario)

        def probe(scenario: Any, n: int) -> dict[str, Any]:
            return session.run(scenario, spans=False)

        version = str(session.ray.__version__)
        yield Engine(
            "ray", "ray", run, probe, lambda: measure_store_on(session.ray), f"ray {version}"
        )


OPENERS: dict[str, Callable[[int], Any]] = {"twinray": _twinray, "ray": _ray}
"""Engine name -> a context manager giving its `Engine` on `cpus` CPUs."""

ENGINES = tuple(OPENERS)
"""The engines `--calibrate --engine` accepts."""


def open_engine(name: str, cpus: int) -> Any:
    """A context manager yielding engine `name`'s `Engine`; `CalibrationError` if unknown.

    ``ray`` starts one local Ray (``address="local"``) for everything run inside it, and
    raises `twin.ray_mode.RayUnavailable` (saying how to install Ray) where Ray is missing.
    """
    opener = OPENERS.get(name)
    if opener is None:
        raise CalibrationError(f"--engine: unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return opener(cpus)


SLEEPY = {"kind": "independent", "tasks": 400, "window": WINDOW, "duration_ms": 2}
STORED = {**SLEEPY, "output_bytes": 1 << 20}


CHAIN_STORED = {
    "kind": "chain",
    "chains": 8,
    "length": 50,
    "duration_ms": 2,
    "output_bytes": 1 << 20,
}
"""Chains of 2 ms tasks each reading the previous one's 1 MiB (stored) output: enough
chains side by side to keep every CPU of a small machine busy, like `STORED`."""


def probes() -> dict[str, dict[str, Any]]:
    """Measured figure -> its probe workload (each figure is the probe's tasks/s)."""
    return {
        "noop_tps": NOOP,
        "chain_tps": CHAIN,
        "sleep_2ms_tps": SLEEPY,
        "sleep_2ms_stored_tps": STORED,
        "chain_stored_tps": CHAIN_STORED,
    }


def measure_real(cpus: int, repeats: int = 3, run: Runner | None = None) -> dict[str, float]:
    """Medians over `repeats` real runs (tasks/s) of: no-op tasks, a chain of no-op tasks,
    2 ms tasks with inline (8 B) outputs, 2 ms tasks with stored (1 MiB) outputs, and a
    chain of no-op tasks passing stored (1 MiB) outputs (`probes`).

    `run` runs one probe (default: twinray's real mode, `twin.real_mode.run_real`)."""
    return measure_interleaved(cpus, repeats, run)[0]


def measure_interleaved(
    cpus: int,
    repeats: int,
    run: Runner | None,
    scenarios: dict[str, tuple[Any, int]] | None = None,
    scenario_run: Runner | None = None,
) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """`measure_real`'s medians, and `repeats` runs of each of `scenarios` (name ->
    (scenario, cpus)) by `scenario_run` (default: `run`), taken in turns.

    Each round runs every probe once, then every scenario once, so a machine whose load
    drifts (other jobs) shifts probes and scenarios alike rather than one set of them.
    """
    if run is None:
        from twin.real_mode import run_real as run
    scenarios = scenarios or {}
    scenario_run = scenario_run or run
    workloads = probes()
    tps: dict[str, list[float]] = {key: [] for key in workloads}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for _ in range(repeats):
        for key, workload in workloads.items():
            tps[key].append(run(_scenario(workload, cpus), cpus)["throughput_tps"])
        for name, (scenario, n) in scenarios.items():
            runs[name].append(scenario_run(scenario, n))
    return {key: statistics.median(values) for key, values in tps.items()}, runs


def task_overheads(
    cpus: int, measured: dict[str, float], plane: dict[str, float]
) -> dict[str, float]:
    """CPU-slot time per task that the real run spends and the fitted sim does not.

    `per_task_ms`: extra slot time of a 2 ms task with an inline output (dispatch and
    completion latency, sleep overshoot); `stored_output_ms`: further extra when its
    output (1 MiB) goes to the object store; `stored_arg_ms` (where `measured` has
    ``chain_stored_tps``): further extra when the task reads a 1 MiB argument from the
    store (chains of such tasks). Each is fitted in turn, the earlier ones included, so
    that the simulated probe's throughput matches the measured one (`_fit_extra`).
    """
    per_task = _fit_extra(cpus, SLEEPY, measured["sleep_2ms_tps"], plane, "task_overhead_us")
    plane = {**plane, "task_overhead_us": per_task}
    stored = _fit_extra(
        cpus, STORED, measured["sleep_2ms_stored_tps"], plane, "store_put_us_per_mib"
    )
    overheads = {
        "per_task_ms": round(per_task / 1e3, 4),
        "stored_output_ms": round(stored / 1e3, 4),
    }
    if "chain_stored_tps" in measured:
        plane = {**plane, "store_put_us_per_mib": stored}
        arg = _fit_extra(
            cpus, CHAIN_STORED, measured["chain_stored_tps"], plane, "store_get_us_per_mib"
        )
        overheads["stored_arg_ms"] = round(arg / 1e3, 4)
    return overheads


def _fit_extra(
    cpus: int, workload: dict[str, Any], tps: float, plane: dict[str, float], cost: str
) -> float:
    """The value (us) of slot-time `cost` that makes the simulated `workload` run at `tps`.

    Zero where the sim without it is already as slow. By bisection rather than from the
    slot-time difference: where the fitted per-message costs bound the sim's throughput,
    slot time added to each task slows it by less than its own length.
    """
    from sim.runner import run_scenario

    def sim_tps(us: float) -> float:
        return run_scenario(_scenario(workload, cpus, {**plane, cost: us}))["throughput_tps"]

    if sim_tps(0.0) <= tps:
        return 0.0
    return round(_bisect(sim_tps, tps, 1.0, 1e6), 3)


# --- fitting -------------------------------------------------------------------------------


def _bisect(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """x in [lo, hi] (log scale) with f(x) ~= target, for f decreasing in x."""
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.005:
            break
    return (lo * hi) ** 0.5


def fit(cpus: int, noop_tps: float, chain_tps: float) -> dict[str, float]:
    """Control-plane costs (us) that make the sim match the measured throughputs on 1 node.

    Step 1 scales the default per-message costs by one factor k until simulated no-op
    throughput equals `noop_tps`; step 2 sets the local (same-node) message latency until
    simulated chain throughput equals `chain_tps` (dependent tasks wait for each hop).
    """
    from sim.runner import run_scenario

    def plane(k: float, local_us: float = 2.0) -> dict[str, float]:
        costs = {name: round(v * k, 3) for name, v in BASE_COSTS_US.items()}
        return {**costs, "local_latency_us": round(local_us, 3)}

    def noop(k: float) -> float:
        return run_scenario(_scenario(NOOP, cpus, plane(k)))["throughput_tps"]

    k = _bisect(noop, noop_tps, 0.01, 1000.0)

    def chain(local_us: float) -> float:
        return run_scenario(_scenario(CHAIN, cpus, plane(k, local_us)))["throughput_tps"]

    local_us = _bisect(chain, chain_tps, 0.1, 1e5) if chain(0.1) > chain_tps else 0.1
    return plane(k, local_us)


def calibrate(
    out: str | Path = DEFAULT_PROFILE,
    cpus: int | None = None,
    repeats: int = 3,
    engine: Engine | None = None,
    measured: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Measure `engine` (default: twinray's real mode), fit, write the profile to `out`.

    Returns the profile mapping. A profile of another engine than twinray names it
    (``engine:`` and ``machine.engine_version``); the sim reads only its costs.
    `measured` (the probes' medians, `measure_interleaved`) skips the probe runs.
    """
    cpus = cpus or os.cpu_count() or 1
    if measured is None:
        measured = measure_real(cpus, repeats, engine.probe if engine else None)
    measured = dict(measured)
    measured.update(engine.store() if engine else measure_store())
    fitted = fit(cpus, measured["noop_tps"], measured["chain_tps"])
    per_kib_us = 1e6 / (measured["put_gib_s"] * 2**20)  # one KiB copied at put bandwidth
    named = engine is not None and engine.name != "twinray"
    profile: dict[str, Any] = {"engine": engine.name} if named and engine else {}
    profile["machine"] = {
        "cpus": cpus,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        **({"engine_version": engine.version} if named and engine else {}),
    }
    profile |= {
        "measured": {k: round(v, 4) for k, v in measured.items()},
        "control_plane": {
            **{k: v for k, v in fitted.items() if k != "local_latency_us"},
            "per_kib_us": round(per_kib_us, 4),
        },
        "network": {"local_latency_us": fitted["local_latency_us"]},
        "task_overhead": task_overheads(cpus, measured, fitted),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Calibration profile written by `run-scenario --calibrate`: real-mode overheads of\n"
        "# this machine (measured) and the sim's control-plane costs fitted to them on one\n"
        "# node. Use it in a scenario with `control_plane: {profile: <this file>}`.\n"
    )
    if named:
        header = (
            "# Calibration profile written by `run-scenario --calibrate --engine ray`: real\n"
            "# Ray's overheads on this machine (measured through Ray's public API on a local\n"
            "# Ray) and the sim's control-plane costs fitted to them on one node, so that the\n"
            "# simulator predicts Ray runs. Use it in a scenario with\n"
            "# `control_plane: {profile: <this file>}`.\n"
        )
    path.write_text(header + yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return profile


SHIPPED = ("small_independent", "chain")
"""Scenarios whose real runs the calibrated simulator is checked against."""

TARGETS = {"throughput (tasks/s)": 0.15, "latency p50 (s)": 0.15}
"""Prediction error targets (relative) per compared metric."""


@dataclass
class Prediction:
    """What `predict` found: the report it wrote and each scenario's rows."""

    path: Path
    """The report (`report.md`)."""
    rows: dict[str, list[PredictionRow]]
    """Scenario name -> its compared metrics."""

    def errors(self) -> dict[str, dict[str, float]]:
        """Scenario -> metric with a target -> the calibrated simulation's relative error."""
        return {
            name: {
                r.label: r.calibrated_error
                for r in rows
                if r.label in TARGETS and r.calibrated_error is not None
            }
            for name, rows in self.rows.items()
        }


def validate(
    profile: str | Path = DEFAULT_PROFILE,
    scenarios_dir: str | Path = "scenarios",
    out: str | Path = Path("reports") / "calibration",
    repeats: int = 3,
    names: tuple[str, ...] = SHIPPED,
    engine: Engine | None = None,
) -> Path:
    """`predict`, returning only the report's path."""
    return predict(profile, scenarios_dir, out, repeats, names, engine).path


def predict(
    profile: str | Path = DEFAULT_PROFILE,
    scenarios_dir: str | Path = "scenarios",
    out: str | Path = Path("reports") / "calibration",
    repeats: int = 3,
    names: tuple[str, ...] = SHIPPED,
    engine: Engine | None = None,
    measured_runs: dict[str, list[dict[str, Any]]] | None = None,
    load: tuple[float, float] | None = None,
) -> Prediction:
    """Predict `engine`'s runs (default: twinray's real mode) of the shipped small scenarios.

    For each scenario (scaled down to this machine): the median over `repeats` runs on
    the engine of each metric, the sim with default costs and the sim with the profile;
    writes `out/report.md` with the prediction errors per metric and the sim-vs-engine
    plots of the calibrated runs. `measured_runs` (scenario -> its runs, taken with the
    probes by `measure_interleaved`) replaces the runs made here; `load` is then the
    1-minute load average before and after they were taken.
    """
    from sim.report import COMPARED, metric_at, plot_comparison
    from sim.runner import run_scenario
    from sim.scenario import load_scenario
    from twin.real_mode import fit_to_machine, run_real

    run: Runner = engine.run if engine else run_real
    world = engine.label if engine else "real"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile_path = Path(profile).resolve()
    load_before = os.getloadavg()[0]
    sections: list[str] = []
    found: dict[str, list[PredictionRow]] = {}
    for name in names:
        path = Path(scenarios_dir) / f"{name}.yaml"
        fit_ = fit_to_machine(load_scenario(path), scale_down=True)
        if measured_runs is not None:
            runs = measured_runs[name]
        else:
            runs = [run(fit_.scenario, fit_.cpus) for _ in range(repeats)]
        real = _median_metrics(runs, [p for p, _ in COMPARED])
        default = run_scenario(fit_.scenario)
        calibrated_scenario = load_scenario(path, {"control_plane.profile": str(profile_path)})
        calibrated_fit = fit_to_machine(calibrated_scenario, True).scenario
        calibrated = run_scenario(calibrated_fit)
        sections += [
            f"## {name}",
            "",
            fit_.note + ".",
            "",
            f"| metric | {world} (median) | sim default | error | sim calibrated | error | target |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        found[name] = prediction_rows(default, calibrated, real)
        for row in found[name]:
            sections.append(
                f"| {row.label} | {row.measured:.4g} | {_g(row.default)} | "
                f"{_pct(row.default_error)} | {_g(row.calibrated)} | "
                f"{_pct(row.calibrated_error)} | {row.verdict} |"
            )
        plane = calibrated_fit.control_plane
        sections += [
            "",
            "The calibrated costs include what a task adds beyond its body, which the "
            f"profile measured: {plane.task_overhead_us:.0f} us of CPU-slot time per task "
            f"(dispatch, result return), {plane.store_put_us_per_mib:.0f} us per MiB of "
            f"output written to the object store and {plane.store_get_us_per_mib:.0f} us "
            "per MiB of stored argument read.",
        ]
        spread = [metric_at(m, "throughput_tps") or 0.0 for m in runs]
        sections += [
            "",
            f"{world.capitalize()} throughput over the {repeats} runs: "
            + ", ".join(f"{x:,.0f}" for x in spread)
            + " tasks/s.",
            "",
        ]
        for png in plot_comparison(calibrated, real, out / name):
            sections += [f"![{name}: {png[:-4]}]({name}/{png})", ""]
    load = load or (load_before, os.getloadavg()[0])
    intro = _report_intro(profile, repeats, world, load)
    if measured_runs is not None:
        intro += (
            " The scenarios' runs were taken in turns with the calibration's probes (one"
            " round: every probe once, then every scenario once), so load that drifts"
            " while it runs moves both alike."
        )
    lines = [_report_title(engine), "", intro, ""]
    if engine is None or engine.name == "twinray":
        lines += [
            "Against Ray (the simulator calibrated to Ray with `run-scenario --calibrate "
            "--engine ray`): [ray/report.md](ray/report.md).",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines + sections).rstrip() + "\n", encoding="utf-8")
    return Prediction(path, found)


def _report_title(engine: Engine | None) -> str:
    if engine is None or engine.name == "twinray":
        return "# Calibration: does the simulator predict this machine's real runs?"
    return f"# Calibration against {engine.version or engine.name}: does the simulator predict its runs?"


def _report_intro(profile: str | Path, repeats: int, world: str, load: tuple[float, float]) -> str:
    engine = "real" if world == "real" else f"on {world.capitalize()}"
    command = "run-scenario --calibrate" + ("" if world == "real" else f" --engine {world}")
    cores = os.cpu_count() or 1
    busy = max(load) > 0.5 * cores
    return " ".join(
        [
            f"Profile: `{Path(profile)}` (from `{command}`).",
            "Each shipped scenario is scaled down to one node of this machine",
            f"(`--scale-down`), run {engine} {repeats} times (the median of each metric",
            "is shown) and simulated with the default control-plane costs and with the",
            "calibrated ones. Error is (sim - measured) / measured; the targets are within",
            f"{TARGETS['throughput (tasks/s)'] * 100:.0f} % on throughput and median",
            f"latency. Load average while it ran: {load[0]:.2f} at the start, {load[1]:.2f}",
            f"at the end, on {cores} cores"
            + (
                ": other jobs shared the machine, and measured figures move by 10-30 % "
                "between runs on it."
                if busy
                else "."
            ),
        ]
    )


@dataclass
class PredictionRow:
    """One metric of one scenario: the engine's value and the two simulations' errors."""

    label: str
    measured: float
    default: float | None
    default_error: float | None
    calibrated: float | None
    calibrated_error: float | None
    verdict: str
    """``met`` / ``missed`` against `TARGETS` (empty for metrics without a target)."""


def prediction_rows(
    default: dict[str, Any], calibrated: dict[str, Any], measured: dict[str, Any]
) -> list[PredictionRow]:
    """The compared metrics the engine reported, with each simulation's relative error."""
    from sim.report import comparison_rows

    out = []
    rows_cal = comparison_rows(calibrated, measured)
    for (label, d, r, ed), (_, c, _, ec) in zip(comparison_rows(default, measured), rows_cal):
        if r is None:
            continue
        target = TARGETS.get(label)
        verdict = ""
        if target is not None and ec is not None:
            verdict = "met" if abs(ec) <= target else "missed"
        out.append(PredictionRow(label, r, d, ed, c, ec, verdict))
    return out


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def _median_metrics(runs: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """A metrics dict holding, at each dotted path, the median over `runs`.

    The run with the median throughput supplies everything else (series for plots).
    """
    from sim.report import metric_at

    ordered = sorted(runs, key=lambda m: metric_at(m, "throughput_tps") or 0.0)
    result: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in ordered[len(ordered) // 2].items()
    }
    for dotted in paths:
        values = [v for v in (metric_at(m, dotted) for m in runs) if v is not None]
        if not values:
            continue
        node = result
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = statistics.median(values)
    return result


RAY_REPEATS = 5
"""Rounds of probes and scenario runs on Ray: its runs scatter more than twinray's on a
loaded machine (a load spike during one short probe run moves a median of 3)."""


def main(out: str | Path | None = None, engine: str = "twinray", repeats: int | None = None) -> int:
    """`run-scenario --calibrate [PROFILE] [--engine E]`: calibrate, print; the exit code.

    twinray (the default) writes the profile (default `DEFAULT_PROFILE`). ray measures a
    local Ray, writes its profile (default `RAY_PROFILE`) and checks its predictions of
    Ray runs of the shipped scenarios in the same Ray session (`RAY_REPORT`).
    """
    if engine == "twinray":
        out = out or DEFAULT_PROFILE  # (twinray: 3 runs of each probe, as before)
        print("calibrating: real no-op tasks, chains and store bandwidth (about 20 s) ...")
        profile = calibrate(out)
        sys.stdout.write(yaml.safe_dump(profile, sort_keys=False))
        print(f"profile             {out}")
        return 0
    from twin.ray_mode import RAY_INSTALL, RayUnavailable

    out = out or RAY_PROFILE
    repeats = repeats or RAY_REPEATS
    cpus = os.cpu_count() or 1
    try:
        opened = open_engine(engine, cpus)
        print(f"calibrating against {engine}: a local Ray, its probes and the shipped")
        print(f"scenarios, in {repeats} rounds (about 5 minutes) ...", flush=True)
        with opened as measured:
            before = os.getloadavg()[0]
            tps, runs = measure_interleaved(
                cpus, repeats, measured.probe, shipped_fits(), measured.run
            )
            load = (before, os.getloadavg()[0])
            profile = calibrate(out, cpus, repeats, measured, tps)
            prediction = predict(
                out,
                out=RAY_REPORT,
                repeats=repeats,
                engine=measured,
                measured_runs=runs,
                load=load,
            )
    except RayUnavailable:
        print(
            f"run-scenario: cannot calibrate against Ray: Ray is not installed: {RAY_INSTALL}",
            file=sys.stderr,
        )
        return 2
    except CalibrationError as exc:
        print(f"run-scenario: cannot calibrate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(profile, sort_keys=False))
    for line in error_lines(prediction.errors()):
        print(line)
    print(f"profile             {out}")
    print(f"report              {prediction.path}")
    return 0


def shipped_fits(
    scenarios_dir: str | Path = "scenarios", names: tuple[str, ...] = SHIPPED
) -> dict[str, tuple[Any, int]]:
    """Each shipped scenario scaled down to this machine, as `predict` runs it."""
    from sim.scenario import load_scenario
    from twin.real_mode import fit_to_machine

    fits = {}
    for name in names:
        fitted = fit_to_machine(load_scenario(Path(scenarios_dir) / f"{name}.yaml"), True)
        fits[name] = (fitted.scenario, fitted.cpus)
    return fits


def error_lines(errors: dict[str, dict[str, float]]) -> list[str]:
    """A plain-text table of the calibrated simulation's errors against their targets."""
    lines = [f"{'scenario':<20} {'metric':<22} {'error':>9}  target"]
    for name, by_metric in errors.items():
        for label, error in by_metric.items():
            target = TARGETS[label]
            verdict = "met" if abs(error) <= target else "missed"
            lines.append(
                f"{name:<20} {label:<22} {error * 100:>+8.1f}%  {verdict} (within {target:.0%})"
            )
    return lines


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(prog="python -m twin.calibrate", description=__doc__)
    cli.add_argument("--profile", default=str(DEFAULT_PROFILE))
    cli.add_argument("--validate", action="store_true", help="only check an existing profile")
    cli.add_argument("--repeats", type=int, default=3)
    args = cli.parse_args()
    if not args.validate:
        main(args.profile)
    print(validate(args.profile, repeats=args.repeats))
