"""``tune.Tuner`` and ``tune.run``: set an experiment up, run it, restore an interrupted one."""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from typing import Any

import runtime
from runtime.core.tune.schedulers import FIFOScheduler, TrialScheduler
from runtime.core.tune.search_space import Domain, count_variants
from runtime.core.tune.searcher import FINISHED, BasicVariantGenerator, ConcurrencyLimiter, Searcher
from runtime.tune.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from runtime.tune.controller import TuneController, load_state
from runtime.tune.errors import TuneError
from runtime.tune.registry import resolve_trainable
from runtime.tune.result import ExperimentAnalysis, ResultGrid
from runtime.tune.stopper import as_stopper
from runtime.tune.trainable import (
    _WithResources,
    check_trainable,
    normalize_resources,
    trainable_name,
)

TUNER_FILE = "tuner.pkl"


class _FixedCount(Searcher):
    """Wraps a custom searcher so it gives at most ``num_samples`` trials (Ray's SearchGenerator)."""

    def __init__(self, searcher: Searcher, num_samples: int, space: dict[str, Any]) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.remaining = num_samples
        self.space = space

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The wrapped searcher's config over the space's constants, until num_samples."""
        if self.remaining <= 0:
            return FINISHED
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):
            self.remaining -= 1
            merged = copy.deepcopy({k: v for k, v in self.space.items() if k not in suggestion})
            merged.update(suggestion)
            return merged
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward the result."""
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Forward the completion."""
        self.searcher.on_trial_complete(trial_id, result=result, error=error)


def default_storage_path() -> str:
    """Where experiments go by default: ``~/twinray_results``."""
    return os.path.join(os.path.expanduser("~"), "twinray_results")


def _split_trainable(
    trainable: Any, param_space: dict[str, Any] | None = None
) -> tuple[Any, dict[str, float]]:
    if isinstance(trainable, _WithResources):
        return trainable.trainable, normalize_resources(trainable.resources)
    request = getattr(trainable, "default_resource_request", None)
    if isinstance(trainable, type) and callable(request):  # e.g. RLlib: driver + env runners
        return trainable, normalize_resources(request(param_space or {}))
    return trainable, normalize_resources({})


def _has_domains(space: Any) -> bool:
    """Whether ``space`` holds values still to draw (domains or grid searches), Ray's check."""
    if isinstance(space, Domain):
        return True
    if isinstance(space, dict):
        return "grid_search" in space or any(_has_domains(v) for v in space.values())
    if isinstance(space, list | tuple):
        return any(_has_domains(v) for v in space)
    return False


def _placement_of(trainable: Any, param_space: dict[str, Any] | None) -> Any:
    """The trials' ``tune.PlacementGroupFactory``, or None when they ask for plain resources."""
    from runtime.tune.placement_groups import PlacementGroupFactory

    if isinstance(trainable, _WithResources):
        requested = trainable.resources
    else:
        request = getattr(trainable, "default_resource_request", None)
        requested = (
            request(param_space or {})
            if isinstance(trainable, type) and callable(request)
            else None
        )
    return requested if isinstance(requested, PlacementGroupFactory) else None


def _build_searcher(
    tune_config: TuneConfig, param_space: dict[str, Any]
) -> tuple[Searcher, int | None]:
    """The searcher (wrapped as Ray wraps it) and how many trials it may give (None: its own)."""
    metric, mode = tune_config.metric, tune_config.mode
    searcher = tune_config.search_alg
    limit: int | None = None
    if searcher is None:
        searcher = BasicVariantGenerator(rng=random.Random())
    if not isinstance(searcher, Searcher):
        raise TuneError(f"search_alg must be a tune.search.Searcher, got {type(searcher).__name__}")
    inner = searcher.searcher if isinstance(searcher, ConcurrencyLimiter) else searcher
    if isinstance(inner, BasicVariantGenerator):
        inner.add_configurations(param_space, tune_config.num_samples)
        limit = count_variants(param_space, tune_config.num_samples)
    else:
        if not searcher.set_search_properties(metric, mode, param_space) and _has_domains(
            param_space
        ):
            raise TuneError(
                "You passed a `param_space` parameter to `tune.Tuner()` with unresolved "
                "parameters, but the search algorithm was already instantiated with a search "
                "space. Make sure that `param_space` does not contain any more parameter "
                "definitions - include them in the search algorithm's search space if necessary."
            )
        searcher = _FixedCount(searcher, tune_config.num_samples, param_space)
        limit = tune_config.num_samples
    if tune_config.max_concurrent_trials:
        if isinstance(tune_config.search_alg, ConcurrencyLimiter):
            raise TuneError(
                "You have specified `max_concurrent_trials` but the `search_alg` is already "
                "a `ConcurrencyLimiter`. Pass only one of them."
            )
        searcher = ConcurrencyLimiter(searcher, tune_config.max_concurrent_trials)
    return searcher, limit


def _build_scheduler(tune_config: TuneConfig) -> TrialScheduler:
    scheduler = tune_config.scheduler or FIFOScheduler()
    if not isinstance(scheduler, TrialScheduler):
        raise TuneError(
            f"scheduler must be a tune.schedulers.TrialScheduler, got {type(scheduler).__name__}"
        )
    metric, mode = tune_config.metric, tune_config.mode
    if not scheduler.set_search_properties(metric, mode) and (metric or mode):
        raise TuneError(
            "You passed a `metric` or `mode` argument to `tune.TuneConfig()`, but the "
            "scheduler you are using was already instantiated with their own `metric` and "
            "`mode` parameters. Either remove the arguments from your scheduler or from "
            "`tune.TuneConfig()`"
        )
    return scheduler


class Tuner:
    """Runs a hyperparameter search: ``Tuner(trainable, param_space=, tune_config=, run_config=)``.

    ``fit()`` runs every trial and returns a ``ResultGrid``; ``Tuner.restore(path,
    trainable)`` picks an interrupted experiment up where it stopped.
    """

    def __init__(
        self,
        trainable: Callable[..., Any] | type | None = None,
        *,
        param_space: dict[str, Any] | None = None,
        tune_config: TuneConfig | None = None,
        run_config: RunConfig | None = None,
    ) -> None:
        if trainable is None:
            raise TuneError("Tuner needs a trainable (a function of config or a tune.Trainable)")
        trainable = resolve_trainable(trainable)  # "PPO" and registered names
        check_trainable(trainable)
        if hasattr(param_space, "to_dict") and not isinstance(param_space, dict):
            param_space = param_space.to_dict()  # an RLlib AlgorithmConfig, as Ray takes it
        if param_space is not None and not isinstance(param_space, dict):
            raise TuneError(f"param_space must be a dict, got {type(param_space).__name__}")
        if tune_config is not None and not isinstance(tune_config, TuneConfig):
            raise TuneError(f"tune_config must be a tune.TuneConfig, got {tune_config!r}")
        if run_config is not None and not isinstance(run_config, RunConfig):
            raise TuneError(f"run_config must be a tune.RunConfig, got {run_config!r}")
        self._trainable = trainable
        self._param_space = dict(param_space or {})
        self._tune_config = tune_config or TuneConfig()
        self._run_config = run_config or RunConfig()
        self._restored: Any = None
        self._results: ResultGrid | None = None
        name = self._run_config.name or f"{trainable_name(trainable)}_{_timestamp()}"
        storage = self._run_config.storage_path or default_storage_path()
        self._experiment_dir = os.path.join(os.path.abspath(os.path.expanduser(storage)), name)
        self._name = name

    @classmethod
    def restore(
        cls,
        path: str,
        trainable: Callable[..., Any] | type,
        *,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: dict[str, Any] | None = None,
    ) -> Tuner:
        """The Tuner of the experiment in ``path``: ``fit()`` resumes it.

        Finished trials keep their results; unfinished ones resume from their latest
        checkpoint (``resume_unfinished``); errored ones stay ERROR unless
        ``resume_errored`` (from their checkpoint) or ``restart_errored`` (from scratch).
        """
        import cloudpickle

        tuner_file = os.path.join(path, TUNER_FILE)
        if not os.path.exists(tuner_file):
            raise TuneError(f"{path!r} holds no Tune experiment ({TUNER_FILE} is missing)")
        with open(tuner_file, "rb") as f:
            saved = cloudpickle.load(f)
        state = load_state(path)
        tuner = cls(
            trainable,
            param_space=param_space if param_space is not None else saved["param_space"],
            tune_config=saved["tune_config"],
            run_config=saved["run_config"],
        )
        tuner._experiment_dir = os.path.abspath(path)
        tuner._name = os.path.basename(os.path.abspath(path))
        for trial in state.trials:
            if trial.status == "ERROR" and (resume_errored or restart_errored):
                trial.status, trial.error, trial.error_msg = "PENDING", None, None
                trial.num_failures = 0
                if restart_errored:
                    trial.checkpoints = []
                    trial.last_result = {}
                    trial.metric_history = []
            elif trial.status in ("RUNNING", "PENDING", "PAUSED") and not resume_unfinished:
                trial.status = "TERMINATED"
            elif trial.status == "RUNNING":  # the run was killed before it could say so
                trial.status = "PAUSED" if trial.checkpoints else "PENDING"
        tuner._restored = state
        return tuner

    @classmethod
    def can_restore(cls, path: str) -> bool:
        """Whether ``path`` holds a Tune experiment that ``restore`` can resume."""
        return os.path.exists(os.path.join(path, TUNER_FILE))

    def _save_tuner(self) -> None:
        import cloudpickle

        os.makedirs(self._experiment_dir, exist_ok=True)
        with open(os.path.join(self._experiment_dir, TUNER_FILE), "wb") as f:
            cloudpickle.dump(
                {
                    "param_space": self._param_space,
                    "tune_config": self._tune_config,
                    "run_config": self._run_config,
                },
                f,
            )

    def fit(self) -> ResultGrid:
        """Run the experiment; the ResultGrid of every trial (errored ones included)."""
        if not runtime.is_initialized():
            runtime.init()
        trainable, resources = _split_trainable(self._trainable, self._param_space)
        tc, rc = self._tune_config, self._run_config
        assert rc.checkpoint_config is not None and rc.failure_config is not None
        if rc.checkpoint_config.checkpoint_at_end and not isinstance(trainable, type):
            raise TuneError(
                "checkpoint_at_end is only for class trainables (tune.Trainable); a function "
                "trainable checkpoints with tune.report(..., checkpoint=...)"
            )
        if rc.checkpoint_config.checkpoint_frequency and not isinstance(trainable, type):
            raise TuneError(
                "checkpoint_frequency is only for class trainables (tune.Trainable); a function "
                "trainable checkpoints with tune.report(..., checkpoint=...)"
            )
        pristine = copy.deepcopy(tc)
        searcher, limit = _build_searcher(tc, self._param_space)
        scheduler = _build_scheduler(tc)
        state = self._restored
        if state is not None:
            self._skip_suggested(searcher, state.created)
        else:
            self._save_tuner_with(pristine)
        controller = TuneController(
            trainable=trainable,
            trainable_name=trainable_name(self._trainable),
            is_class=isinstance(trainable, type),
            resources=resources,
            placement=_placement_of(self._trainable, self._param_space),
            reuse_actors=tc.reuse_actors,
            searcher=searcher,
            max_trials=limit,
            scheduler=scheduler,
            stopper=as_stopper(rc.stop),
            experiment_dir=self._experiment_dir,
            experiment_name=self._name,
            metric=tc.metric,
            time_budget_s=float(tc.time_budget_s) if tc.time_budget_s is not None else None,
            checkpoint_config=rc.checkpoint_config or CheckpointConfig(),
            failure_config=rc.failure_config or FailureConfig(),
            verbose=rc.verbose,
            state=state,
            callbacks=rc.callbacks,
            num_samples=tc.num_samples,
        )
        trials = controller.run()
        self._results = ResultGrid(trials, self._experiment_dir, tc.metric, tc.mode)
        return self._results

    def _save_tuner_with(self, pristine: TuneConfig) -> None:
        saved, self._tune_config = self._tune_config, pristine
        try:
            self._save_tuner()
        finally:
            self._tune_config = saved

    @staticmethod
    def _skip_suggested(searcher: Searcher, created: int) -> None:
        """Replay the suggestions the restored trials already took (their configs are kept)."""
        for i in range(created):
            trial_id = f"_restored_{i:05d}"
            suggestion = searcher.suggest(trial_id)
            if suggestion is None or suggestion == FINISHED:
                break
            searcher.on_trial_complete(trial_id)

    def get_results(self) -> ResultGrid:
        """The ResultGrid of the last ``fit()``."""
        if self._results is None:
            raise TuneError("get_results(): fit() has not run yet")
        return self._results


def _timestamp() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def run(
    run_or_experiment: Callable[..., Any] | type,
    *,
    name: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    stop: Any = None,
    time_budget_s: float | None = None,
    config: dict[str, Any] | None = None,
    resources_per_trial: Any = None,
    num_samples: int = 1,
    storage_path: str | None = None,
    search_alg: Searcher | None = None,
    scheduler: TrialScheduler | None = None,
    checkpoint_config: CheckpointConfig | None = None,
    verbose: int = 1,
    max_failures: int = 0,
    max_concurrent_trials: int | None = None,
    fail_fast: bool = False,
    raise_on_failed_trial: bool = True,
    resume: bool | str | None = None,
    callbacks: list[Any] | None = None,
    reuse_actors: bool = False,
) -> ExperimentAnalysis:
    """The older API: run an experiment and return its ``ExperimentAnalysis``.

    ``raise_on_failed_trial`` (Ray's default True) raises TuneError naming the failed
    trials after the run; ``resume=True`` resumes the experiment ``name`` in ``storage_path``.
    """
    trainable: Any = resolve_trainable(run_or_experiment)
    if resources_per_trial is not None:
        if isinstance(trainable, _WithResources):
            raise TuneError("pass resources_per_trial or tune.with_resources, not both")
        trainable = _WithResources(trainable, resources_per_trial)
        normalize_resources(resources_per_trial)
    if resume not in (None, False, True, "AUTO"):
        raise TuneError(f"resume must be True, False, None or 'AUTO', got {resume!r}")
    tune_config = TuneConfig(
        metric=metric,
        mode=mode,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=max_concurrent_trials,
        time_budget_s=time_budget_s,
        reuse_actors=reuse_actors,
    )
    run_config = RunConfig(
        name=name,
        storage_path=storage_path,
        stop=stop,
        checkpoint_config=checkpoint_config,
        failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
        verbose=verbose,
        callbacks=callbacks,
    )
    tuner = Tuner(trainable, param_space=config, tune_config=tune_config, run_config=run_config)
    if resume and Tuner.can_restore(tuner._experiment_dir):
        tuner = Tuner.restore(tuner._experiment_dir, trainable)
    elif resume is True:
        raise TuneError(f"resume=True but {tuner._experiment_dir!r} holds no experiment")
    grid = tuner.fit()
    trials = grid._trials
    failed = [t for t in trials if t.status == "ERROR"]
    if failed and raise_on_failed_trial:
        raise TuneError(f"Trials did not complete: {failed}")
    return ExperimentAnalysis(trials, grid.experiment_path, metric, mode)
