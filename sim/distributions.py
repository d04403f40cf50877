"""Turn scenario distribution specs into fast, seeded zero-argument sampler closures."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Final

from sim.scenario import (
    ConstantDist,
    ExponentialDist,
    LognormalDist,
    NormalDist,
    UniformDist,
)

Sampler = Callable[[], float]
"""A zero-argument callable returning one draw; called once per simulated task."""

DistModel = ConstantDist | ExponentialDist | UniformDist | LognormalDist | NormalDist

_NV_MAGICCONST: Final = 4 * math.exp(-0.5) / math.sqrt(2.0)
"""`random.NV_MAGICCONST`, the constant of `random.Random.normalvariate`, by its own formula."""


def _constant(spec: ConstantDist, rng: random.Random) -> Sampler:
    """A C-level iterator's `__next__`: the cheapest callable returning a fixed value."""
    return itertools.repeat(float(spec.value)).__next__


def _exponential(spec: ExponentialDist, rng: random.Random) -> Sampler:
    """`rng.expovariate(1 / mean)` written out: compiled (`sim.fast`), it runs no bytecode.

    The expression is CPython's own (`random.Random.expovariate`): the same draws, bit for bit.
    """
    lambd = 1.0 / spec.mean
    uniform01 = rng.random

    def draw() -> float:
        return -math.log(1.0 - uniform01()) / lambd

    return draw


def _uniform(spec: UniformDist, rng: random.Random) -> Sampler:
    """`rng.uniform(low, high)` written out (CPython's expression, the same draws)."""
    low, high = spec.low, spec.high
    uniform01 = rng.random

    def draw() -> float:
        return low + (high - low) * uniform01()

    return draw


def _lognormal(spec: LognormalDist, rng: random.Random) -> Sampler:
    """`rng.lognormvariate(mu, sigma)`, mu chosen so that the distribution's mean is `spec.mean`.

    Written out (CPython's `normalvariate`: Kinderman and Monahan's ratio of uniforms, then
    `exp`) so that compiled it runs no bytecode; the same draws, bit for bit.
    """
    sigma = spec.sigma
    mu = math.log(spec.mean) - 0.5 * sigma * sigma
    uniform01 = rng.random

    def draw() -> float:
        while True:
            u1 = uniform01()
            u2 = 1.0 - uniform01()
            z = _NV_MAGICCONST * (u1 - 0.5) / u2
            if z * z / 4.0 <= -math.log(u2):
                return math.exp(mu + z * sigma)

    return draw


def _normal(spec: NormalDist, rng: random.Random) -> Sampler:
    """Normal draws truncated at 0 by redrawing negatives.

    The mean of the result exceeds `spec.mean` when `stddev` is comparable to `mean`.
    """
    if spec.stddev == 0:
        return itertools.repeat(float(spec.mean)).__next__
    gauss, mean, stddev = rng.gauss, spec.mean, spec.stddev

    def draw() -> float:
        x = gauss(mean, stddev)
        while x < 0.0:
            x = gauss(mean, stddev)
        return x

    return draw


_BUILDERS: dict[type, Callable[..., Sampler]] = {
    ConstantDist: _constant,
    ExponentialDist: _exponential,
    UniformDist: _uniform,
    LognormalDist: _lognormal,
    NormalDist: _normal,
}


def make_sampler(spec: DistModel | float, rng: random.Random) -> Sampler:
    """Return a sampler for `spec` (a distribution model or a bare number) drawing from `rng`.

    Samplers are deterministic for a seeded `rng`; several samplers may share one `rng`, in
    which case their draws interleave in call order.
    """
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return itertools.repeat(float(spec)).__next__
    try:
        builder = _BUILDERS[type(spec)]
    except KeyError:
        raise TypeError(f"not a distribution spec: {spec!r}") from None
    return builder(spec, rng)
