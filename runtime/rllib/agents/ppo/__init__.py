"""`PPOTrainer` and `DEFAULT_CONFIG`: the pre-2.0 names of PPO (``PPOTrainer(config={...})``)."""

from runtime.rllib.algorithms.ppo import PPO, PPOConfig

PPOTrainer = PPO
"""PPO under its old name; takes a config dict (old keys such as num_workers accepted)."""

DEFAULT_CONFIG = PPOConfig().to_dict()
"""PPO's default settings as a dict."""

__all__ = ["DEFAULT_CONFIG", "PPOTrainer"]
