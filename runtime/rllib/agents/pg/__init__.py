"""`PGTrainer` and `DEFAULT_CONFIG`: the pre-2.0 names of the policy-gradient algorithm."""

from runtime.rllib.algorithms.pg import PGConfig
from runtime.rllib.algorithms.trainable import PGTrainable


class PGTrainer(PGTrainable):
    """PG under its old name: a Tune trainable taking a config dict."""


DEFAULT_CONFIG = PGConfig().to_dict()
"""PG's default settings as a dict."""

__all__ = ["DEFAULT_CONFIG", "PGTrainer"]
