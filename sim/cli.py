"""The simulator's command line: load a scenario, simulate it, print a summary, write metrics.json.

`python -m sim.cli` is `run-scenario` without the options that run real workers
(`--mode`, `--scale-down`, `--calibrate`): `twin.cli` adds those on top of this parser and
hands every simulator-only run back to `run_args` here.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below load the core: use a compiled build
    from sim import fast

    fast.enable()

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.metrics import write_json
from sim.runner import SimulationStalled, build
from sim.scenario import Scenario, ScenarioError, load_scenario
from sim.sweep import parse_sweeps, run_sweep, write_schema
from sim.units import fmt_s as _fmt_s

EXIT_BAD_SCENARIO = 2
EXIT_STALLED = 1


def build_parser(
    prog: str = "python -m sim.cli",
    description: str = "Run a scenario in the simulated cluster (run-scenario without real workers).",
) -> argparse.ArgumentParser:
    """The simulator's options; `twin.cli` adds the real-worker ones to this parser."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("file", type=Path, nargs="?", help="scenario YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a scenario field, e.g. --set cluster.nodes=50 (repeatable)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help="run one simulation per value (in parallel; repeat for a grid), write sweep.md/csv",
    )
    parser.add_argument(
        "--schema",
        action="store_true",
        help="write the JSON Schema of scenarios to scenarios/scenario.schema.json and exit",
    )
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, help="report directory (default: output.report_dir)")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also write trace.json (Chrome trace / Perfetto) of task executions",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """Collect --set/--seed/--out/--no-progress as dotted-path overrides."""
    overrides: dict[str, str] = {}
    for item in args.overrides:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise ScenarioError([f"{args.file}: --set {item}: expected PATH=VALUE"])
        overrides[path.strip()] = value
    if args.seed is not None:
        overrides["seed"] = str(args.seed)
    if args.out is not None:
        overrides["output.report_dir"] = str(args.out)
    if args.no_progress:
        overrides["output.progress"] = "false"
    return overrides


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summary_lines(scenario: Scenario, metrics: dict[str, Any], wall_s: float) -> list[str]:
    """The human-readable run summary."""
    latency = metrics["latency_s"]
    lines = [
        f"scenario            {scenario.name} (seed {scenario.seed})",
        f"tasks               {metrics['tasks']:,}",
        f"simulated makespan  {_fmt_s(metrics['makespan_s'])}",
        f"throughput          {metrics['throughput_tps']:,.0f} tasks per simulated s",
        f"latency p50 / p99   {_fmt_s(latency['p50'])} / {_fmt_s(latency['p99'])}",
        f"CPU utilisation     {metrics['cpu_utilization'] * 100:.1f} %",
    ]
    others = {k: v for k, v in metrics.get("utilization", {}).items() if k != "CPU"}
    if others:
        text = ", ".join(f"{k} {v * 100:.1f} %" for k, v in sorted(others.items()))
        lines.append(f"other utilisation   {text}")
    lines += [
        f"spilled tasks       {metrics['spilled_tasks']:,}",
        f"messages            {metrics['messages']:,}",
    ]
    if metrics.get("bytes_transferred"):
        lines.append(f"bytes transferred   {metrics['bytes_transferred']:,}")
    recovery = metrics.get("recovery")
    if recovery:
        back = recovery["recovery_s"]
        lines.append(
            f"faults              {len(metrics['faults'])}: throughput dip"
            f" {recovery['dip_throughput_tps']:,.0f} tasks/s (baseline"
            f" {recovery['baseline_tps']:,.0f}), recovered in"
            f" {_fmt_s(back) if back is not None else 'never (run ended)'}"
        )
    for warning in metrics.get("warnings") or ():
        lines.append(f"warning             {warning}")
    lines += [
        f"wall time           {wall_s:.2f} s",
        f"peak RSS            {_peak_rss_mb():.0f} MiB",
        f"simulator           {_which_simulator()}",
    ]
    return lines


def _which_simulator() -> str:
    """Whether this process runs the compiled build (`python -m sim.build_fast`) or pure Python."""
    from sim import fast

    build = fast.active()
    return f"compiled with mypyc (build {build.digest})" if build else "pure Python"


def _show_progress(scenario: Scenario) -> bool:
    """`output.progress` if set, else whether stderr is a terminal (quiet when piped or in tests)."""
    if scenario.output.progress is not None:
        return scenario.output.progress
    return sys.stderr.isatty()


def run(scenario: Scenario, trace: bool = False) -> tuple[dict[str, Any], Path, float]:
    """Simulate `scenario` with an optional progress bar; write metrics.json.

    With `trace`, also writes trace.json (Chrome trace / Perfetto) beside it.
    Returns (metrics, path of metrics.json, wall seconds).
    """
    started = time.perf_counter()
    sim = build(scenario)
    tracer = None
    if trace:
        from sim.report import TaskTracer

        tracer = TaskTracer().attach(sim)
    total = sim.completion.total if sim.completion is not None else 0
    bar = None
    progress = None
    if _show_progress(scenario):
        from tqdm import tqdm

        bar = tqdm(total=total, unit="task", unit_scale=True, file=sys.stderr, mininterval=0.5)

        def progress(done: int) -> None:
            bar.update(done - bar.n)

    try:
        metrics = sim.run(progress)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    path = write_json(Path(scenario.output.report_dir) / scenario.name / "metrics.json", metrics)
    if tracer is not None:
        tracer.write(path.parent / "trace.json")
    return metrics, path, wall


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m sim.cli`; returns the process exit code."""
    parser = build_parser()
    return run_args(parser, parser.parse_args(argv))


def run_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry out parsed simulator options (`--schema`, `--sweep`, or one simulated run)."""
    if args.schema:
        print(f"schema              {write_schema()}")
        return 0
    if args.file is None:
        parser.error("the following arguments are required: file")
    if args.sweep:
        return _sweep(args)
    scenario = load(args)
    if scenario is None:
        return EXIT_BAD_SCENARIO
    try:
        metrics, path, wall = run(scenario, args.trace)
    except SimulationStalled as exc:
        print(f"run-scenario: simulation stalled: {exc}", file=sys.stderr)
        return EXIT_STALLED
    for line in summary_lines(scenario, metrics, wall):
        print(line)
    print(f"metrics             {path}")
    from sim.report import write_report  # after the run: matplotlib costs ~45 MiB of RSS

    report = write_report(
        metrics, path.parent, f"{scenario.name} (sim)", intro=scenario.description
    )
    print(f"report              {report}")
    return 0


def load(args: argparse.Namespace) -> Scenario | None:
    """The scenario named by parsed options with their overrides; None (reported) if invalid."""
    try:
        return load_scenario(args.file, _overrides(args))
    except ScenarioError as exc:
        print(f"run-scenario: invalid scenario\n{exc}", file=sys.stderr)
        return None


def _sweep(args: argparse.Namespace) -> int:
    """Run `--sweep` points in parallel and write one table."""
    try:
        sweeps = parse_sweeps(args.sweep, str(args.file))
        rows, out_dir = run_sweep(args.file, _overrides(args), sweeps)
    except ScenarioError as exc:
        print(f"run-scenario: invalid scenario\n{exc}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    print((out_dir / "sweep.md").read_text(encoding="utf-8"), end="")
    print(f"sweep               {out_dir / 'sweep.md'} (and sweep.csv)")
    return EXIT_STALLED if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
