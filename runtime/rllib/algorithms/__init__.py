"""The algorithms: PPO (`runtime.rllib.algorithms.ppo`) and policy gradient (`...pg`)."""
