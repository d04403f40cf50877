"""Tune search spaces: every domain's seeded sampling, grid x num_samples order, bad spaces."""

from __future__ import annotations

import math
import random

import pytest

from runtime.core import tune
from runtime.core.tune.search_space import generate_variants


def _draws(domain: tune.Domain, n: int = 400, seed: int = 7) -> list:
    rng = random.Random(seed)
    return [domain.sample({}, rng) for _ in range(n)]


@pytest.mark.parametrize(
    "domain",
    [
        tune.uniform(-2.0, 3.0),
        tune.quniform(0.0, 10.0, 0.5),
        tune.loguniform(1e-4, 1e-1),
        tune.randint(2, 7),
        tune.randn(1.0, 2.0),
        tune.choice(["a", "b", 3]),
        tune.qloguniform(1.0, 100.0, 1.0),
        tune.lograndint(1, 1000),
        tune.qrandint(0, 100, 5),
        tune.qlograndint(10, 1000, 10),
        tune.qrandn(0.0, 3.0, 0.5),
    ],
)
def test_every_domain_is_deterministic_for_a_seed(domain: tune.Domain) -> None:
    assert _draws(domain, seed=1) == _draws(domain, seed=1)
    assert _draws(domain, seed=1) != _draws(domain, seed=2)


def test_uniform_stays_in_bounds_and_covers_them() -> None:
    values = _draws(tune.uniform(-2.0, 3.0))
    assert all(-2.0 <= v < 3.0 and isinstance(v, float) for v in values)
    assert min(values) < -1.5 and max(values) > 2.5


def test_quniform_gives_multiples_of_q_within_bounds() -> None:
    values = _draws(tune.quniform(0.0, 10.0, 0.5))
    assert all(0.0 <= v <= 10.0 and math.isclose(v / 0.5, round(v / 0.5)) for v in values)
    assert len(set(values)) > 15


def test_quniform_rejects_bounds_not_divisible_by_q() -> None:
    with pytest.raises(tune.SearchSpaceError, match="not divisible"):
        tune.quniform(0.1, 10.0, 0.25)


def test_loguniform_is_uniform_in_log_space() -> None:
    values = _draws(tune.loguniform(1e-4, 1e-1), n=2000)
    assert all(1e-4 <= v < 1e-1 for v in values)
    below_1e_3 = sum(v < 1e-3 for v in values) / len(values)
    assert 0.25 < below_1e_3 < 0.42  # a third of the log range
    with pytest.raises(tune.SearchSpaceError, match="greater than 0"):
        tune.loguniform(0.0, 1.0)


def test_randint_upper_is_exclusive() -> None:
    values = _draws(tune.randint(2, 7))
    assert set(values) == {2, 3, 4, 5, 6}
    assert all(isinstance(v, int) for v in values)
    with pytest.raises(tune.SearchSpaceError, match="lower < upper"):
        tune.randint(3, 3)


def test_randn_has_the_mean_and_sd_asked() -> None:
    values = _draws(tune.randn(1.0, 2.0), n=4000)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    assert abs(mean - 1.0) < 0.15 and abs(sd - 2.0) < 0.15


def test_choice_draws_every_category() -> None:
    assert set(_draws(tune.choice(["a", "b", 3]))) == {"a", "b", 3}
    with pytest.raises(tune.SearchSpaceError, match="at least one"):
        tune.choice([])


def test_random_domain_without_rng_is_a_clear_error() -> None:
    with pytest.raises(tune.SearchSpaceError, match="pass an rng"):
        list(generate_variants({"x": tune.uniform(0, 1)}))


def test_grid_times_num_samples_in_rays_order() -> None:
    space = {
        "b": tune.grid_search([1, 2]),
        "a": tune.grid_search(["x", "y"]),
        "nested": {"c": tune.grid_search([7, 8])},
        "u": tune.uniform(0, 1),
    }
    assert tune.count_variants(space, num_samples=3) == 24
    gen = tune.BasicVariantGenerator(rng=random.Random(0))
    gen.add_configurations(space, num_samples=3)
    configs = []
    while (config := gen.suggest(f"t{len(configs)}")) != tune.FINISHED:
        configs.append(config)
    assert len(configs) == gen.total_samples == 24
    # grids sorted by path, the first ("a") varying fastest; the whole grid once per sample
    one_pass = [(c["a"], c["b"], c["nested"]["c"]) for c in configs[:8]]
    assert one_pass == [(a, b, c) for c in (7, 8) for b in (1, 2) for a in ("x", "y")]
    assert [(c["a"], c["b"], c["nested"]["c"]) for c in configs[8:16]] == one_pass
    # fresh random draws for every trial
    assert len({c["u"] for c in configs}) == 24


def test_sample_from_sees_the_resolved_config_as_config_or_spec() -> None:
    space = {
        "b": tune.grid_search([1, 2]),
        "by_spec": tune.sample_from(lambda spec: spec.config.b * 10),
        "later": tune.sample_from(lambda config: config["by_spec"] + config["nested"]["n"]),
        "nested": {"n": tune.randint(0, 5)},
        "constant": tune.sample_from(lambda: "k"),
    }
    configs = [c for _, c in generate_variants(space, random.Random(3))]
    assert [c["by_spec"] for c in configs] == [10, 20]
    assert all(c["later"] == c["by_spec"] + c["nested"]["n"] for c in configs)
    assert all(c["constant"] == "k" for c in configs)


def test_resolved_vars_name_every_resolved_path() -> None:
    ((resolved, config),) = generate_variants(
        {"a": {"b": tune.choice([5])}, "c": 1}, random.Random(0)
    )
    assert resolved == {("a", "b"): 5}
    assert config == {"a": {"b": 5}, "c": 1}


def test_constants_lists_and_nested_values_are_kept() -> None:
    space = {"layers": [tune.choice([16]), 32], "name": "m", "opt": {"lr": 0.1}}
    ((_, config),) = generate_variants(space, random.Random(0))
    assert config == {"layers": [16, 32], "name": "m", "opt": {"lr": 0.1}}
    assert isinstance(space["layers"][0], tune.Domain)  # the space itself is not touched


def test_circular_sample_from_is_a_clear_error() -> None:
    space = {
        "a": tune.sample_from(lambda c: c["b"]),
        "b": tune.sample_from(lambda c: c["a"]),
    }
    with pytest.raises(tune.SearchSpaceError, match="could not resolve"):
        list(generate_variants(space, random.Random(0)))


def test_failing_sample_from_names_the_path() -> None:
    with pytest.raises(tune.SearchSpaceError, match="x/y"):
        list(generate_variants({"x": {"y": tune.sample_from(lambda c: 1 / 0)}}))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"a": {"eval": "spec.config.b"}}, "eval"),
        ({"a": {"grid_search": 3}}, "needs a list"),
        ({"a": {"grid_search": "abc"}}, "needs a list"),
    ],
)
def test_unknown_values_in_a_space_are_clear_errors(space: dict, message: str) -> None:
    with pytest.raises(tune.SearchSpaceError, match=message):
        list(generate_variants(space, random.Random(0)))


def test_a_ray_domain_in_a_space_is_a_clear_error() -> None:
    try:
        from ray import tune as ray_tune
    except ImportError:
        pytest.skip("ray.tune not importable")
    with pytest.raises(tune.SearchSpaceError, match="runtime.tune's domains"):
        list(generate_variants({"x": ray_tune.uniform(0, 1)}, random.Random(0)))


def test_grid_search_needs_a_list() -> None:
    with pytest.raises(tune.SearchSpaceError, match="needs a list"):
        tune.grid_search(5)  # type: ignore[arg-type]
    assert tune.grid_search(range(3)) == {"grid_search": [0, 1, 2]}


def test_sample_from_needs_a_callable_of_zero_or_one_argument() -> None:
    with pytest.raises(tune.SearchSpaceError, match="0 or 1 parameters"):
        tune.sample_from(lambda a, b: a)
    with pytest.raises(tune.SearchSpaceError, match="callable"):
        tune.sample_from(3)  # type: ignore[arg-type]


def test_grid_only_variants_match_rays_generate_variants() -> None:
    try:
        from ray import tune as ray_tune
        from ray.tune.search.variant_generator import generate_variants as ray_generate
    except ImportError:
        pytest.skip("ray.tune not importable")

    def space(grid):  # the same space built with either library's grid_search
        return {
            "z": grid([1, 2, 3]),
            "a": {"inner": grid(["p", "q"]), "k": 4},
            "m": grid([0.1, 0.2]),
        }

    ours = [c for _, c in generate_variants(space(tune.grid_search))]
    theirs = [c for _, c in ray_generate(space(ray_tune.grid_search))]
    assert ours == theirs and len(ours) == 12


# (our domain, Ray's constructor name and arguments): the values each can draw
_REACHABLE = [
    (tune.qrandint(0, 10, 5), "qrandint", (0, 10, 5), {0, 5, 10}),
    (tune.qrandint(0, 3), "qrandint", (0, 3), {0, 1, 2}),  # q=1: upper exclusive
    (tune.qrandint(1, 9, 4), "qrandint", (1, 9, 4), {4, 8}),  # bounds snap inwards
    (tune.qlograndint(10, 40, 10), "qlograndint", (10, 40, 10), {10, 20, 30, 40}),
    (tune.lograndint(1, 5), "lograndint", (1, 5), {1, 2, 3, 4}),
    (tune.qloguniform(1.0, 4.0, 1.0), "qloguniform", (1.0, 4.0, 1.0), {1.0, 2.0, 3.0, 4.0}),
    (tune.quniform(0.0, 1.0, 0.25), "quniform", (0.0, 1.0, 0.25), {0, 0.25, 0.5, 0.75, 1}),
    (tune.randint(-2, 2), "randint", (-2, 2), {-2, -1, 0, 1}),
]


@pytest.mark.parametrize(("domain", "name", "args", "values"), _REACHABLE)
def test_quantized_and_integer_domains_reach_exactly_their_values(
    domain: tune.Domain, name: str, args: tuple, values: set
) -> None:
    assert set(_draws(domain, n=2000)) == values


@pytest.mark.parametrize(("domain", "name", "args", "values"), _REACHABLE)
def test_rays_domains_reach_the_same_values(
    domain: tune.Domain, name: str, args: tuple, values: set
) -> None:
    try:
        from ray import tune as ray_tune
    except ImportError:
        pytest.skip("ray.tune not importable")
    ray_domain = getattr(ray_tune, name)(*args)
    assert set(ray_domain.sample(size=2000, random_state=0)) == values


def test_qrandn_gives_multiples_of_q() -> None:
    values = _draws(tune.qrandn(1.0, 3.0, 0.5))
    assert all(math.isclose(v / 0.5, round(v / 0.5)) for v in values)
    assert len(set(values)) > 10


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tune.qrandint(1, 3, 5), "no multiple"),
        (lambda: tune.qrandint(0, 10, 0), "q >= 1"),
        (lambda: tune.qlograndint(0, 10, 5), "greater than 0"),
        (lambda: tune.lograndint(0, 10), "0 < lower"),
        (lambda: tune.qloguniform(0.5, 4.0, 1.0), "not divisible"),
        (lambda: tune.qrandn(0.0, 1.0, 0.0), "q > 0"),
        (lambda: tune.randn(0.0, -1.0), "sd >= 0"),
        (lambda: tune.uniform(0.0, math.inf), "finite"),
    ],
)
def test_bad_domain_bounds_are_clear_errors(make, message: str) -> None:
    with pytest.raises(tune.SearchSpaceError, match=message):
        make()
