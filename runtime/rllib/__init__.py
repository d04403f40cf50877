"""RLlib on twinray: PPO and policy gradient on Gymnasium, env runners as actors (`runtime.rllib`).

Importing this package imports neither Gymnasium nor JAX: they load when an algorithm is
built (the driver) or inside the env-runner actors, so `import runtime` stays light and
JAX never starts in a process that forks.
"""

from runtime.rllib.utils.error import EnvError, RLlibConfigError

__all__ = ["EnvError", "RLlibConfigError"]
