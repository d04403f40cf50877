"""The `run-scenario` command: load a scenario, simulate it, print a summary, write metrics.json."""

from __future__ import annotations

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

EXIT_BAD_SCENARIO = 2
EXIT_STALLED = 1


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="run-scenario", description="Run a scenario in the simulated cluster."
    )
    parser.add_argument("file", type=Path, help="scenario YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a scenario field, e.g. --set cluster.nodes=50 (repeatable)",
    )
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, help="report directory (default: output.report_dir)")
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


def _fmt_s(seconds: float | None) -> str:
    """Seconds with a readable unit."""
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.3f} s"


def summary_lines(scenario: Scenario, metrics: dict[str, Any], wall_s: float) -> list[str]:
    """The human-readable run summary."""
    latency = metrics["latency_s"]
    return [
        f"scenario            {scenario.name} (seed {scenario.seed})",
        f"tasks               {metrics['tasks']:,}",
        f"simulated makespan  {_fmt_s(metrics['makespan_s'])}",
        f"throughput          {metrics['throughput_tps']:,.0f} tasks per simulated s",
        f"latency p50 / p99   {_fmt_s(latency['p50'])} / {_fmt_s(latency['p99'])}",
        f"CPU utilisation     {metrics['cpu_utilization'] * 100:.1f} %",
        f"spilled tasks       {metrics['spilled_tasks']:,}",
        f"messages            {metrics['messages']:,}",
        f"wall time           {wall_s:.2f} s",
        f"peak RSS            {_peak_rss_mb():.0f} MiB",
    ]


def run(scenario: Scenario) -> tuple[dict[str, Any], Path, float]:
    """Simulate `scenario` with an optional progress bar; write metrics.json.

    Returns (metrics, path of metrics.json, wall seconds).
    """
    started = time.perf_counter()
    sim = build(scenario)
    total = sim.completion.total if sim.completion is not None else 0
    bar = None
    progress = None
    if scenario.output.progress:
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
    return metrics, path, wall


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `run-scenario`; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        scenario = load_scenario(args.file, _overrides(args))
    except ScenarioError as exc:
        print(f"run-scenario: invalid scenario\n{exc}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    try:
        metrics, path, wall = run(scenario)
    except SimulationStalled as exc:
        print(f"run-scenario: simulation stalled: {exc}", file=sys.stderr)
        return EXIT_STALLED
    for line in summary_lines(scenario, metrics, wall):
        print(line)
    print(f"metrics             {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
