"""Utilities of `runtime.rllib` (errors), under Ray RLlib's module names."""
