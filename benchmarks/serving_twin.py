"""Calibrate the serving sim on one real Serve run, check it on another: reports/serving/twin.md.

1. Real Serve runs `scenarios/serving_small.yaml` (40 req/s); `twin.real_serving` measures the
   model's fixed and per-item costs and the proxy's overheads from it.
2. The calibrated sim predicts a held-out run (seed 2, `--rate` req/s, default 25), which real
   Serve then runs; the table puts the uncalibrated sim, the calibrated sim and real side by
   side. The goal is the calibrated p50 within 20 % of real's.

Run: `python -m benchmarks.serving_twin [--rate R] [--out DIR]` (about a minute).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sim.metrics import write_json
from sim.runner import run_scenario
from sim.scenario import load_scenario
from twin.real_serving import (
    GOAL,
    calibrate_serving,
    calibrated,
    comparison,
    p50_error,
    run_real_serving,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "serving_small.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: calibrate, predict the held-out run, measure it, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=25.0, help="held-out arrival rate (req/s)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "serving")
    args = parser.parse_args(argv)
    base = load_scenario(SCENARIO)
    first = run_real_serving(base)
    fit = calibrate_serving(first)
    held = load_scenario(SCENARIO, {"seed": "2", "workload.arrivals.rate_rps": str(args.rate)})
    sim = run_scenario(held)
    tuned = run_scenario(calibrated(held, fit))
    real = run_real_serving(held)
    err_same = p50_error(run_scenario(calibrated(base, fit)), first)
    err = p50_error(tuned, real)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "twin.json",
        {"fit": fit, "p50_error_fit_run": err_same, "p50_error_held_out": err, "goal": GOAL},
    )
    fitted = ", ".join(f"{k} {v:g}" for k, v in fit.items())
    lines = [
        "# Serving: simulated vs real Serve, calibrated on one run, checked on another",
        "",
        f"Calibration run: `scenarios/serving_small.yaml` on real Serve ({base.description.strip()})",
        f"Measured: {fitted}.",
        "",
        f"Held-out run: the same deployment, seed 2, Poisson at {args.rate:g} req/s. "
        "Regenerate: `python -m benchmarks.serving_twin` (this machine: 2 shared cores; "
        "real tails carry its scheduling noise).",
        "",
        *comparison([("sim", sim), ("calibrated", tuned), ("real", real)]),
        "",
        f"Calibrated p50 vs real on the calibration run: {_pct(err_same)}; on the held-out run: "
        f"{_pct(err)} (goal: within {GOAL:.0%}).",
        "",
    ]
    path = args.out / "twin.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


if __name__ == "__main__":
    raise SystemExit(main())
