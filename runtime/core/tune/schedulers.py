"""Trial schedulers (Ray Tune's names and rules): continue, pause or stop a trial per result.

Pure decision objects: no clock (time is the ``time_attr`` of the reported results), no
runner (the caller says which trials wait), randomness only from an injected ``Rng``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.core.rng import Rng
from runtime.core.tune.errors import MetricNotReportedError, TuneError

CONTINUE = "CONTINUE"  #: keep the trial running
PAUSE = "PAUSE"  #: pause the trial (free its resources; it may be resumed)
STOP = "STOP"  #: stop the trial for good
NOOP = "NOOP"  #: the scheduler acted on the trial itself; the runner does nothing

#: The metric a scheduler uses when given only a mode (Ray's ``DEFAULT_METRIC``).
DEFAULT_METRIC = "_metric"

PENDING = "PENDING"
RUNNING = "RUNNING"
PAUSED = "PAUSED"
TERMINATED = "TERMINATED"
ERROR = "ERROR"


@dataclass(frozen=True)
class TrialView:
    """What a scheduler sees of a trial when choosing one to run: its id and status."""

    trial_id: str
    status: str


@dataclass(frozen=True)
class SaveRequest:
    """A scheduler asks the runner to checkpoint ``trial_id`` now (then ``on_trial_saved``)."""

    trial_id: str


@dataclass(frozen=True)
class ExploitRequest:
    """Restart ``trial_id`` from ``clone_from``'s ``checkpoint`` with ``config`` (PBT's exploit).

    ``result`` is the result the checkpoint was saved at (its time and iteration carry over).
    """

    trial_id: str
    clone_from: str
    checkpoint: Any
    config: dict[str, Any]
    result: dict[str, Any]
    operations: dict[str, Any]


@dataclass(frozen=True)
class StopRequest:
    """Stop ``trial_id`` (a waiting trial the scheduler dropped; it already forgot it)."""

    trial_id: str


@dataclass(frozen=True)
class Notice:
    """Something the runner should tell the user (a warning the scheduler cannot print)."""

    message: str


def _check_mode(owner: str, mode: str | None) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise TuneError(f"{owner}: `mode` must be 'min' or 'max', got {mode!r}")


class TrialScheduler:
    """The scheduler interface: callbacks per trial event, a decision per result."""

    CONTINUE = CONTINUE
    PAUSE = PAUSE
    STOP = STOP
    NOOP = NOOP

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        _check_mode(type(self).__name__, mode)
        self._metric = metric
        self._mode = mode

    @property
    def metric(self) -> str | None:
        """The result key decisions compare (None: not set yet)."""
        return self._metric

    @property
    def mode(self) -> str | None:
        """``"min"`` or ``"max"`` (None: not set yet)."""
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the run's metric and mode; False when the scheduler already has its own."""
        _check_mode(type(self).__name__, mode)
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def _require_metric_and_mode(self) -> tuple[str, str]:
        if not self._metric or not self._mode:
            raise TuneError(
                f"{type(self).__name__} has been instantiated without a valid `metric` "
                f"({self._metric}) or `mode` ({self._mode}) parameter. Either pass these "
                "parameters when instantiating the scheduler, or pass them as parameters "
                "to `tune.TuneConfig()`"
            )
        return self._metric, self._mode

    def _metric_value(self, result: dict[str, Any]) -> float:
        metric, _ = self._require_metric_and_mode()
        if metric not in result:
            raise MetricNotReportedError(type(self).__name__, metric, list(result))
        return float(result[metric])

    def on_trial_add(self, trial_id: str) -> None:
        """A trial was added to the run."""

    def on_trial_error(self, trial_id: str) -> None:
        """A trial failed."""

    def on_trial_result(
        self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
    ) -> str:
        """The decision (CONTINUE, PAUSE or STOP) for a trial that reported ``result``.

        ``trials_waiting``: whether any live trial is PENDING or PAUSED (schedulers that
        may yield a trial's resources to others read it; Ray asks its controller).
        """
        return CONTINUE

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """A trial finished; ``result`` is its last result."""

    def on_trial_remove(self, trial_id: str) -> None:
        """A trial was removed (stopped by the runner, not finished)."""

    def choose_trial_to_run(self, trials: Sequence[TrialView]) -> str | None:
        """The id of a PENDING or PAUSED trial to run next, or None if none is ready."""
        raise NotImplementedError

    def take_requests(self) -> list[SaveRequest | ExploitRequest | StopRequest | Notice]:
        """What the runner must carry out besides the decision (none, but for PBT)."""
        return []

    def on_trial_saved(self, trial_id: str, checkpoint: Any) -> None:
        """A save this scheduler asked for produced ``checkpoint`` (None: none)."""


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order added, never stops one early."""

    def choose_trial_to_run(self, trials: Sequence[TrialView]) -> str | None:
        """The first PENDING trial, else the first PAUSED one, else None."""
        for status in (PENDING, PAUSED):
            for trial in trials:
                if trial.status == status:
                    return trial.trial_id
        return None


def nanpercentile(values: Sequence[float], percent: float) -> float:
    """The ``percent`` percentile of ``values`` ignoring NaNs, interpolated linearly (numpy's)."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    position = percent / 100.0 * (len(data) - 1)
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    fraction = position - low
    below, above = data[low], data[high]
    diff = above - below
    # numpy's lerp, which interpolates from the nearer end
    return above - diff * (1 - fraction) if fraction >= 0.5 else below + diff * fraction


@dataclass
class _Rung:
    milestone: float
    recorded: dict[str, float]


class _Bracket:
    """One ASHA bracket: rungs at ``min_t * rf**(k + s)``, highest first, with their records."""

    def __init__(
        self, min_t: float, max_t: float, reduction_factor: float, s: int, stop_last_trials: bool
    ) -> None:
        self.rf = reduction_factor
        count = int(math.log(max_t / min_t) / math.log(reduction_factor) - s + 1)
        self.rungs = [
            _Rung(min_t * reduction_factor ** (k + s), {}) for k in reversed(range(count))
        ]
        self._stop_last_trials = stop_last_trials

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        """The value a trial must reach to pass a rung: the (1 - 1/rf) quantile of its records."""
        if not recorded:
            return None
        return nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_result(self, trial_id: str, cur_iter: float, cur_rew: float) -> str:
        """Record the trial at the highest rung it has newly reached; STOP if below cutoff."""
        action = CONTINUE
        for rung in self.rungs:
            reached = cur_iter >= rung.milestone and trial_id in rung.recorded
            if reached and not self._stop_last_trials:
                break
            if cur_iter < rung.milestone or trial_id in rung.recorded:
                continue
            cutoff = self.cutoff(rung.recorded)
            if cutoff is not None and cur_rew < cutoff:
                action = STOP
            rung.recorded[trial_id] = cur_rew
            break
        return action


class AsyncHyperBandScheduler(FIFOScheduler):
    """Asynchronous successive halving (ASHA), Ray's rules and defaults.

    A trial reaching a rung (``grace_period * reduction_factor**k`` units of ``time_attr``)
    is stopped when its metric is below the rung's ``1 - 1/reduction_factor`` quantile of
    the trials recorded there before it; at ``max_t`` it is stopped (``stop_last_trials``).
    With several ``brackets`` a trial joins one drawn by softmax over the brackets' rung
    counts, which needs ``rng``.
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
        rng: Rng | None = None,
    ) -> None:
        checks = [
            (max_t > 0, f"max_t must be positive, got {max_t}"),
            (max_t >= grace_period, f"grace_period ({grace_period}) must be <= max_t ({max_t})"),
            (grace_period > 0, f"grace_period must be positive, got {grace_period}"),
            (reduction_factor > 1, f"reduction_factor must be > 1, got {reduction_factor}"),
            (brackets > 0, f"brackets must be positive, got {brackets}"),
            (brackets == 1 or rng is not None, "brackets > 1 draws a bracket per trial: pass rng"),
        ]
        for ok, message in checks:
            if not ok:
                raise TuneError(f"AsyncHyperBandScheduler: {message}")
        super().__init__(metric=metric, mode=mode)
        self._time_attr = time_attr
        self._max_t = max_t
        self._reduction_factor = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._rng = rng
        self._brackets = [
            _Bracket(grace_period, max_t, reduction_factor, s, stop_last_trials)
            for s in range(brackets)
        ]
        self._trial_info: dict[str, _Bracket] = {}
        self._num_stopped = 0

    @property
    def num_stopped(self) -> int:
        """How many STOP decisions this scheduler has made."""
        return self._num_stopped

    def rungs(self) -> list[list[tuple[float, dict[str, float]]]]:
        """Per bracket, its rungs highest first: (milestone, {trial_id: signed metric})."""
        return [[(r.milestone, dict(r.recorded)) for r in b.rungs] for b in self._brackets]

    def _sign(self) -> float:
        _, mode = self._require_metric_and_mode()
        return 1.0 if mode == "max" else -1.0

    def _pick_bracket(self) -> _Bracket:
        if len(self._brackets) == 1 or self._rng is None:
            return self._brackets[0]
        sizes = [len(b.rungs) for b in self._brackets]
        weights = [math.exp(size - max(sizes)) for size in sizes]
        draw = self._rng.random() * sum(weights)
        for bracket, weight in zip(self._brackets, weights, strict=True):
            draw -= weight
            if draw < 0:
                return bracket
        return self._brackets[-1]

    def on_trial_add(self, trial_id: str) -> None:
        """Check metric and mode are set; put the trial in a bracket."""
        self._require_metric_and_mode()
        self._trial_info[trial_id] = self._pick_bracket()

    def on_trial_result(
        self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
    ) -> str:
        """STOP at max_t or below a rung's cutoff, else CONTINUE; skip if time_attr is absent."""
        value = self._metric_value(result)
        if self._time_attr not in result:
            return CONTINUE
        if trial_id not in self._trial_info:
            raise TuneError(f"AsyncHyperBandScheduler: trial {trial_id!r} was never added")
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = STOP
        else:
            bracket = self._trial_info[trial_id]
            action = bracket.on_result(trial_id, result[self._time_attr], self._sign() * value)
        if action == STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record the final result in the bracket (if it has time and metric); forget the trial."""
        metric, _ = self._require_metric_and_mode()
        if self._time_attr not in result or metric not in result:
            return
        bracket = self._trial_info.pop(trial_id)
        bracket.on_result(trial_id, result[self._time_attr], self._sign() * result[metric])

    def on_trial_remove(self, trial_id: str) -> None:
        """Forget the trial."""
        self._trial_info.pop(trial_id, None)


#: Ray's short name for AsyncHyperBandScheduler.
ASHAScheduler = AsyncHyperBandScheduler


def _median(values: Sequence[float]) -> float:
    data = sorted(values)
    middle = len(data) // 2
    if len(data) % 2:
        return data[middle]
    return (data[middle - 1] + data[middle]) / 2


class MedianStoppingRule(FIFOScheduler):
    """Stops a trial whose best metric by time t is worse than the median of the others.

    The others' running means of the metric over [grace_period, t]; with fewer than
    ``min_samples_required`` of them the trial continues, or pauses to yield to waiting
    trials when ``min_time_slice`` has passed since its last pause. ``hard_stop=False``
    pauses instead of stopping. Time is ``time_attr`` of the results (Ray's rules).
    """

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._time_attr = time_attr
        self._grace_period = grace_period
        self._min_samples_required = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        self._stopped_trials: set[str] = set()
        self._last_pause: dict[str, float] = {}
        self._results: dict[str, list[dict[str, Any]]] = {}

    @property
    def stopped_trials(self) -> set[str]:
        """The trials this rule has stopped (or paused for good, without hard_stop)."""
        return set(self._stopped_trials)

    def on_trial_add(self, trial_id: str) -> None:
        """Check metric and mode are set."""
        self._require_metric_and_mode()

    def _best(self, trial_id: str) -> float:
        metric, mode = self._require_metric_and_mode()
        values = [r[metric] for r in self._results[trial_id]]
        return max(values) if mode == "max" else min(values)

    def _running_mean(self, trial_id: str, time: float) -> float:
        metric, _ = self._require_metric_and_mode()
        scoped = [
            r[metric]
            for r in self._results[trial_id]
            if self._grace_period <= r[self._time_attr] <= time
        ]
        return sum(scoped) / len(scoped) if scoped else math.nan

    def on_trial_result(
        self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
    ) -> str:
        """STOP (or PAUSE) a trial worse than the median, PAUSE to yield, else CONTINUE."""
        self._metric_value(result)
        if self._time_attr not in result:
            return CONTINUE
        if trial_id in self._stopped_trials:
            return CONTINUE  # paused for good without hard_stop: falls back to FIFO
        time = result[self._time_attr]
        self._results.setdefault(trial_id, []).append(result)
        if time < self._grace_period:
            return CONTINUE
        others = [
            other
            for other, results in self._results.items()
            if other != trial_id and results[-1][self._time_attr] >= time
        ]
        means = [m for m in (self._running_mean(o, time) for o in others) if math.isfinite(m)]
        if len(means) < self._min_samples_required:
            last_pause = self._last_pause.get(trial_id, -math.inf)
            if trials_waiting and time - last_pause > self._min_time_slice:
                self._last_pause[trial_id] = time
                return PAUSE
            return CONTINUE
        median, best = _median(means), self._best(trial_id)
        _, mode = self._require_metric_and_mode()
        better_or_equal = max(median, best) if mode == "max" else min(median, best)
        if better_or_equal != best:
            self._stopped_trials.add(trial_id)
            return STOP if self._hard_stop else PAUSE
        return CONTINUE

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep the final result among the trial's results (if it has the time and metric)."""
        metric, _ = self._require_metric_and_mode()
        if self._time_attr in result and metric in result:
            self._results.setdefault(trial_id, []).append(result)
