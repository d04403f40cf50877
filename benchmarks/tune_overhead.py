"""Tune overhead, twinray beside Ray Tune 2.60: trials/s for 200 one-report trials and a 64-trial ASHA.

Each system runs in its own subprocess (a fresh runtime, 2 CPUs, results in a temporary
directory, verbose=0, bytecode caching on as in a normal install), the same trainables,
and the parent prints one table:

    python3 -m benchmarks.tune_overhead              # twinray and, when installed, Ray Tune
    python3 -m benchmarks.tune_overhead --systems twinray --smoke
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

SYSTEMS = ("twinray", "ray")


def _once(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    tune.report({"score": config["i"]})


def _curve(config: dict[str, Any]) -> None:
    tune = importlib.import_module(config["tune"])
    for step in range(config["max_t"]):
        tune.report({"score": config["q"] * (1 - 0.5 ** (step + 1))})


def _measure(system: str, trials: int, asha_trials: int, max_t: int) -> dict[str, float]:
    ray = importlib.import_module("runtime" if system == "twinray" else "ray")
    tune = importlib.import_module(ray.__name__ + ".tune")
    if system == "ray":
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=2)
    storage = tempfile.mkdtemp(prefix=f"tune_overhead_{system}_")
    try:
        began = time.perf_counter()
        grid = tune.Tuner(
            _once,
            param_space={"i": tune.grid_search(list(range(trials))), "tune": tune.__name__},
            run_config=tune.RunConfig(name="once", storage_path=storage, verbose=0),
        ).fit()
        once_s = time.perf_counter() - began
        once_errors = grid.num_errors + trials - len(grid)
        began = time.perf_counter()
        grid = tune.Tuner(
            _curve,
            param_space={"q": tune.uniform(0, 1), "max_t": max_t, "tune": tune.__name__},
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                num_samples=asha_trials,
                scheduler=tune.schedulers.ASHAScheduler(max_t=max_t, grace_period=1),
            ),
            run_config=tune.RunConfig(name="asha", storage_path=storage, verbose=0),
        ).fit()
        asha_s = time.perf_counter() - began
        asha_errors = grid.num_errors + asha_trials - len(grid)
    finally:
        ray.shutdown()
    return {
        "once_trials_per_s": trials / once_s,
        "once_wall_s": once_s,
        "asha_trials_per_s": asha_trials / asha_s,
        "asha_wall_s": asha_s,
        "once_errors": once_errors,
        "asha_errors": asha_errors,
    }


def _child(argv: list[str]) -> int:
    system, trials, asha_trials, max_t = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    print(json.dumps(_measure(system, trials, asha_trials, max_t)))
    return 0


def _available(system: str) -> bool:
    if system == "twinray":
        return True
    try:
        importlib.import_module("ray.tune")
    except ImportError:
        return False
    return True


def _child_env() -> dict[str, str]:
    """The environment with bytecode caching on, as a normal install runs (Ray's is compiled)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark per system in a subprocess and print the side-by-side table."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--child":
        return _child(args[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="twinray,ray")
    parser.add_argument("--smoke", action="store_true", help="20 and 8 trials, for a quick check")
    parser.add_argument("--trials", type=int, help="trials of the one-report run (default 200)")
    parser.add_argument("--asha-trials", type=int, help="trials of the ASHA run (default 64)")
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args(args)
    systems = [s for s in opts.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    trials, asha_trials, max_t = (20, 8, 4) if opts.smoke else (200, 64, 16)
    trials = opts.trials or trials
    asha_trials = opts.asha_trials or asha_trials
    if trials < 1 or asha_trials < 1:
        parser.error("--trials and --asha-trials must be >= 1")
    figures: dict[str, dict[str, float] | str] = {}
    for system in systems:
        if not _available(system):
            figures[system] = "n/a (not installed)"
            continue
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.tune_overhead", "--child", system]
            + [str(trials), str(asha_trials), str(max_t)],
            capture_output=True,
            text=True,
            timeout=3600,
            env=_child_env(),
        )
        if done.returncode != 0:
            figures[system] = f"n/a (failed: {done.stderr.strip().splitlines()[-1:]})"
            continue
        figures[system] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [
        (f"{trials} trials, one report each (trials/s)", "once_trials_per_s"),
        (f"{asha_trials}-trial ASHA, max_t={max_t} (trials/s)", "asha_trials_per_s"),
    ]
    print(f"{'Tune overhead, 2 CPUs':<44}" + "".join(f"{s:>14}" for s in systems) + "     ratio")
    for label, key in rows:
        cells = []
        for system in systems:
            value = figures[system]
            cells.append(f"{value[key]:>14.1f}" if isinstance(value, dict) else f"{'n/a':>14}")
        ratio = "-"
        tw, peer = figures.get("twinray"), figures.get("ray")
        if isinstance(tw, dict) and isinstance(peer, dict):
            ratio = f"{tw[key] / peer[key]:.1f}x"
        print(f"{label:<44}" + "".join(cells) + f"{ratio:>10}")
    for system in systems:
        value = figures[system]
        if isinstance(value, dict) and (value["once_errors"] or value["asha_errors"]):
            print(
                f"note: {system} had {value['once_errors']} and {value['asha_errors']} "
                "failed or missing trials; its figures count them as done"
            )
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"trials": trials, "asha_trials": asha_trials, "figures": figures}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
