"""Tune's settings objects, Ray's names and defaults: TuneConfig, RunConfig and their parts."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from runtime.tune.errors import TuneError


def _check_mode(owner: str, mode: str | None) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise TuneError(f"The `mode` parameter passed to `{owner}` must be one of ['min', 'max']")


@dataclass
class TuneConfig:
    """How trials are made and scheduled (Ray's ``tune.TuneConfig``).

    ``metric``/``mode``: what "best" means, handed to the scheduler and searcher;
    ``num_samples``: passes over the space; ``max_concurrent_trials``: at most that many
    live at once (0/None: no cap); ``time_budget_s``: stop all trials after that many seconds.
    """

    mode: str | None = None
    metric: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | datetime.timedelta | None = None
    reuse_actors: bool = False

    def __post_init__(self) -> None:
        _check_mode("Tuner(...)", self.mode)
        if self.metric is not None and not isinstance(self.metric, str):
            raise TuneError(f"TuneConfig: `metric` must be a str, got {self.metric!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise TuneError(
                f"TuneConfig: `num_samples` must be an int >= 1, got {self.num_samples!r}"
            )
        mct = self.max_concurrent_trials
        if mct is not None and (not isinstance(mct, int) or mct < 0):
            raise TuneError(f"TuneConfig: `max_concurrent_trials` must be an int >= 0, got {mct!r}")
        if isinstance(self.time_budget_s, datetime.timedelta):
            self.time_budget_s = self.time_budget_s.total_seconds()
        if self.time_budget_s is not None and (
            not isinstance(self.time_budget_s, int | float) or self.time_budget_s <= 0
        ):
            raise TuneError(
                f"TuneConfig: `time_budget_s` must be a positive number, got {self.time_budget_s!r}"
            )
        if not isinstance(self.reuse_actors, bool):
            raise TuneError(f"TuneConfig: `reuse_actors` must be a bool, got {self.reuse_actors!r}")


@dataclass
class CheckpointConfig:
    """Which checkpoints a trial keeps and when class trainables save (Ray's names).

    ``num_to_keep``: keep the best that many (by ``checkpoint_score_attribute``, in
    ``checkpoint_score_order``; the most recent when no attribute), None keeps all;
    ``checkpoint_frequency``: a class trainable saves every that many iterations;
    ``checkpoint_at_end``: a class trainable saves when it finishes.
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (
            not isinstance(self.num_to_keep, int) or self.num_to_keep < 1
        ):
            raise TuneError(
                f"CheckpointConfig: `num_to_keep` must be an int >= 1 or None, got {self.num_to_keep!r}"
            )
        if self.checkpoint_score_order not in ("min", "max"):
            raise TuneError(
                "CheckpointConfig: `checkpoint_score_order` must be 'min' or 'max', "
                f"got {self.checkpoint_score_order!r}"
            )
        if not isinstance(self.checkpoint_frequency, int) or self.checkpoint_frequency < 0:
            raise TuneError(
                "CheckpointConfig: `checkpoint_frequency` must be an int >= 0, "
                f"got {self.checkpoint_frequency!r}"
            )


@dataclass
class FailureConfig:
    """How often a failing trial is retried from its last checkpoint (``max_failures``; -1: always)."""

    max_failures: int = 0
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise TuneError(
                f"FailureConfig: `max_failures` must be an int >= -1, got {self.max_failures!r}"
            )


@dataclass
class RunConfig:
    """Where results go and when trials stop (Ray's ``tune.RunConfig``).

    ``storage_path`` defaults to ``~/twinray_results``; the experiment lives in
    ``storage_path/name``. ``stop``: a dict of result thresholds, a callable
    ``(trial_id, result) -> bool`` or a ``tune.stopper.Stopper``. ``verbose``: 0 silent,
    1 a summary at the end, 2 and 3 a live status table.
    """

    name: str | None = None
    storage_path: str | None = None
    stop: Any = None
    checkpoint_config: CheckpointConfig | None = None
    failure_config: FailureConfig | None = None
    verbose: int = 1
    callbacks: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.verbose not in (0, 1, 2, 3):
            raise TuneError(f"RunConfig: `verbose` must be 0, 1, 2 or 3, got {self.verbose!r}")
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        from runtime.tune.callback import check_callbacks

        self.callbacks = check_callbacks(self.callbacks)
