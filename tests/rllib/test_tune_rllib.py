"""RLlib algorithms are Tune trainables: Tuner("PPO", param_space=config), tune.run(PPOTrainer)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import tune
from runtime.rllib.agents.ppo import PPOTrainer
from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.tune.errors import TuneError

SMALL = {"train_batch_size": 200, "minibatch_size": 100, "num_epochs": 2, "seed": 0}


@pytest.mark.timeout(300)  # each trial's process loads JAX and compiles: slow on a loaded machine
def test_tuner_with_ppo_by_name_and_a_config_object(cluster, tmp_path) -> None:
    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)  # one CPU per trial: both trials run at once
        .training(lr=tune.grid_search([1e-3, 3e-3]), train_batch_size=200, minibatch_size=100)
        .debugging(seed=0)
    )
    grid = tune.Tuner(
        "PPO",
        param_space=config,
        run_config=tune.RunConfig(
            name="ppo", storage_path=str(tmp_path), stop={"training_iteration": 2}, verbose=0
        ),
    ).fit()
    assert len(grid) == 2
    for result in grid:
        assert result.error is None
        assert result.metrics["training_iteration"] == 2
        assert result.metrics["num_env_steps_sampled_lifetime"] == 400
        assert result.metrics["env_runners"]["episode_return_mean"] > 0
    best = grid.get_best_result("env_runners/episode_return_mean", "max")
    assert best.config["lr"] in (1e-3, 3e-3)


@pytest.mark.timeout(300)
def test_tune_run_with_ppotrainer_and_checkpoints(cluster, tmp_path) -> None:
    analysis = tune.run(
        PPOTrainer,
        config={"env": "CartPole-v1", "num_workers": 1, **SMALL},
        stop={"training_iteration": 2},
        storage_path=str(tmp_path),
        name="old_api",
        checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
        verbose=0,
    )
    trial = analysis.trials[0]
    assert trial.status == "TERMINATED"
    assert analysis.trial_dataframes  # progress recorded
    assert trial.checkpoints, "checkpoint_at_end wrote a checkpoint"


def test_old_trainer_api_on_its_own(cluster, tmp_path) -> None:
    trainer = PPOTrainer(config={"num_workers": 0, **SMALL}, env="CartPole-v1")
    try:
        result = trainer.train()
        assert result["training_iteration"] == 1
        path = trainer.save(str(tmp_path / "ckpt"))
        weights = trainer.get_weights()["default_policy"]
        trainer.train()
        trainer.restore(path)
        for name, w in weights.items():
            np.testing.assert_array_equal(trainer.get_weights()["default_policy"][name], w)
        assert trainer.compute_single_action(np.zeros(4), explore=False) in (0, 1)
    finally:
        trainer.stop()


def test_unknown_trainable_name_is_named() -> None:
    with pytest.raises(TuneError, match="unknown trainable 'PPOO'"):
        tune.Tuner("PPOO")
