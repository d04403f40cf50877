"""`PPOTrainer` and `DEFAULT_CONFIG`: the pre-2.0 names of PPO (``tune.run(PPOTrainer, config=)``)."""

from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.algorithms.trainable import PPOTrainable


class PPOTrainer(PPOTrainable):
    """PPO under its old name: a Tune trainable taking a config dict (old keys accepted).

    ``PPOTrainer(config={"env": "CartPole-v1"})`` also works on its own: ``train()``,
    ``save()`` (returns the checkpoint directory), ``restore(path)``,
    ``compute_single_action(obs)``, ``stop()``.
    """


DEFAULT_CONFIG = PPOConfig().to_dict()
"""PPO's default settings as a dict."""

__all__ = ["DEFAULT_CONFIG", "PPOTrainer"]
