"""`twinray rllib train --run PPO --env CartPole-v1 --stop '{...}'`: train and print each iteration."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from runtime.rllib.utils.error import EnvError, RLlibConfigError

ALGORITHMS = ("PPO", "PG")
"""What ``--run`` accepts."""

DEFAULT_STOP = {"training_iteration": 10}
"""When training stops if ``--stop`` is not given."""


def add_parser(commands: Any) -> None:
    """Add the ``rllib`` command (with its ``train`` subcommand) to the `twinray` parser."""
    rllib = commands.add_parser(
        "rllib", help="train reinforcement-learning algorithms", description="RLlib on twinray."
    )
    sub = rllib.add_subparsers(dest="rllib_command", required=True)
    train = sub.add_parser(
        "train",
        help="train an algorithm on an environment, one line per iteration",
        description="Train --run ALGO on --env until a --stop criterion holds (any result "
        "key, nested keys joined by '/'), then save a checkpoint.",
    )
    train.add_argument(
        "--run", "--algo", dest="run", required=True, help=f"the algorithm: {', '.join(ALGORITHMS)}"
    )
    train.add_argument("--env", required=True, help="a Gymnasium environment id, e.g. CartPole-v1")
    train.add_argument(
        "--stop",
        default=json.dumps(DEFAULT_STOP),
        help="JSON dict of result key -> threshold, e.g. '{\"env_runners/episode_return_mean\": 475}'",
    )
    train.add_argument(
        "--config", default="{}", help="JSON dict of algorithm settings, e.g. '{\"lr\": 0.0003}'"
    )
    train.add_argument("--num-cpus", type=int, default=None, help="CPUs for twinray (default: all)")
    train.add_argument("--checkpoint-dir", default=None, help="where to save the final checkpoint")


def _json_dict(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} is not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object, got {text!r}")
    return value


def _lookup(result: dict[str, Any], key: str) -> Any:
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _stop_reached(result: dict[str, Any], stop: dict[str, Any]) -> bool:
    for key, threshold in stop.items():
        value = _lookup(result, key)
        if isinstance(value, int | float) and not math.isnan(value) and value >= threshold:
            return True
    return False


def _line(result: dict[str, Any]) -> str:
    return (
        f"iter {result['training_iteration']:4d}  "
        f"steps {result['num_env_steps_sampled_lifetime']:8.0f}  "
        f"return_mean {result['env_runners']['episode_return_mean']:8.2f}  "
        f"time {result['time_total_s']:7.1f}s"
    )


def train(args: argparse.Namespace) -> int:
    """Run ``twinray rllib train``; 0 when a stop criterion was met, 2 on bad input."""
    import runtime

    try:
        stop = _json_dict(args.stop, "--stop")
        settings = _json_dict(args.config, "--config")
        if args.run not in ALGORITHMS:
            raise ValueError(f"--run {args.run!r} is not one of {', '.join(ALGORITHMS)}")
    except ValueError as exc:
        print(f"twinray rllib train: {exc}", file=sys.stderr)
        return 2
    config_class = _config_class(args.run)
    runtime.init(**({"num_cpus": args.num_cpus} if args.num_cpus is not None else {}))
    try:
        try:
            config = config_class().update_from_dict(settings).environment(args.env)
            algo = config.build_algo()
        except (EnvError, RLlibConfigError) as exc:
            print(f"twinray rllib train: {exc}", file=sys.stderr)
            return 2
        stop_keys = list(stop)
        result: dict[str, Any] = {}
        while True:
            result = algo.train()
            print(_line(result), flush=True)
            missing = [key for key in stop_keys if _lookup(result, key) is None]
            if missing:
                print(
                    f"twinray rllib train: --stop keys {missing} are not in the results "
                    f"(top-level keys: {sorted(result)})",
                    file=sys.stderr,
                )
                return 2
            if _stop_reached(result, stop):
                break
        path = algo.save_to_path(args.checkpoint_dir)
        print(f"checkpoint saved to {path}")
        algo.stop()
        return 0
    finally:
        runtime.shutdown()


def _config_class(name: str) -> Any:
    if name == "PPO":
        from runtime.rllib.algorithms.ppo import PPOConfig

        return PPOConfig
    from runtime.rllib.algorithms.pg import PGConfig

    return PGConfig


def main(args: argparse.Namespace) -> int:
    """Dispatch ``twinray rllib <subcommand>``."""
    handlers = {"train": train}
    return handlers[args.rllib_command](args)
