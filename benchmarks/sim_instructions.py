"""Benchmark: the simulator's instructions per task on the flagship's shape, by cachegrind.

Wall and CPU time move by 10-30% between identical runs on a shared machine; the number
of instructions executed does not. This runs the flagship scenario (simulation only: no
report) with two task counts under ``valgrind --tool=cachegrind --cache-sim=no`` and
prints the difference of their instruction counts divided by the difference of their
task counts, so start-up (imports, building the cluster) cancels out. The figure is
deterministic for a given Python build and code (``PYTHONHASHSEED=0``), which is what
makes it usable to compare commits; docs/design.md ("Simulator speed") has the history.
Needs valgrind; a run of the default sizes takes about 1.5 minutes on a quiet machine.

    python -m benchmarks.sim_instructions                    # 10k and 20k tasks
    python -m benchmarks.sim_instructions --tasks 20000,40000
    python -m benchmarks.sim_instructions --scenario scenarios/chain.yaml
    python -m benchmarks.sim_instructions --pure   # ignore a compiled build (sim.build_fast)

``--run N`` is the inner step (simulate N tasks of the scenario and exit).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "millions_tasks.yaml"


class ValgrindMissing(RuntimeError):
    """valgrind is not installed: instruction counts cannot be taken."""


def simulate(scenario: Path, tasks: int) -> None:
    """Build and run `scenario` with `tasks` tasks (no report written)."""
    from sim.runner import build
    from sim.scenario import load_scenario

    with tempfile.TemporaryDirectory() as out:
        overrides = {
            "workload.tasks": str(tasks),
            "output.progress": "false",
            "output.report_dir": out,
        }
        build(load_scenario(scenario, overrides)).run()


def instructions(scenario: Path, tasks: int) -> int:
    """Instructions cachegrind counts for one `simulate(scenario, tasks)` in a fresh process."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise ValgrindMissing("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={tmp}/cg.out",
            sys.executable,
            "-m",
            "benchmarks.sim_instructions",
            "--scenario",
            str(scenario),
            "--run",
            str(tasks),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"simulation under valgrind failed:\n{proc.stderr[-2000:]}")
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_task(scenario: Path, small: int, large: int) -> tuple[int, int, float]:
    """(instructions at `small`, at `large`, instructions per task between them)."""
    if not 0 < small < large:
        raise ValueError(f"task counts must satisfy 0 < small < large, got {small}, {large}")
    low = instructions(scenario, small)
    high = instructions(scenario, large)
    return low, high, (high - low) / (large - small)


def main(argv: list[str] | None = None) -> int:
    """Print instructions per task of the scenario (or run the inner step with ``--run``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=FLAGSHIP)
    parser.add_argument("--tasks", default="10000,20000", help="two task counts: SMALL,LARGE")
    parser.add_argument(
        "--pure", action="store_true", help="pure Python even where a compiled build exists"
    )
    parser.add_argument("--run", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from sim import fast

    if args.pure:
        os.environ[fast.PURE_ENV] = "1"
    if args.run is not None:
        fast.enable()  # the compiled simulator when built from this source (sim.build_fast)
        simulate(args.scenario, args.run)
        return 0
    try:
        small, large = (int(x) for x in args.tasks.split(","))
    except ValueError:
        parser.error(f"--tasks: expected SMALL,LARGE (two integers), got {args.tasks!r}")
    try:
        low, high, cost = per_task(args.scenario, small, large)
    except (ValgrindMissing, ValueError) as exc:
        print(f"sim_instructions: {exc}", file=sys.stderr)
        return 2
    print(f"{args.scenario.name}: {low:,} instructions at {small:,} tasks, {high:,} at {large:,}")
    compiled = fast.find_build() is not None and not args.pure
    print(f"instructions per task: {cost:,.0f} ({'compiled' if compiled else 'pure Python'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
