"""Synchronous HyperBand (Ray Tune's ``HyperBandScheduler``) as a pure decision object.

Trials fill brackets of successive halving; a trial that reaches its bracket's milestone
is paused until every live trial of the bracket has, then the bracket keeps the best
``1/reduction_factor`` (they resume) and stops the rest. Other trials the scheduler stops
come out of ``take_requests()`` as ``StopRequest``s (it has already forgotten them; the
runner ends them without telling it again). Ray's arithmetic and order, without numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from runtime.core.tune.errors import MetricNotReportedError, TuneError
from runtime.core.tune.schedulers import (
    CONTINUE,
    PAUSE,
    PAUSED,
    PENDING,
    STOP,
    FIFOScheduler,
    StopRequest,
    TrialView,
)


class _Bracket:
    def __init__(
        self,
        time_attr: str,
        max_trials: int,
        init_t_attr: int,
        max_t_attr: float,
        eta: float,
        s: int,
        stop_last_trials: bool,
    ) -> None:
        self.live: dict[str, dict[str, Any] | None] = {}
        self.all_trials: list[str] = []
        self.time_attr = time_attr
        self.n = self.n0 = max_trials
        self.r = self.r0 = init_t_attr
        self.max_t_attr = max_t_attr
        self.cumul_r: float = self.r0
        self.eta = eta
        self.halves = s
        self.total_work = self._total_work(self.n0, self.r0, s)
        self.completed_progress: float = 0
        self.stop_last_trials = stop_last_trials
        self.is_being_processed = False
        self.trials_to_unpause: set[str] = set()

    def _time(self, result: dict[str, Any] | None) -> float:
        return 0 if result is None else result[self.time_attr]

    def _total_work(self, n: float, r: float, s: int) -> int:
        work = 0
        cumulative_r = r
        for _ in range(s + 1):
            work += int(n) * int(r)
            n = math.ceil(n / self.eta)
            r = int(min(r * self.eta, self.max_t_attr - cumulative_r))
        return work

    def add_trial(self, trial_id: str) -> None:
        self.live[trial_id] = None
        self.all_trials.append(trial_id)

    def cur_iter_done(self) -> bool:
        return all(self._time(r) >= self.cumul_r for r in self.live.values())

    def finished(self) -> bool:
        if not self.stop_last_trials:
            return False
        return self.halves == 0 and self.cur_iter_done()

    def continue_trial(self, trial_id: str) -> bool:
        if not self.stop_last_trials and self.halves == 0:
            return True
        return self._time(self.live[trial_id]) < self.cumul_r

    def filled(self) -> bool:
        return len(self.live) == self.n

    def successive_halving(self, metric: str, sign: float) -> tuple[list[str], list[str]]:
        if self.halves == 0 and not self.stop_last_trials:
            return list(self.live), []
        self.halves -= 1
        self.n = math.ceil(self.n / self.eta)
        self.r = int(min(self.r * self.eta, self.max_t_attr))
        self.cumul_r = self.r
        ranked = sorted(self.live, key=lambda t: sign * self.live[t][metric])  # type: ignore[index]
        return ranked[-self.n :], ranked[: -self.n]

    def update(self, trial_id: str, result: dict[str, Any]) -> None:
        delta = self._time(result) - self._time(self.live[trial_id])
        self.completed_progress += delta
        self.live[trial_id] = result
        self.trials_to_unpause.discard(trial_id)

    def cleanup_trial(self, trial_id: str) -> None:
        self.live.pop(trial_id, None)

    def completion_percentage(self) -> float:
        if self.finished():
            return 1.0
        return min(self.completed_progress / self.total_work, 1.0)


class HyperBandScheduler(FIFOScheduler):
    """HyperBand with Ray's parameters and defaults (max_t 81, reduction_factor 3)."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 81,
        reduction_factor: float = 3,
        stop_last_trials: bool = True,
    ) -> None:
        if not max_t > 0:
            raise TuneError(f"HyperBandScheduler: max_t must be positive, got {max_t}")
        if not reduction_factor > 1:
            raise TuneError(
                f"HyperBandScheduler: reduction_factor must be > 1, got {reduction_factor}"
            )
        super().__init__(metric=metric, mode=mode)
        self._eta = reduction_factor
        self._s_max_1 = int(round(math.log(max_t) / math.log(reduction_factor))) + 1
        self._max_t_attr = max_t
        self._time_attr = time_attr
        self._stop_last_trials = stop_last_trials
        self._hyperbands: list[list[_Bracket | None]] = [[]]
        self._trial_info: dict[str, _Bracket] = {}
        self._bracket: _Bracket | None = None
        self._band_idx = 0
        self._num_stopped = 0
        self._requests: list[StopRequest] = []
        self._statuses: dict[str, str] = {}

    @property
    def num_stopped(self) -> int:
        """How many trials halving has stopped."""
        return self._num_stopped

    def _n0(self, s: int) -> int:
        return int(math.ceil(self._s_max_1 / (s + 1) * self._eta**s))

    def _r0(self, s: int) -> int:
        return int(self._max_t_attr * self._eta ** (-s))

    def _cur_band_filled(self) -> bool:
        return len(self._hyperbands[self._band_idx]) == self._s_max_1

    def on_trial_add(self, trial_id: str) -> None:
        """Put the trial in the current bracket, opening a new bracket or band when full."""
        self._require_metric_and_mode()
        cur_band = self._hyperbands[self._band_idx]
        if self._bracket is None or self._bracket.filled():
            while True:
                if self._cur_band_filled():
                    cur_band = []
                    self._hyperbands.append(cur_band)
                    self._band_idx += 1
                s = len(cur_band)
                if self._r0(s) == 0:  # bracket too small: skip it
                    cur_band.append(None)
                    self._bracket = None
                    continue
                self._bracket = _Bracket(
                    self._time_attr,
                    self._n0(s),
                    self._r0(s),
                    self._max_t_attr,
                    self._eta,
                    s,
                    self._stop_last_trials,
                )
                cur_band.append(self._bracket)
                break
        assert self._bracket is not None
        self._bracket.add_trial(trial_id)
        self._trial_info[trial_id] = self._bracket
        self._statuses[trial_id] = PENDING

    def take_requests(self) -> list[Any]:
        """The other trials halving stopped (already forgotten here), in order."""
        requests, self._requests = self._requests, []
        return list(requests)

    def on_trial_result(
        self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
    ) -> str:
        """CONTINUE below the milestone; at it PAUSE, or halve the bracket (STOP or CONTINUE)."""
        metric, _ = self._require_metric_and_mode()
        if metric not in result:
            raise MetricNotReportedError(type(self).__name__, metric, list(result))
        if self._time_attr not in result:
            raise TuneError(
                f"HyperBandScheduler: the result lacks time_attr {self._time_attr!r}; "
                f"the trial reported {sorted(result)!r}"
            )
        self._statuses[trial_id] = "RUNNING"
        bracket = self._trial_info[trial_id]
        bracket.update(trial_id, result)
        if bracket.continue_trial(trial_id):
            return CONTINUE
        action = self._process_bracket(bracket, current=trial_id)
        if action == PAUSE:
            self._statuses[trial_id] = PAUSED
        return action

    def _process_bracket(self, bracket: _Bracket, current: str | None) -> str:
        action = PAUSE
        if not bracket.cur_iter_done():
            return action
        if bracket.finished():
            for trial_id in list(bracket.live):
                if self._statuses.get(trial_id) == PAUSED:
                    self._stop_other(trial_id)
            return STOP
        bracket.is_being_processed = True
        _, mode = self._require_metric_and_mode()
        sign = 1.0 if mode == "max" else -1.0
        good, bad = bracket.successive_halving(self._metric or "", sign)
        self._num_stopped += len(bad)
        for trial_id in bad:
            if trial_id == current:
                bracket.cleanup_trial(trial_id)
                action = STOP
            else:
                self._stop_other(trial_id)
        for trial_id in good:
            if bracket.continue_trial(trial_id):
                if trial_id == current:
                    action = CONTINUE
                else:
                    bracket.trials_to_unpause.add(trial_id)
            elif bracket.finished() and bracket.stop_last_trials:
                if trial_id == current:
                    bracket.cleanup_trial(trial_id)
                    action = STOP
                else:
                    self._stop_other(trial_id)
        return action

    def _stop_other(self, trial_id: str) -> None:
        self._requests.append(StopRequest(trial_id))
        self._forget(trial_id)

    def _forget(self, trial_id: str) -> None:
        bracket = self._trial_info.get(trial_id)
        self._statuses[trial_id] = "TERMINATED"
        if bracket is None:
            return
        bracket.cleanup_trial(trial_id)
        if not bracket.finished() and not bracket.is_being_processed:
            self._process_bracket(bracket, current=None)

    def on_trial_remove(self, trial_id: str) -> None:
        """The trial ended: drop it from its bracket (which may halve without it)."""
        self._forget(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """The trial finished early: drop it from its bracket."""
        self._forget(trial_id)

    def on_trial_error(self, trial_id: str) -> None:
        """The trial failed: drop it from its bracket."""
        self._forget(trial_id)

    def choose_trial_to_run(self, trials: Sequence[TrialView]) -> str | None:
        """A PENDING trial, or a PAUSED one halving kept, from the least complete bracket."""
        status = {t.trial_id: t.status for t in trials}
        for band in self._hyperbands:
            brackets = [b for b in band if b is not None]
            for bracket in sorted(brackets, key=lambda b: b.completion_percentage()):
                for trial_id in bracket.live:
                    state = status.get(trial_id)
                    if state == PENDING or (
                        state == PAUSED and trial_id in bracket.trials_to_unpause
                    ):
                        self._statuses[trial_id] = "RUNNING"
                        return trial_id
        return None


__all__ = ["HyperBandScheduler"]
