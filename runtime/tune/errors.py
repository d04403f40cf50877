"""Tune's exceptions: Ray's ``TuneError`` and the errors twinray raises where Ray would hang."""

from __future__ import annotations

from runtime.core.tune.errors import MetricNotReportedError, SearchSpaceError, TuneError


class InfeasibleTrialError(TuneError):
    """A trial asks for more resources than the whole cluster has: it could never start.

    Ray Tune leaves such a trial PENDING forever (warning that the cluster may autoscale);
    twinray's cluster is fixed, so ``fit()`` raises this before any trial runs.
    """


class TuneSessionError(TuneError):
    """A Tune session function (``tune.report``, ``tune.get_checkpoint``) ran outside a trial."""


__all__ = [
    "InfeasibleTrialError",
    "MetricNotReportedError",
    "SearchSpaceError",
    "TuneError",
    "TuneSessionError",
]
