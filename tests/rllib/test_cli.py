"""`twinray rllib train`: a line per iteration, stops on --stop, saves a checkpoint; bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("gymnasium")


def _twinray(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_train_prints_a_line_per_iteration_and_stops(tmp_path) -> None:
    config = {"train_batch_size": 200, "minibatch_size": 100, "num_epochs": 1, "seed": 0}
    done = _twinray(
        "rllib",
        "train",
        "--run",
        "PPO",
        "--env",
        "CartPole-v1",
        "--stop",
        json.dumps({"training_iteration": 3}),
        "--config",
        json.dumps(config),
        "--num-cpus",
        "2",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("iter")]
    assert len(lines) == 3
    assert "return_mean" in lines[0] and "steps      600" in lines[-1]
    assert (tmp_path / "ckpt" / "algorithm_state.pkl").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "DQN", "--env", "CartPole-v1"], "--run 'DQN' is not one of PPO, PG"),
        (["--run", "PPO", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
        (["--run", "PPO", "--env", "CartPole-v1", "--stop", "[1]"], "--stop must be a JSON object"),
        (["--run", "PG", "--env", "CartPole-v1", "--config", '{"lr": -1}'], "lr must be"),
    ],
)
def test_bad_input_exits_2_with_the_reason(args, message) -> None:
    done = _twinray("rllib", "train", "--num-cpus", "1", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_memory_subcommand_is_still_there() -> None:
    done = _twinray("memory", "--help", timeout=60)
    assert done.returncode == 0 and "--stats-only" in done.stdout
