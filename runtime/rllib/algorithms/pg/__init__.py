"""Policy gradient (`from runtime.rllib.algorithms.pg import PG, PGConfig`)."""

from runtime.rllib.algorithms.pg.pg import PG, PGConfig

__all__ = ["PG", "PGConfig"]
