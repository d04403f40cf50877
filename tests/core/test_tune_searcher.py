"""Tune searchers: BasicVariantGenerator's suggestions and ConcurrencyLimiter's cap and batches."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runtime.core import tune


class _Recording(tune.Searcher):
    """A searcher that hands out numbered configs and records what it is told."""

    def __init__(self, configs: int) -> None:
        super().__init__(metric="acc", mode="max")
        self.left = configs
        self.completed: list[tuple[str, Any, bool]] = []

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.left == 0:
            return tune.FINISHED
        self.left -= 1
        return {"n": self.left}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.completed.append((trial_id, result, error))


def test_basic_variant_generator_is_deterministic_per_seed() -> None:
    def run(seed: int) -> list:
        gen = tune.BasicVariantGenerator(rng=random.Random(seed))
        gen.add_configurations(
            {"lr": tune.loguniform(1e-4, 1e-1), "g": tune.grid_search([1, 2])}, 3
        )
        return [gen.suggest(f"t{i}") for i in range(7)]

    assert run(1) == run(1) != run(2)
    assert run(1)[-1] == tune.FINISHED


def test_basic_variant_generator_caps_live_trials() -> None:
    gen = tune.BasicVariantGenerator(max_concurrent=2)
    gen.add_configurations({"x": tune.grid_search([1, 2, 3])})
    assert gen.suggest("a") == {"x": 1}
    assert gen.suggest("b") == {"x": 2}
    assert gen.suggest("c") is None  # at the cap: not now
    gen.on_trial_complete("a", {"acc": 1})
    assert gen.suggest("c") == {"x": 3}
    assert gen.suggest("d") is None
    gen.on_trial_complete("b")
    assert gen.suggest("d") == tune.FINISHED and gen.is_finished()


def test_basic_variant_generator_takes_several_spaces_in_order() -> None:
    gen = tune.BasicVariantGenerator()
    gen.add_configurations({"x": 1}, num_samples=2)
    gen.add_configurations({"y": tune.grid_search([5, 6])})
    assert gen.total_samples == 4
    assert [gen.suggest(str(i)) for i in range(5)] == [
        {"x": 1}, {"x": 1}, {"y": 5}, {"y": 6}, tune.FINISHED,
    ]  # fmt: skip


@pytest.mark.parametrize(("num_samples", "message"), [(0, "num_samples"), (1.5, "num_samples")])
def test_bad_num_samples_is_a_clear_error(num_samples: Any, message: str) -> None:
    with pytest.raises(tune.TuneError, match=message):
        tune.BasicVariantGenerator().add_configurations({}, num_samples)


def test_a_trial_id_gets_one_suggestion() -> None:
    gen = tune.BasicVariantGenerator()
    gen.add_configurations({"x": tune.grid_search([1, 2])})
    gen.suggest("a")
    with pytest.raises(tune.TuneError, match="'a'"):
        gen.suggest("a")


def test_concurrency_limiter_caps_and_forwards() -> None:
    inner = _Recording(configs=3)
    limiter = tune.ConcurrencyLimiter(inner, max_concurrent=2)
    assert limiter.suggest("a") == {"n": 2}
    assert limiter.suggest("b") == {"n": 1}
    assert limiter.suggest("c") is None
    limiter.on_trial_complete("a", {"acc": 0.5})
    assert inner.completed == [("a", {"acc": 0.5}, False)]
    assert limiter.suggest("c") == {"n": 0}
    limiter.on_trial_complete("b", error=True)
    assert limiter.suggest("d") == tune.FINISHED
    limiter.on_trial_complete("unknown")  # not live: ignored, as in Ray
    assert [c[0] for c in inner.completed] == ["a", "b"]


def test_concurrency_limiter_batch_waits_for_the_whole_batch() -> None:
    inner = _Recording(configs=4)
    limiter = tune.ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    limiter.suggest("a")
    limiter.suggest("b")
    limiter.on_trial_complete("a", {"acc": 1})
    assert inner.completed == [] and limiter.suggest("c") is None
    limiter.on_trial_complete("b", {"acc": 2})
    assert [c[0] for c in inner.completed] == ["a", "b"]
    assert limiter.suggest("c") == {"n": 1}


def test_concurrency_limiter_rejects_bad_arguments() -> None:
    with pytest.raises(tune.TuneError, match="Searcher objects"):
        tune.ConcurrencyLimiter(object(), 2)  # type: ignore[arg-type]
    with pytest.raises(tune.TuneError, match="max_concurrent"):
        tune.ConcurrencyLimiter(_Recording(1), 0)


def test_searcher_mode_must_be_min_or_max() -> None:
    with pytest.raises(tune.TuneError, match="'min' or 'max'"):
        tune.Searcher(metric="acc", mode="up")
