"""Search algorithms (Ray Tune's Searcher interface): which config the next trial gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runtime.core.rng import Rng
from runtime.core.tune.errors import SearchSpaceError, TuneError
from runtime.core.tune.search_space import count_variants, generate_variants

#: What ``suggest`` returns once a searcher has no more configs to give (Ray's value).
FINISHED = "FINISHED"


def _check_mode(owner: str, mode: str | None) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise TuneError(f"{owner}: `mode` must be 'min' or 'max', got {mode!r}")


class Searcher:
    """The search-algorithm interface: ``suggest`` a config per trial id, learn from results.

    ``suggest`` returns a config dict, ``None`` when it cannot suggest one now (try again
    later), or ``FINISHED`` when it never will again.
    """

    FINISHED = FINISHED

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        _check_mode(type(self).__name__, mode)
        self.metric = metric
        self.mode = mode

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any]
    ) -> bool:
        """Take the run's metric/mode/space; False when this searcher already has its own."""
        _check_mode(type(self).__name__, mode)
        if (self.metric and metric) or (self.mode and mode):
            return False
        self.metric = metric or self.metric
        self.mode = mode or self.mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The config for ``trial_id``, ``None`` (not now) or ``FINISHED`` (never again)."""
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """An intermediate result of a trial this searcher suggested (ignored by default)."""

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """A trial finished (``error``: it failed); ``result`` is its last result if any."""


class BasicVariantGenerator(Searcher):
    """Grid and random search: each grid combination, repeated ``num_samples`` times.

    Ray's order: one pass over every grid combination (random values drawn afresh for each)
    per sample, ``num_samples`` passes. ``max_concurrent`` > 0 caps the live trials (suggest
    returns ``None`` at the cap); random values come from ``rng`` (``random.Random(seed)``).
    """

    def __init__(self, max_concurrent: int = 0, rng: Rng | None = None) -> None:
        super().__init__()
        if not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise TuneError(f"max_concurrent must be an int >= 0, got {max_concurrent!r}")
        self.max_concurrent = max_concurrent
        self._rng = rng
        self._spaces: list[tuple[dict[str, Any], int]] = []
        self._variants: Iterator[dict[str, Any]] | None = None
        self._live: set[str] = set()
        self._total = 0
        self._finished = False

    def add_configurations(self, param_space: dict[str, Any], num_samples: int = 1) -> None:
        """Queue ``num_samples`` passes over ``param_space``'s grid (checked now, drawn lazily)."""
        if not isinstance(num_samples, int) or num_samples < 1:
            raise TuneError(f"num_samples must be an int >= 1, got {num_samples!r}")
        if not isinstance(param_space, dict):
            raise SearchSpaceError(f"a search space is a dict, got {type(param_space).__name__}")
        self._total += count_variants(param_space, num_samples)
        self._spaces.append((param_space, num_samples))
        self._finished = False

    @property
    def total_samples(self) -> int:
        """How many trials the queued spaces give in all."""
        return self._total

    def _all_variants(self) -> Iterator[dict[str, Any]]:
        while self._spaces:
            space, num_samples = self._spaces.pop(0)
            for _ in range(num_samples):
                for _, config in generate_variants(space, self._rng):
                    yield config

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next variant, ``None`` at the concurrency cap, ``FINISHED`` when all are out."""
        if trial_id in self._live:
            raise TuneError(f"trial id {trial_id!r} was already suggested a config")
        if self._finished:
            return FINISHED
        if self.max_concurrent > 0 and len(self._live) >= self.max_concurrent:
            return None
        if self._variants is None:
            self._variants = self._all_variants()
        config = next(self._variants, None)
        if config is None:
            self._variants = None
            self._finished = True
            return FINISHED
        self._live.add(trial_id)
        return config

    def is_finished(self) -> bool:
        """Whether every queued variant has been suggested."""
        return self._finished

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Free ``trial_id``'s place under ``max_concurrent``."""
        self._live.discard(trial_id)


class ConcurrencyLimiter(Searcher):
    """Wraps a searcher so at most ``max_concurrent`` of its trials are live at once.

    ``batch=True`` holds completed results back until every live trial of the batch has
    completed, then hands them all to the wrapped searcher (Ray's semantics).
    """

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False) -> None:
        if not isinstance(searcher, Searcher):
            raise TuneError(
                f"ConcurrencyLimiter only works with Searcher objects (got {type(searcher)})"
            )
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise TuneError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live_trials: set[str] = set()
        self._unfinished = 0
        self._cached: dict[str, tuple[dict[str, Any] | None, bool]] = {}

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any]
    ) -> bool:
        """Pass the run's metric/mode/space on to the wrapped searcher."""
        accepted = self.searcher.set_search_properties(metric, mode, config)
        self.metric, self.mode = self.searcher.metric, self.searcher.mode
        return accepted

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The wrapped searcher's suggestion, or ``None`` while ``max_concurrent`` are live."""
        if trial_id in self.live_trials:
            raise TuneError(f"Trial ID {trial_id} must be unique: already found in set.")
        if len(self.live_trials) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion is not None and suggestion != FINISHED:
            self.live_trials.add(trial_id)
            self._unfinished += 1
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward an intermediate result to the wrapped searcher."""
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Free the trial's place; forward now, or when the batch is complete (``batch``)."""
        if trial_id not in self.live_trials:
            return
        if not self.batch:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            self.live_trials.remove(trial_id)
            self._unfinished -= 1
            return
        self._cached[trial_id] = (result, error)
        self._unfinished -= 1
        if self._unfinished > 0:
            return
        for cached_id, (cached_result, cached_error) in self._cached.items():
            self.searcher.on_trial_complete(cached_id, result=cached_result, error=cached_error)
            self.live_trials.remove(cached_id)
        self._cached = {}
        self._unfinished = 0
