"""Time real PPO iterations and fit the simulator's RL costs: sampling per env step, learning per sample.

`calibrate_rl` trains a small PPO config (runtime.rllib) at two batch sizes and fits, by
a line through the two steady-state means (iterations after the first, which compiles
the learner's gradient), a runner's sample call as ``sample_fixed_ms +
sample_ms_per_env_step x env steps per runner`` and the learner's update as
``learn_fixed_ms + learn_ms_per_sample_epoch x samples x epochs``
(`runtime.core.rl_shape.RLTimings`). The profile it writes is what an `rl` workload's
``timing_profile`` names; `sim.rl_shape` turns it into ``rollout_ms`` and ``train_ms``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_RL_PROFILE = Path("scenarios") / "calibration" / "rl_ppo_cartpole.yaml"
"""Where `python -m twin.calibrate_rl` writes the profile unless told otherwise."""

BASE_CONFIG: dict[str, Any] = {
    "env": "CartPole-v1",
    "num_env_runners": 2,
    "minibatch_size": 200,
    "num_epochs": 4,
    "lr": 1e-3,
    "lambda_": 0.95,
    "seed": 0,
}
"""The PPO config timed (its batch size varies: `BATCHES`)."""

BATCHES = (400, 1600)
"""The two train_batch_size values the line is fitted through."""


def time_iterations(settings: dict[str, Any], iterations: int) -> dict[str, float]:
    """Steady-state means (ms) of sampling and learning over real PPO iterations of `settings`."""
    import runtime as ray
    from runtime.rllib.algorithms.ppo import PPOConfig

    sampling: list[float] = []
    learning: list[float] = []
    ray.init(num_cpus=max(2, int(settings.get("num_env_runners", 2))))
    try:
        algo = PPOConfig().update_from_dict(settings).build_algo()
        try:
            shape = algo.iteration_shape()
            for _ in range(iterations):
                timers = algo.train()["timers"]
                sampling.append(timers["synch_weights"] + timers["env_runner_sampling_timer"])
                learning.append(timers["learner_update_timer"])
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    return {
        "env_steps_per_runner": shape.env_steps_per_runner,
        "samples_x_epochs": shape.env_steps_per_iteration * shape.num_epochs,
        "sample_ms": 1e3 * statistics.fmean(sampling[1:] or sampling),
        "learn_ms": 1e3 * statistics.fmean(learning[1:] or learning),
    }


def _line(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
    """(intercept, slope) of the line through two points; a negative intercept becomes 0."""
    slope = max(0.0, (y1 - y0) / (x1 - x0))
    intercept = y0 - slope * x0
    if intercept < 0:  # noise: keep the proportional part only
        return 0.0, y1 / x1
    return intercept, slope


def fit(small: dict[str, float], large: dict[str, float]) -> dict[str, float]:
    """The `rl_timing` mapping from timings at two batch sizes."""
    sample_fixed, sample_slope = _line(
        small["env_steps_per_runner"],
        small["sample_ms"],
        large["env_steps_per_runner"],
        large["sample_ms"],
    )
    learn_fixed, learn_slope = _line(
        small["samples_x_epochs"], small["learn_ms"], large["samples_x_epochs"], large["learn_ms"]
    )
    return {
        "sample_ms_per_env_step": round(sample_slope, 6),
        "sample_fixed_ms": round(sample_fixed, 4),
        "learn_ms_per_sample_epoch": round(learn_slope, 6),
        "learn_fixed_ms": round(learn_fixed, 4),
    }


def calibrate_rl(
    out: str | Path = DEFAULT_RL_PROFILE, iterations: int = 4, batches: tuple[int, int] = BATCHES
) -> dict[str, Any]:
    """Time PPO at the two batch sizes, fit, write the profile to `out`; return it."""
    runs = [time_iterations({**BASE_CONFIG, "train_batch_size": b}, iterations) for b in batches]
    profile = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        },
        "config": {"algo": "PPO", **BASE_CONFIG, "train_batch_size": list(batches)},
        "measured": [
            {"train_batch_size": b, **{k: round(v, 4) for k, v in run.items()}}
            for b, run in zip(batches, runs, strict=True)
        ],
        "rl_timing": fit(*runs),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# RL timing profile written by `python -m twin.calibrate_rl`: real PPO iterations\n"
        "# (runtime.rllib) timed on this machine and the per-step costs fitted to them.\n"
        "# Use it in an rl workload with `from_rllib: {...}` and `timing_profile: <this file>`.\n"
    )
    path.write_text(header + yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return profile


def main(argv: list[str] | None = None) -> int:
    """`python -m twin.calibrate_rl [--out PATH] [--iterations N]`."""
    import argparse

    cli = argparse.ArgumentParser(prog="python -m twin.calibrate_rl", description=__doc__)
    cli.add_argument("--out", default=str(DEFAULT_RL_PROFILE))
    cli.add_argument("--iterations", type=int, default=4)
    args = cli.parse_args(argv)
    if args.iterations < 2:
        cli.error("--iterations must be at least 2 (the first compiles and is left out)")
    print("calibrating RL: real PPO iterations at two batch sizes (about 30 s) ...")
    profile = calibrate_rl(args.out, args.iterations)
    sys.stdout.write(yaml.safe_dump(profile["rl_timing"], sort_keys=False))
    print(f"profile             {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
