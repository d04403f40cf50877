"""Tests for distribution samplers: means, bounds and determinism."""

from __future__ import annotations

import math
import random

import pytest

from sim import distributions
from sim.distributions import make_sampler
from sim.scenario import (
    ConstantDist,
    ExponentialDist,
    LognormalDist,
    NormalDist,
    UniformDist,
)

N = 40_000

SPECS = [
    (ConstantDist(dist="constant", value=2.5), 2.5),
    (ExponentialDist(dist="exponential", mean=1.5), 1.5),
    (UniformDist(dist="uniform", low=1.0, high=3.0), 2.0),
    (LognormalDist(dist="lognormal", mean=2.0, sigma=0.5), 2.0),
    (NormalDist(dist="normal", mean=10.0, stddev=1.0), 10.0),
]


@pytest.mark.parametrize(("spec", "mean"), SPECS)
def test_sample_mean_is_close(spec: object, mean: float) -> None:
    draw = make_sampler(spec, random.Random(1))
    values = [draw() for _ in range(N)]
    assert all(v >= 0.0 for v in values)
    assert math.isclose(sum(values) / N, mean, rel_tol=0.03)


@pytest.mark.parametrize(("spec", "mean"), SPECS)
def test_same_seed_same_draws(spec: object, mean: float) -> None:
    a = make_sampler(spec, random.Random(7))
    b = make_sampler(spec, random.Random(7))
    assert [a() for _ in range(100)] == [b() for _ in range(100)]


def test_different_seed_different_draws() -> None:
    spec = ExponentialDist(dist="exponential", mean=1.0)
    a = make_sampler(spec, random.Random(1))
    b = make_sampler(spec, random.Random(2))
    assert [a() for _ in range(10)] != [b() for _ in range(10)]


def test_uniform_stays_in_bounds() -> None:
    draw = make_sampler(UniformDist(dist="uniform", low=1.0, high=3.0), random.Random(3))
    assert all(1.0 <= draw() <= 3.0 for _ in range(1000))


def test_normal_is_truncated_at_zero() -> None:
    draw = make_sampler(NormalDist(dist="normal", mean=0.0, stddev=1.0), random.Random(3))
    assert min(draw() for _ in range(2000)) >= 0.0


def test_bare_number_is_constant() -> None:
    draw = make_sampler(4, random.Random(0))
    assert draw() == 4.0 and isinstance(draw(), float)


def test_unknown_spec_is_rejected() -> None:
    with pytest.raises(TypeError):
        make_sampler({"dist": "constant", "value": 1}, random.Random(0))  # type: ignore[arg-type]


def test_written_out_samplers_draw_what_random_draws() -> None:
    """Exponential, uniform and lognormal samplers spell out `random.Random`'s expressions (so that
    compiled they run no bytecode): they must give the same floats, bit for bit."""
    cases = [
        (ExponentialDist(dist="exponential", mean=1.5), lambda r: r.expovariate(1.0 / 1.5)),
        (ExponentialDist(dist="exponential", mean=1), lambda r: r.expovariate(1.0)),
        (UniformDist(dist="uniform", low=1.0, high=3.0), lambda r: r.uniform(1.0, 3.0)),
        (UniformDist(dist="uniform", low=2, high=5), lambda r: r.uniform(2, 5)),
        (
            LognormalDist(dist="lognormal", mean=1.0, sigma=1.0),
            lambda r: r.lognormvariate(-0.5, 1.0),
        ),
        (
            LognormalDist(dist="lognormal", mean=3.0, sigma=0.25),
            lambda r: r.lognormvariate(math.log(3.0) - 0.5 * 0.25 * 0.25, 0.25),
        ),
    ]
    for spec, reference in cases:
        draw, rng = make_sampler(spec, random.Random(11)), random.Random(11)
        assert [draw() for _ in range(2_000)] == [reference(rng) for _ in range(2_000)], spec


def test_the_lognormal_constant_is_randoms() -> None:
    assert distributions._NV_MAGICCONST == random.NV_MAGICCONST  # type: ignore[attr-defined]
