"""`PGTrainer` and `DEFAULT_CONFIG`: the pre-2.0 names of the policy-gradient algorithm."""

from runtime.rllib.algorithms.pg import PG, PGConfig

PGTrainer = PG
"""PG under its old name; takes a config dict."""

DEFAULT_CONFIG = PGConfig().to_dict()
"""PG's default settings as a dict."""

__all__ = ["DEFAULT_CONFIG", "PGTrainer"]
