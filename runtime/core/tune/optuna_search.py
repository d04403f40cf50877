"""Ray Tune's OptunaSearch as a pure decision object: Optuna's ask/tell behind the Searcher interface.

Bayesian optimisation (Optuna's TPE sampler by default, seeded with ``seed``) suggests
each trial's config; completed trials are told back with their metric. No clock and no
I/O: the study lives in memory unless a ``storage`` is given, and time is never read.
``optuna`` is imported when a searcher is built (the ``tune`` extra), so importing this
module costs nothing; without it, building one raises ``OptionalDependencyError``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

from runtime.core.tune.errors import MetricNotReportedError, SearchSpaceError, TuneError
from runtime.core.tune.search_space import (
    Choice,
    Domain,
    LogRandInt,
    LogUniform,
    QLogUniform,
    QRandInt,
    QUniform,
    RandInt,
    Uniform,
)
from runtime.core.tune.searcher import Searcher, _check_mode

DEFAULT_METRIC = "_metric"
"""The metric name when only ``mode`` is given (Ray's anonymous metric)."""


class OptionalDependencyError(TuneError, ImportError):
    """A searcher needs a library that is not installed; names the extra that brings it."""


def import_optuna() -> Any:
    """The ``optuna`` module, or OptionalDependencyError naming the extra to install."""
    try:
        optuna = importlib.import_module("optuna")
    except ImportError as exc:
        raise OptionalDependencyError(
            "OptunaSearch needs optuna, which is not installed: pip install 'twinray[tune]' "
            "(or pip install optuna)"
        ) from exc
    major = int(str(optuna.__version__).split(".")[0])
    if major < 3:
        raise OptionalDependencyError(
            f"OptunaSearch needs optuna >= 3.0, found {optuna.__version__}: "
            "pip install -U 'twinray[tune]'"
        )
    return optuna


def _flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not _is_grid(value):
            flat.update(_flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split("/")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _distribution(optuna: Any, path: str, domain: Domain) -> Any:
    """The Optuna distribution of one Tune domain (Ray's conversion rules)."""
    dists = optuna.distributions
    quantized_log = isinstance(domain, QLogUniform) or (
        isinstance(domain, QRandInt) and domain.log and domain.q != 1
    )
    if quantized_log:
        # Ray drops the quantization with a warning; twinray refuses rather than ignore it
        raise SearchSpaceError(
            f"OptunaSearch cannot convert {path}: Optuna cannot quantize a log range "
            f"({type(domain).__name__} with q={getattr(domain, 'q', None)}); use loguniform/lograndint or a "
            "linear quantized range"
        )
    if isinstance(domain, LogUniform):
        return dists.FloatDistribution(domain.lower, domain.upper, log=True)
    if isinstance(domain, QUniform):
        return dists.FloatDistribution(domain.lower, domain.upper, step=domain.q)
    if isinstance(domain, Uniform):
        return dists.FloatDistribution(domain.lower, domain.upper)
    if isinstance(domain, LogRandInt) or (isinstance(domain, QRandInt) and domain.log):
        return dists.IntDistribution(domain.lower, domain.upper - 1, log=True)
    if isinstance(domain, QRandInt):  # quantized: the upper bound is included (Ray's rule)
        return dists.IntDistribution(domain.lower, domain.upper, step=domain.q)
    if isinstance(domain, RandInt):
        return dists.IntDistribution(domain.lower, domain.upper - 1)
    if isinstance(domain, Choice):
        return dists.CategoricalDistribution(list(domain.categories))
    raise SearchSpaceError(
        f"OptunaSearch cannot convert {path}: {type(domain).__name__} has no Optuna "
        "distribution (use uniform, quniform, loguniform, randint, qrandint, lograndint or "
        "choice)"
    )


def convert_search_space(spec: dict[str, Any], optuna: Any | None = None) -> dict[str, Any]:
    """Optuna distributions (by ``a/b`` path) for the Tune domains in ``spec``; {} if none."""
    optuna = optuna or import_optuna()
    flat = _flatten(spec)
    grids = [path for path, value in flat.items() if _is_grid(value)]
    if grids:
        raise SearchSpaceError(
            f"Grid search parameters cannot be automatically converted to an Optuna search "
            f"space: {', '.join(grids)}"
        )
    return {
        path: _distribution(optuna, path, value)
        for path, value in flat.items()
        if isinstance(value, Domain)
    }


class _SuggestCaptor:
    """Wraps an Optuna trial so a define-by-run function's ``suggest_*`` values are kept."""

    def __init__(self, trial: Any) -> None:
        self._trial = trial
        self.captured: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        item = getattr(self._trial, name)
        if not (name.startswith("suggest_") and callable(item)):
            return item
        signature = inspect.signature(item)

        @functools.wraps(item)
        def capture(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            if "name" not in bound.arguments:
                raise TuneError(f"{name}() needs the parameter's name")
            value = item(*args, **kwargs)
            self.captured[bound.arguments["name"]] = value
            return value

        return capture


class OptunaSearch(Searcher):
    """Optuna's sampler behind Ray Tune's Searcher interface (Ray 2.60's OptunaSearch).

    ``space``: Optuna distributions by name, a Tune search space (converted), or a
    define-by-run function ``f(trial) -> dict | None``; None takes the Tuner's
    ``param_space``. ``points_to_evaluate`` are tried first (or, with
    ``evaluated_rewards``, told as already evaluated); ``sampler`` defaults to
    ``TPESampler(seed=seed)``. Trials are asked with the space's distributions and told
    their last ``metric``: COMPLETE with it, FAIL on error, PRUNED without one.
    """

    def __init__(
        self,
        space: dict[str, Any] | Callable[[Any], dict[str, Any] | None] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        sampler: Any = None,
        study_name: str | None = None,
        storage: Any = None,
        seed: int | None = None,
        evaluated_rewards: list[Any] | None = None,
    ) -> None:
        optuna = import_optuna()
        if isinstance(metric, list) or isinstance(mode, list):
            raise TuneError(
                "OptunaSearch: multi-objective search (a list of metrics) is not supported"
            )
        super().__init__(metric=metric, mode=mode)
        if sampler is not None and seed is not None:
            raise TuneError(
                "OptunaSearch: pass either sampler or seed; a sampler you build takes its "
                "seed itself (e.g. optuna.samplers.TPESampler(seed=...))"
            )
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TuneError(
                f"OptunaSearch: sampler must be an optuna.samplers.BaseSampler, got {type(sampler).__name__}"
            )
        if storage is not None and not isinstance(storage, optuna.storages.BaseStorage):
            raise TuneError(
                f"OptunaSearch: storage must be an optuna.storages.BaseStorage, got {type(storage).__name__}"
            )
        if space is not None and not (isinstance(space, dict) or callable(space)):
            raise SearchSpaceError(
                "OptunaSearch: space must be a dict (Optuna distributions or a Tune search "
                f"space) or a define-by-run function, got {type(space).__name__}"
            )
        self._optuna = optuna
        self._space: dict[str, Any] | Callable[[Any], dict[str, Any] | None] | None = None
        if isinstance(space, dict) and space:
            flat = _flatten(space)
            tune_domains = any(isinstance(v, Domain) or _is_grid(v) for v in flat.values())
            self._space = convert_search_space(space, optuna) if tune_domains else flat
        elif callable(space):
            self._space = space
        self._points_to_evaluate = list(points_to_evaluate or [])
        self._evaluated_rewards = evaluated_rewards
        self._check_warmstart()
        self._sampler = sampler
        self._seed = seed
        self._study_name = study_name or "optuna"
        self._storage = storage
        self._study: Any = None
        self._trials: dict[str, Any] = {}
        self._completed: set[str] = set()
        if self._space:
            self._setup_study()

    def _check_warmstart(self) -> None:
        points, rewards = self._points_to_evaluate, self._evaluated_rewards
        for point in points:
            if not isinstance(point, dict):
                raise TuneError(f"points_to_evaluate holds dicts of parameters, got {point!r}")
            if isinstance(self._space, dict) and len(point) != len(self._space):
                raise TuneError(
                    f"the point {point!r} does not give every parameter of the space "
                    f"{sorted(self._space)!r}"
                )
        if rewards is not None:
            if not isinstance(rewards, list):
                raise TuneError(f"evaluated_rewards must be a list, got {type(rewards).__name__}")
            if len(rewards) != len(points):
                raise TuneError(
                    f"evaluated_rewards has {len(rewards)} values for "
                    f"{len(points)} points_to_evaluate: give one per point"
                )

    def _setup_study(self) -> None:
        optuna = self._optuna
        if self.metric is None and self.mode:
            self.metric = DEFAULT_METRIC
        sampler = self._sampler or optuna.samplers.TPESampler(seed=self._seed)
        self._study = optuna.study.create_study(
            storage=self._storage,
            sampler=sampler,
            pruner=optuna.pruners.NopPruner(),
            study_name=self._study_name,
            load_if_exists=True,
            direction="minimize" if self.mode == "min" else "maximize",
        )
        if self._evaluated_rewards:
            for point, reward in zip(
                self._points_to_evaluate, self._evaluated_rewards, strict=True
            ):
                self.add_evaluated_point(point, reward)
        else:
            for point in self._points_to_evaluate:
                self._study.enqueue_trial(point)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any]
    ) -> bool:
        """Take the Tuner's metric, mode and param_space; False if this one has a space."""
        if self._space:
            return False
        space = convert_search_space(config, self._optuna)
        if not space:
            return False
        _check_mode(type(self).__name__, mode)
        self._space = space
        self.metric = metric or self.metric
        self.mode = mode or self.mode
        self._check_warmstart()
        self._setup_study()
        return True

    def _ready(self) -> None:
        if not self._space:
            raise TuneError(
                "OptunaSearch has no search space: pass space= or a param_space with "
                "tune search-space values to the Tuner"
            )
        if not self.metric or not self.mode:
            raise TuneError(
                f"OptunaSearch needs metric and mode (got metric={self.metric!r}, "
                f"mode={self.mode!r}): pass them to OptunaSearch or to tune.TuneConfig"
            )

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """Ask the study for ``trial_id``'s parameters (nested back from ``a/b`` paths)."""
        self._ready()
        space = self._space
        if trial_id not in self._trials:
            if callable(space):
                self._trials[trial_id] = self._study.ask()
            else:
                self._trials[trial_id] = self._study.ask(fixed_distributions=space)
        trial = self._trials[trial_id]
        if not callable(space):
            return _unflatten(dict(trial.params))
        captor = _SuggestCaptor(trial)
        extra = space(captor)
        if extra is not None and (
            not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra)
        ):
            raise TuneError(
                "the define-by-run function passed as space must return None or a dict "
                f"with str keys, got {extra!r}"
            )
        return _unflatten({**captor.captured, **(extra or {})})

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report an intermediate value (the metric at ``training_iteration``) to the study."""
        if trial_id in self._completed or trial_id not in self._trials:
            return
        if self.metric not in result:
            raise MetricNotReportedError(type(self).__name__, str(self.metric), list(result))
        step = int(result.get("training_iteration", 0))
        self._trials[trial_id].report(float(result[self.metric]), step)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the study how the trial ended: COMPLETE (metric), FAIL (error), PRUNED (none)."""
        if trial_id in self._completed or trial_id not in self._trials:
            return
        states = self._optuna.trial.TrialState
        value = result.get(str(self.metric)) if result else None
        if value is None:
            state = states.FAIL if error else states.PRUNED
        elif isinstance(value, float) and math.isnan(value):
            value, state = None, states.FAIL  # Optuna refuses NaN values
        else:
            state = states.COMPLETE
        self._study.tell(self._trials[trial_id], value, state=state)
        self._completed.add(trial_id)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Tell the study about a point evaluated elsewhere (warm start)."""
        self._ready()
        if callable(self._space):
            raise TuneError(
                "evaluated points need a space of distributions, not a define-by-run function"
            )
        states = self._optuna.trial.TrialState
        state = states.FAIL if error else states.PRUNED if pruned else states.COMPLETE
        trial = self._optuna.trial.create_trial(
            state=state,
            value=None if state == states.FAIL else value,
            params=_flatten(parameters),
            distributions=self._space,
            intermediate_values=dict(enumerate(intermediate_values))
            if intermediate_values
            else None,
        )
        self._study.add_trial(trial)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_optuna"] = None  # a module: imported again on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._optuna = import_optuna()

    @property
    def study(self) -> Any:
        """The Optuna study (None until a search space is known)."""
        return self._study


__all__ = ["OptionalDependencyError", "OptunaSearch", "convert_search_space", "import_optuna"]
