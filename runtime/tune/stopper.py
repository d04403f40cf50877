"""``tune.stopper``: when a trial, or the whole experiment, should stop (Ray's interface)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.tune.errors import TuneError


class Stopper:
    """Decides per result whether a trial stops (``__call__``) and whether all do (``stop_all``)."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True when ``trial_id`` should stop after reporting ``result``."""
        raise NotImplementedError

    def stop_all(self) -> bool:
        """True when the whole experiment should stop."""
        raise NotImplementedError


class NoopStopper(Stopper):
    """Never stops anything."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Never stop the trial."""
        return False

    def stop_all(self) -> bool:
        """Never stop the experiment."""
        return False


class FunctionStopper(Stopper):
    """A stopper from a function ``(trial_id, result) -> bool``."""

    def __init__(self, function: Callable[[str, dict[str, Any]], bool]) -> None:
        self._function = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """What the function says for this result."""
        return bool(self._function(trial_id, result))

    def stop_all(self) -> bool:
        """Never stop the experiment."""
        return False


class DictStopper(Stopper):
    """Stops a trial once any result key reaches its threshold (``result[k] >= v``, Ray's rule)."""

    def __init__(self, criteria: Mapping[str, Any]) -> None:
        self._criteria = dict(criteria)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True when a criterion's key (flattened with "/") is at or above its value."""
        from runtime.tune.results_io import flatten

        result = flatten(result)
        for key, threshold in self._criteria.items():
            if key not in result:
                raise TuneError(
                    f"Stopping criterion {key!r} is not in the result; "
                    f"the trial reported {sorted(result)!r}"
                )
            if result[key] >= threshold:
                return True
        return False

    def stop_all(self) -> bool:
        """Never stop the experiment."""
        return False


class MaximumIterationStopper(Stopper):
    """Stops each trial after ``max_iter`` iterations."""

    def __init__(self, max_iter: int) -> None:
        self._max_iter = max_iter
        self._iter: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True once the trial has reported ``max_iter`` results."""
        self._iter[trial_id] = self._iter.get(trial_id, 0) + 1
        return self._iter[trial_id] >= self._max_iter

    def stop_all(self) -> bool:
        """Never stop the experiment."""
        return False


class CombinedStopper(Stopper):
    """Stops when any of the given stoppers does."""

    def __init__(self, *stoppers: Stopper) -> None:
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True when any stopper stops the trial (all are asked, as in Ray)."""
        return any([s(trial_id, result) for s in self._stoppers])

    def stop_all(self) -> bool:
        """True when any stopper stops the experiment."""
        return any([s.stop_all() for s in self._stoppers])


def as_stopper(stop: Any) -> Stopper:
    """The Stopper for RunConfig's ``stop``: None, a dict, a callable or a Stopper."""
    if stop is None:
        return NoopStopper()
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, Mapping):
        return DictStopper(stop)
    if callable(stop):
        return FunctionStopper(stop)
    raise TuneError(
        f"`stop` must be a dict, a function (trial_id, result) -> bool or a tune.stopper.Stopper, "
        f"got {type(stop).__name__}"
    )


__all__ = [
    "CombinedStopper",
    "FunctionStopper",
    "MaximumIterationStopper",
    "NoopStopper",
    "Stopper",
]
