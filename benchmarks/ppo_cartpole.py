"""PPO on CartPole-v1 with 2 env-runner actors on 2 CPUs until the mean return reaches 475.

Prints one line per iteration and, at the end, the env steps and wall time it took (goal:
within 300k steps and 10 minutes). Ray RLlib cannot run here (it needs torch and dm-tree,
not installed), so there is no side-by-side run: the published reference is RLlib's tuned
example ``rllib/tuned_examples/ppo/cartpole_ppo.py``, whose pass criterion is a mean return
of 450 within 200k env steps (a lower target than gymnasium's 475).

Run: ``python -m benchmarks.ppo_cartpole [--target 475] [--max-steps 300000] [--seed 0]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

GYMNASIUM_THRESHOLD = 475.0
"""CartPole-v1's reward threshold in Gymnasium's registry."""


def config(seed: int) -> Any:
    """The PPO settings of the benchmark (standard CartPole PPO values)."""
    from runtime.rllib.algorithms.ppo import PPOConfig

    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .training(
            lr=5e-4,
            train_batch_size=2000,
            minibatch_size=250,
            num_epochs=8,
            gamma=0.99,
            lambda_=0.95,
            clip_param=0.2,
            vf_loss_coeff=0.5,
            entropy_coeff=0.0,
        )
        .debugging(seed=seed)
    )


def run(target: float, max_steps: int, seed: int, max_seconds: float) -> dict[str, Any]:
    """Train until `target`, `max_steps` or `max_seconds`; the figures of the run."""
    import runtime

    runtime.init(num_cpus=2)
    start = time.perf_counter()
    algo = config(seed).build_algo()
    built = time.perf_counter() - start
    curve: list[tuple[int, float]] = []
    reached = False
    try:
        while True:
            result = algo.train()
            steps = result["num_env_steps_sampled_lifetime"]
            mean = result["env_runners"]["episode_return_mean"]
            curve.append((steps, mean))
            elapsed = time.perf_counter() - start
            print(
                f"iter {result['training_iteration']:3d}  steps {steps:7d}  "
                f"return_mean {mean:6.1f}  iter {result['time_this_iter_s']:5.2f}s  "
                f"(sample {result['timers']['env_runner_sampling_timer']:.2f}s, "
                f"learn {result['timers']['learner_update_timer']:.2f}s)  total {elapsed:6.1f}s",
                flush=True,
            )
            if mean >= target:
                reached = True
                break
            if steps >= max_steps or elapsed >= max_seconds:
                break
    finally:
        algo.stop()
        runtime.shutdown()
    wall = time.perf_counter() - start
    return {
        "target": target,
        "reached": reached,
        "env_steps": curve[-1][0],
        "wall_s": wall,
        "build_s": built,
        "iterations": len(curve),
        "final_return_mean": curve[-1][1],
        "load_average": os.getloadavg(),
        "curve": curve,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when the target was reached."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=GYMNASIUM_THRESHOLD)
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the figures (and the curve) here")
    args = parser.parse_args(argv)
    figures = run(args.target, args.max_steps, args.seed, args.max_seconds)
    verdict = "reached" if figures["reached"] else "did NOT reach"
    print(
        f"PPO CartPole-v1, 2 env runners, 2 CPUs: {verdict} mean return {args.target:g} "
        f"after {figures['env_steps']} env steps and {figures['wall_s']:.1f} s wall "
        f"({figures['iterations']} iterations; goal: <= 300000 steps, <= 600 s; load average "
        f"{figures['load_average'][0]:.1f})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0 if figures["reached"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
