"""Learning curves that depend on a trial's hyperparameters (the simulated PBT workload's).

A trial's metric accumulates a gain per epoch: the product over its hyperparameters of
how close each value is to that epoch's best value. The best value of a hyperparameter
moves over the run from the top of its range to the bottom (as a learning rate that
should decay), in log space for a ``loguniform`` range or a list of positive numbers
spanning a factor of 10 or more. A list of strings prefers its earlier values. So a
fixed config learns well only for part of the run and a trial that exploits a better one
and explores around it learns faster: what PBT is for. The functions are pure and use
only ``math``, so a real trainable can import them and report the very same curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.core.tune.search_space import (
    Domain,
    LogRandInt,
    LogUniform,
    QLogUniform,
    QRandInt,
    QUniform,
    RandInt,
    Uniform,
)

#: the width of a hyperparameter's "good" band, as a fraction of its (transformed) range
WIDTH = 0.3


@dataclass(frozen=True)
class Axis:
    """One hyperparameter's range for the curve: numeric (``lower``..``upper``) or ordered values."""

    lower: float = 0.0
    upper: float = 1.0
    log: bool = False
    values: tuple[Any, ...] = ()


def axes(mutations: Mapping[str, Any]) -> dict[str, Axis]:
    """The curve's axis of each hyperparameter of ``mutations`` (PBT's, core domains or lists)."""
    result: dict[str, Axis] = {}
    for key, space in mutations.items():
        if isinstance(space, LogUniform | QLogUniform | LogRandInt):
            result[key] = Axis(float(space.lower), float(space.upper), log=True)
        elif isinstance(space, Uniform | QUniform | RandInt | QRandInt):
            result[key] = Axis(float(space.lower), float(space.upper))
        elif isinstance(space, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in space
        ):
            lower, upper = float(min(space)), float(max(space))
            log = lower > 0 and upper >= 10 * lower
            result[key] = Axis(lower, upper, log=log)
        elif isinstance(space, list | tuple):
            result[key] = Axis(values=tuple(space))
        elif isinstance(space, Domain):
            raise ValueError(f"no learning curve for {key}: {type(space).__name__} ranges")
        else:
            raise ValueError(f"no learning curve for {key}: {space!r} is not a range or list")
    return result


def _closeness(axis: Axis, value: Any, position: float) -> float:
    if axis.values:
        index = axis.values.index(value) if value in axis.values else len(axis.values)
        return 1.0 - 0.5 * index / len(axis.values)
    if axis.log:
        lower, upper = math.log(axis.lower), math.log(axis.upper)
        x = math.log(value) if value > 0 else lower - (upper - lower)
    else:
        lower, upper, x = axis.lower, axis.upper, float(value)
    span = (upper - lower) or 1.0
    best = lower + position * (upper - lower)
    return math.exp(-(((x - best) / (WIDTH * span)) ** 2))


def gain(curve_axes: Mapping[str, Axis], config: Mapping[str, Any], t: int, epochs: int) -> float:
    """What epoch ``t`` (1-based, of ``epochs``) adds to the metric of a trial with ``config``."""
    position = 1.0 - (t - 1) / max(epochs - 1, 1)  # 1: top of each range, 0: bottom
    value = 1.0
    for key, axis in curve_axes.items():
        value *= _closeness(axis, config[key], position)
    return value


def score_after(
    curve_axes: Mapping[str, Axis], config: Mapping[str, Any], start: float, t: int, epochs: int
) -> float:
    """The metric after epoch ``t`` of a trial whose metric was ``start`` before it."""
    return start + gain(curve_axes, config, t, epochs)


__all__ = ["WIDTH", "Axis", "axes", "gain", "score_after"]
