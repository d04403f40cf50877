"""The older trainer names (`runtime.rllib.agents.ppo.PPOTrainer`), as Ray RLlib 1.x had them."""
