"""What a Tune run returns: ``Result`` per trial, ``ResultGrid`` and ``ExperimentAnalysis``.

pandas is imported only when a DataFrame is asked for (``get_dataframe``,
``metrics_dataframe``, ``dataframe``, ``trial_dataframes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runtime.core.tune.schedulers import ERROR, TERMINATED
from runtime.tune.checkpoint import Checkpoint
from runtime.tune.errors import TuneError
from runtime.tune.results_io import flatten, is_finite_number, read_results

_SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pandas comes with the `tune` extra
        raise ImportError(
            "DataFrames of Tune results need pandas: pip install 'twinray[tune]'"
        ) from exc
    return pandas


@dataclass
class Result:
    """One trial's outcome: last ``metrics``, ``config``, latest ``checkpoint``, ``path``, ``error``."""

    metrics: dict[str, Any]
    checkpoint: Checkpoint | None
    error: BaseException | None
    path: str
    best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]]
    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The trial's config."""
        return self._config

    @property
    def metrics_dataframe(self) -> Any:
        """Every result the trial reported, one row each (a pandas DataFrame)."""
        return _pandas().DataFrame([flatten(r) for r in read_results(self.path)])

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k != "config"}
        return f"Result(metrics={shown}, path={self.path!r}, error={self.error!r})"


def _checkpoint(trial: Any, name: str) -> Checkpoint | None:
    path = os.path.join(trial.path, name)
    return Checkpoint(path) if os.path.isdir(path) else None


def result_of(trial: Any) -> Result:
    """The Result of a controller Trial."""
    metrics = dict(trial.last_result)
    if metrics:
        metrics.setdefault("config", trial.config)
    latest = trial.latest_checkpoint
    best = [(c, r) for c, r in ((_checkpoint(trial, n), r) for n, r in trial.checkpoints) if c]
    return Result(
        metrics=metrics,
        checkpoint=_checkpoint(trial, latest[0]) if latest else None,
        error=trial.error,
        path=trial.path,
        best_checkpoints=best,
        _config=trial.config,
    )


def _check_mode(mode: str | None) -> None:
    if mode not in ("min", "max"):
        raise TuneError(f"`mode` must be 'min' or 'max', got {mode!r}")


def _score(trial: Any, metric: str, scope: str) -> float | None:
    """The trial's value of ``metric`` under ``scope`` (None when it never reported it)."""
    values = [h[metric] for h in trial.metric_history if metric in h]
    if not values:
        return None
    if scope == "last":
        return float(values[-1])
    if scope == "avg":
        return sum(map(float, values)) / len(values)
    if scope in ("last-5-avg", "last-10-avg"):
        tail = values[-int(scope.split("-")[1]) :]
        return sum(map(float, tail)) / len(tail)
    return None  # "all": compared per mode by the caller


def best_trial(
    trials: list[Any], metric: str, mode: str, scope: str, filter_nan_and_inf: bool = True
) -> Any | None:
    """The best trial by ``metric`` (Ray's rules: the first of equals wins), or None."""
    _check_mode(mode)
    if scope not in _SCOPES:
        raise TuneError(f"`scope` must be one of {list(_SCOPES)}, got {scope!r}")
    best, best_score = None, None
    for trial in trials:
        if scope == "all":
            values = [float(h[metric]) for h in trial.metric_history if metric in h]
            if filter_nan_and_inf:
                values = [v for v in values if is_finite_number(v)]
            if not values:
                continue
            score: float | None = max(values) if mode == "max" else min(values)
        else:
            score = _score(trial, metric, scope)
        if score is None or (filter_nan_and_inf and not is_finite_number(score)):
            continue
        if best_score is None or (score > best_score if mode == "max" else score < best_score):
            best, best_score = trial, score
    return best


class ResultGrid:
    """The results of a Tuner run: index it, iterate it, ask for the best or a DataFrame."""

    def __init__(
        self, trials: list[Any], experiment_path: str, metric: str | None, mode: str | None
    ) -> None:
        self._trials = list(trials)
        self._results = [result_of(t) for t in self._trials]
        self.experiment_path = experiment_path
        self._metric = metric
        self._mode = mode

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    @property
    def errors(self) -> list[BaseException]:
        """The errors of the trials that ended in ERROR."""
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        """How many trials ended in ERROR."""
        return sum(1 for t in self._trials if t.status == ERROR)

    @property
    def num_terminated(self) -> int:
        """How many trials ended TERMINATED."""
        return sum(1 for t in self._trials if t.status == TERMINATED)

    def get_best_result(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Result:
        """The best trial's Result by ``metric``/``mode`` (default: the TuneConfig's)."""
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric:
            raise TuneError(
                "No metric is provided. Either pass in a `metric` arg to `get_best_result` "
                "or specify a metric in the `TuneConfig` of your `Tuner`."
            )
        if not mode:
            raise TuneError(
                "No mode is provided. Either pass in a `mode` arg to `get_best_result` "
                "or specify a mode in the `TuneConfig` of your `Tuner`."
            )
        trial = best_trial(self._trials, metric, mode, scope, filter_nan_and_inf)
        if trial is None:
            reported = sorted({k for t in self._trials for h in t.metric_history for k in h})
            raise TuneError(
                f"No best trial found for the given metric: {metric}. This means that no "
                "trial has reported this metric, or all values reported for this metric are "
                f"NaN. The trials reported {reported!r}."
            )
        return self._results[self._trials.index(trial)]

    def get_dataframe(
        self, filter_metric: str | None = None, filter_mode: str | None = None
    ) -> Any:
        """One row per trial (its last result, or its best by ``filter_metric``), a DataFrame."""
        return _dataframe(self._trials, filter_metric, filter_mode)

    def __repr__(self) -> str:
        return f"ResultGrid<[{', '.join(repr(r) for r in self._results)}]>"


def _dataframe(trials: list[Any], metric: str | None, mode: str | None) -> Any:
    if (metric is None) != (mode is None):
        raise TuneError("pass both filter_metric and filter_mode, or neither")
    rows = []
    for trial in trials:
        if metric is not None:
            _check_mode(mode)
            history = [r for r in read_results(trial.path) if metric in flatten(r)]
            if not history:
                continue
            pick = max if mode == "max" else min
            row = flatten(pick(history, key=lambda r: flatten(r)[metric]))
        else:
            if not trial.last_result:
                continue
            row = flatten({**trial.last_result, "config": trial.config})
        row["logdir"] = trial.path
        rows.append(row)
    return _pandas().DataFrame(rows)


class ExperimentAnalysis:
    """What ``tune.run`` returns: the trials, the best config/trial/result, DataFrames."""

    def __init__(
        self, trials: list[Any], experiment_path: str, metric: str | None, mode: str | None
    ) -> None:
        self.trials = list(trials)
        self.experiment_path = experiment_path
        self.default_metric = metric
        self.default_mode = mode

    def _resolve(self, metric: str | None, mode: str | None) -> tuple[str, str]:
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if not metric or not mode:
            raise TuneError(
                "To fetch the best trial, pass a `metric` and `mode` parameter to "
                "`tune.run()` or to this method."
            )
        _check_mode(mode)
        return metric, mode

    def get_best_trial(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Any | None:
        """The best trial by ``metric``/``mode`` (default: tune.run's), None if none reported it."""
        metric, mode = self._resolve(metric, mode)
        return best_trial(self.trials, metric, mode, scope, filter_nan_and_inf)

    def get_best_config(
        self, metric: str | None = None, mode: str | None = None, scope: str = "last"
    ) -> dict[str, Any] | None:
        """The best trial's config (None when no trial reported the metric)."""
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial is not None else None

    @property
    def best_trial(self) -> Any | None:
        """The best trial by tune.run's metric and mode."""
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The best trial's config by tune.run's metric and mode."""
        return self.get_best_config()

    @property
    def best_result(self) -> dict[str, Any]:
        """The best trial's last result."""
        trial = self.get_best_trial()
        return dict(trial.last_result) if trial is not None else {}

    @property
    def best_checkpoint(self) -> Checkpoint | None:
        """The best trial's latest checkpoint (None if it kept none)."""
        trial = self.get_best_trial()
        return result_of(trial).checkpoint if trial is not None else None

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Each trial's last result, by trial id."""
        return {t.trial_id: dict(t.last_result) for t in self.trials}

    @property
    def errors(self) -> dict[str, str]:
        """The error message of each trial that ended in ERROR, by trial id."""
        return {t.trial_id: t.error_msg for t in self.trials if t.status == ERROR}

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:
        """One row per trial: its last result (or its best by ``metric``/``mode``)."""
        return _dataframe(self.trials, metric, mode)

    @property
    def results_df(self) -> Any:
        """One row per trial (its last result), indexed by trial id."""
        frame = _dataframe(self.trials, None, None)
        return frame.set_index("trial_id") if "trial_id" in frame else frame

    @property
    def trial_dataframes(self) -> dict[str, Any]:
        """Every result of each trial as a DataFrame, by trial directory."""
        pandas = _pandas()
        return {
            t.path: pandas.DataFrame([flatten(r) for r in read_results(t.path)])
            for t in self.trials
        }

    def __repr__(self) -> str:
        return f"ExperimentAnalysis({len(self.trials)} trials, path={self.experiment_path!r})"


__all__ = ["ExperimentAnalysis", "Result", "ResultGrid"]
