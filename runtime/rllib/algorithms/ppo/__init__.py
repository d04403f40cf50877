"""PPO (`from runtime.rllib.algorithms.ppo import PPO, PPOConfig`)."""

from runtime.rllib.algorithms.ppo.ppo import PPO, PPOConfig

__all__ = ["PPO", "PPOConfig"]
