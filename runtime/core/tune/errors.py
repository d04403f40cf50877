"""The exceptions Tune's decision objects raise for bad spaces, settings and results."""

from __future__ import annotations


class TuneError(ValueError):
    """Base of Tune's errors (Ray's name): a bad search space, scheduler setting or result."""


class SearchSpaceError(TuneError):
    """A search space holds a value Tune cannot resolve, or a domain has invalid bounds."""


class MetricNotReportedError(TuneError):
    """A reported result lacks the metric a scheduler decides on; names the keys reported."""

    def __init__(self, scheduler: str, metric: str, keys: list[str]) -> None:
        super().__init__(
            f"{scheduler}: the result does not include the metric {metric!r} it decides on; "
            f"the trial reported {sorted(keys)!r}. Report {metric!r} (tune.report({{{metric!r}: "
            "...}}) or pass the metric you report to the scheduler."
        )
        self.metric = metric
        self.keys = sorted(keys)
