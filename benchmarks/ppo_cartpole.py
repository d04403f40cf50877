"""PPO on CartPole-v1 with 2 env-runner actors on 2 CPUs until the mean return reaches 475.

Prints one line per iteration and, at the end, the env steps and wall time it took (goal:
within 300k steps and 10 minutes). ``--system rllib`` runs Ray RLlib 2.60 with the same
settings (2 env runners of 1 environment, the same batch, minibatch, epochs, learning rate,
GAE and clipping, a 64x64 tanh MLP as twinray's default; the `peers` extra with torch and
dm-tree), ``--system both`` runs the two one after the other and prints them side by side.
Without RLlib the published reference is RLlib's tuned example
``rllib/tuned_examples/ppo/cartpole_ppo.py``: a mean return of 450 within 200k env steps.

Run: ``python -m benchmarks.ppo_cartpole [--system twinray|rllib|both] [--target 475]
[--max-steps 300000] [--seed 0] [--json PATH]``.
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

SETTINGS: dict[str, Any] = {
    "lr": 5e-4,
    "train_batch_size": 2000,
    "minibatch_size": 250,
    "num_epochs": 8,
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "vf_loss_coeff": 0.5,
    "entropy_coeff": 0.0,
}
"""The training settings both systems get (standard CartPole PPO values)."""


def config(seed: int) -> Any:
    """The PPO settings of the benchmark (standard CartPole PPO values)."""
    from runtime.rllib.algorithms.ppo import PPOConfig

    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .training(**SETTINGS)
        .debugging(seed=seed)
    )


def rllib_config(seed: int) -> Any:
    """The same settings for Ray RLlib 2.60 (new API stack, its default PPO learner)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .training(**SETTINGS)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh"))
        .debugging(seed=seed)
    )


def _lifetime_steps(result: dict[str, Any]) -> int:
    if "num_env_steps_sampled_lifetime" in result:
        return int(result["num_env_steps_sampled_lifetime"])
    return int(result["env_runners"]["num_env_steps_sampled_lifetime"])


def _timer(result: dict[str, Any], name: str) -> float:
    return float(result.get("timers", {}).get(name, float("nan")))


def run(
    target: float, max_steps: int, seed: int, max_seconds: float, system: str = "twinray"
) -> dict[str, Any]:
    """Train until `target`, `max_steps` or `max_seconds`; the figures of the run."""
    if system == "rllib":
        import ray as runtime  # Ray itself, same calls

        make = rllib_config
    else:
        import runtime  # type: ignore[no-redef]

        make = config
    runtime.init(num_cpus=2)
    start = time.perf_counter()
    algo = make(seed).build_algo()
    built = time.perf_counter() - start
    curve: list[tuple[int, float]] = []
    reached = False
    try:
        while True:
            result = algo.train()
            steps = _lifetime_steps(result)
            mean = result["env_runners"]["episode_return_mean"]
            curve.append((steps, mean))
            elapsed = time.perf_counter() - start
            print(
                f"{system:8s} iter {result['training_iteration']:3d}  steps {steps:7d}  "
                f"return_mean {mean:6.1f}  iter {result['time_this_iter_s']:5.2f}s  "
                f"(sample {_timer(result, 'env_runner_sampling_timer'):.2f}s, "
                f"learn {_timer(result, 'learner_update_timer'):.2f}s)  total {elapsed:6.1f}s",
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
        "system": system,
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


def _line(figures: dict[str, Any]) -> str:
    verdict = "reached" if figures["reached"] else "did NOT reach"
    return (
        f"{figures['system']}: PPO CartPole-v1, 2 env runners, 2 CPUs: {verdict} mean return "
        f"{figures['target']:g} after {figures['env_steps']} env steps and "
        f"{figures['wall_s']:.1f} s wall ({figures['iterations']} iterations, build "
        f"{figures['build_s']:.1f} s; goal: <= 300000 steps, <= 600 s; load average "
        f"{figures['load_average'][0]:.1f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every system run reached the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("twinray", "rllib", "both"), default="twinray")
    parser.add_argument("--target", type=float, default=GYMNASIUM_THRESHOLD)
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the figures (and the curves) here")
    args = parser.parse_args(argv)
    systems = ("twinray", "rllib") if args.system == "both" else (args.system,)
    runs = [run(args.target, args.max_steps, args.seed, args.max_seconds, s) for s in systems]
    for figures in runs:
        print(_line(figures))
    if len(runs) == 2 and all(f["reached"] for f in runs):
        ours, theirs = runs
        print(
            f"twinray vs RLlib: {ours['env_steps'] / theirs['env_steps']:.2f}x the env steps, "
            f"{theirs['wall_s'] / ours['wall_s']:.2f}x faster in wall time"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(runs[0] if len(runs) == 1 else runs, fh, indent=2)
    return 0 if all(f["reached"] for f in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
