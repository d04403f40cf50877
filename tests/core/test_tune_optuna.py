"""OptunaSearch (runtime.core.tune.optuna_search): Optuna's ask/tell, suggestions as Ray 2.60's adapter."""

from __future__ import annotations

import pickle
import random
import sys
from typing import Any

import pytest

optuna = pytest.importorskip("optuna", reason="optuna not installed (the tune extra)")

from runtime.core.tune import (  # noqa: E402
    FINISHED,
    BasicVariantGenerator,
    ConcurrencyLimiter,
    SearchSpaceError,
    TuneError,
    choice,
    grid_search,
    loguniform,
    qloguniform,
    quniform,
    randint,
    uniform,
)
from runtime.core.tune.optuna_search import OptionalDependencyError  # noqa: E402
from runtime.tune.search.optuna import OptunaSearch  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _loss(config: dict[str, Any]) -> float:
    return (config["x"] - 1.3) ** 2 + (config["y"] + 0.7) ** 2


SPACE: dict[str, Any] = {"x": uniform(-5, 5), "y": uniform(-5, 5)}


def _drive(searcher: Any, budget: int, loss: Any = _loss) -> list[tuple[dict[str, Any], float]]:
    """Suggest, evaluate and complete `budget` trials one after another."""
    seen = []
    for i in range(budget):
        config = searcher.suggest(str(i))
        value = loss(config)
        searcher.on_trial_result(str(i), {"loss": value, "training_iteration": 1})
        searcher.on_trial_complete(str(i), {"loss": value, "training_iteration": 1})
        seen.append((config, value))
    return seen


def test_optuna_beats_random_search_with_the_same_budget_and_seeds() -> None:
    ours, rand = [], []
    for seed in range(4):
        bo = _drive(OptunaSearch(SPACE, metric="loss", mode="min", seed=seed), 30)
        generator = BasicVariantGenerator(rng=random.Random(seed))
        generator.add_configurations(SPACE, num_samples=30)
        rs = _drive(generator, 30)
        ours.append(min(v for _, v in bo))
        rand.append(min(v for _, v in rs))
        assert all(-5 <= c["x"] <= 5 and -5 <= c["y"] <= 5 for c, _ in bo)
    assert sum(ours) / 4 < 0.5 * sum(rand) / 4  # noticeably better on average
    assert sum(ours) / 4 < 0.3


def test_the_same_seed_gives_the_same_suggestions() -> None:
    a = _drive(OptunaSearch(SPACE, metric="loss", mode="min", seed=3), 12)
    b = _drive(OptunaSearch(SPACE, metric="loss", mode="min", seed=3), 12)
    c = _drive(OptunaSearch(SPACE, metric="loss", mode="min", seed=4), 12)
    assert a == b and a != c


def _mixed_loss(config: dict[str, Any]) -> float:
    inner = config["net"]
    return (
        (config["lr"] - 0.01) ** 2 * 100
        + abs(config["layers"] - 3)
        + (0 if config["act"] == "relu" else 0.5)
        + (inner["width"] - 0.5) ** 2
    )


def _mixed_space(t: Any) -> dict[str, Any]:
    return {
        "lr": t.loguniform(1e-4, 1e-1),
        "layers": t.randint(1, 6),
        "act": t.choice(["relu", "tanh"]),
        "net": {"width": t.quniform(0, 1, 0.1)},
    }


class _CoreDomains:
    loguniform = staticmethod(loguniform)
    randint = staticmethod(randint)
    choice = staticmethod(choice)
    quniform = staticmethod(quniform)


@pytest.mark.parametrize("case", ["space", "param_space", "points", "rewards"])
def test_suggestions_match_rays_optuna_search(case: str) -> None:
    ray_tune = pytest.importorskip("ray.tune", reason="ray.tune not importable")
    ray_optuna = pytest.importorskip("ray.tune.search.optuna", reason="Ray's adapter")
    points = [{"lr": 0.05, "layers": 2, "act": "tanh", "net/width": 0.3}]
    kwargs: dict[str, Any] = {"metric": "loss", "mode": "min", "seed": 11}
    if case in ("points", "rewards"):
        kwargs["points_to_evaluate"] = points
    if case == "rewards":
        kwargs["evaluated_rewards"] = [1.7]

    def build(space_module: Any, cls: Any) -> Any:
        if case == "param_space":
            searcher = cls(seed=11)
            searcher.set_search_properties("loss", "min", _mixed_space(space_module))
            return searcher
        return cls(_mixed_space(space_module), **kwargs)

    theirs = _drive(build(ray_tune, ray_optuna.OptunaSearch), 15, _mixed_loss)
    ours = _drive(build(_CoreDomains, OptunaSearch), 15, _mixed_loss)
    assert ours == theirs
    if case == "points":
        assert ours[0][0] == {"lr": 0.05, "layers": 2, "act": "tanh", "net": {"width": 0.3}}


def test_define_by_run_space_matches_rays() -> None:
    ray_optuna = pytest.importorskip("ray.tune.search.optuna", reason="Ray's adapter")

    def space(trial: Any) -> dict[str, Any]:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        if kind == "a":
            trial.suggest_float("x", -5, 5)
        else:
            trial.suggest_float("x", 0, 2)
        trial.suggest_float("y", -5, 5)
        return {"constant": 7}

    theirs = _drive(ray_optuna.OptunaSearch(space, metric="loss", mode="min", seed=2), 10)
    ours = _drive(OptunaSearch(space, metric="loss", mode="min", seed=2), 10)
    assert ours == theirs
    assert all(c["constant"] == 7 and c["kind"] in ("a", "b") for c, _ in ours)


def test_concurrency_limiter_caps_live_trials_and_matches_rays() -> None:
    def interleaved(limiter: Any) -> list[Any]:
        log, live, done = [], [], 0
        for step in range(40):
            trial_id = f"t{step}"
            suggestion = limiter.suggest(trial_id)
            log.append(suggestion if suggestion is None else dict(suggestion))
            if suggestion is not None:
                live.append((trial_id, suggestion))
            if suggestion is None:  # at the cap: the oldest live trial completes
                finished, config = live.pop(0)
                limiter.on_trial_complete(finished, {"loss": _loss(config)})
                done += 1
            if done >= 12:
                break
        return log

    ours = interleaved(ConcurrencyLimiter(OptunaSearch(SPACE, "loss", "min", seed=5), 2))
    assert None in ours and len([s for s in ours if s is not None]) >= 12
    assert ours[2] is None  # two live trials: the third waits
    ray_search = pytest.importorskip("ray.tune.search", reason="ray.tune not importable")
    ray_optuna = pytest.importorskip("ray.tune.search.optuna", reason="Ray's adapter")
    ray_tune = pytest.importorskip("ray.tune")
    ray_space = {"x": ray_tune.uniform(-5, 5), "y": ray_tune.uniform(-5, 5)}
    theirs = interleaved(
        ray_search.ConcurrencyLimiter(ray_optuna.OptunaSearch(ray_space, "loss", "min", seed=5), 2)
    )
    assert ours == theirs


def test_trial_states_told_to_the_study() -> None:
    searcher = OptunaSearch(SPACE, metric="loss", mode="min", seed=0)
    for i in range(4):
        searcher.suggest(str(i))
    searcher.on_trial_complete("0", {"loss": 1.0})
    searcher.on_trial_complete("1", None, error=True)
    searcher.on_trial_complete("2", None)
    searcher.on_trial_complete("3", {"loss": float("nan")})
    searcher.on_trial_complete("0", {"loss": 5.0})  # a second completion is ignored
    states = [t.state.name for t in searcher.study.trials]
    assert states == ["COMPLETE", "FAIL", "PRUNED", "FAIL"]
    assert searcher.study.trials[0].value == 1.0


def test_pickles_and_saves_its_study(tmp_path: Any) -> None:
    searcher = OptunaSearch(SPACE, metric="loss", mode="min", seed=1)
    _drive(searcher, 5)
    clone = pickle.loads(pickle.dumps(searcher))
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    restored = OptunaSearch(SPACE, metric="loss", mode="min", seed=99)
    restored.restore(path)
    nxt = [s.suggest("next") for s in (searcher, clone, restored)]
    assert nxt[0] == nxt[1] == nxt[2]
    assert len(restored.study.trials) == 6


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: OptunaSearch({"x": grid_search([1, 2])}, "l", "min"), SearchSpaceError, "Grid"),
        (lambda: OptunaSearch({"x": qloguniform(1, 10, 1)}, "l", "min"), SearchSpaceError, "log"),
        (lambda: OptunaSearch(SPACE, "l", "up"), TuneError, "mode"),
        (
            lambda: OptunaSearch(
                SPACE, "l", "min", seed=1, sampler=optuna.samplers.RandomSampler()
            ),
            TuneError,
            "either sampler or seed",
        ),
        (
            lambda: OptunaSearch(
                SPACE, "l", "min", points_to_evaluate=[{"x": 1, "y": 1}], evaluated_rewards=[]
            ),
            TuneError,
            "one per point",
        ),
        (
            lambda: OptunaSearch(SPACE, "l", "min", points_to_evaluate=[{"x": 1}]),
            TuneError,
            "every parameter",
        ),
        (lambda: OptunaSearch(SPACE, "l", "min", sampler="tpe"), TuneError, "BaseSampler"),
        (lambda: OptunaSearch(3, "l", "min"), SearchSpaceError, "space must be"),
        (lambda: OptunaSearch(SPACE).suggest("a"), TuneError, "needs metric and mode"),
        (lambda: OptunaSearch(metric="l", mode="min").suggest("a"), TuneError, "no search space"),
    ],
)
def test_bad_settings_are_refused(build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(OptionalDependencyError, match=r"twinray\[tune\]"):
        OptunaSearch(SPACE, "loss", "min")
    with pytest.raises(ImportError):  # it is an ImportError too, as Ray's code expects
        OptunaSearch(SPACE, "loss", "min")


def test_finished_is_never_suggested() -> None:
    searcher = OptunaSearch(SPACE, metric="loss", mode="min", seed=0)
    assert all(searcher.suggest(str(i)) != FINISHED for i in range(3))
