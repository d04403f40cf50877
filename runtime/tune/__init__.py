"""Ray Tune on twinray (``from runtime import tune``): hyperparameter search over actors.

Decisions (search spaces, searchers, schedulers) are the core's pure objects in
``runtime.core.tune``; this package runs trials as actors and carries those decisions out.
"""

from runtime.core.tune.search_space import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qlograndint,
    qloguniform,
    qrandint,
    qrandn,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from runtime.tune import schedulers, search, stopper, track
from runtime.tune.checkpoint import Checkpoint
from runtime.tune.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from runtime.tune.errors import (
    InfeasibleTrialError,
    MetricNotReportedError,
    SearchSpaceError,
    TuneError,
    TuneSessionError,
)
from runtime.tune.result import ExperimentAnalysis, Result, ResultGrid
from runtime.tune.session import get_checkpoint, get_context, report
from runtime.tune.stopper import Stopper
from runtime.tune.trainable import Trainable, with_parameters, with_resources
from runtime.tune.tuner import Tuner, run

__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "ExperimentAnalysis",
    "FailureConfig",
    "InfeasibleTrialError",
    "MetricNotReportedError",
    "Result",
    "ResultGrid",
    "RunConfig",
    "SearchSpaceError",
    "Stopper",
    "Trainable",
    "TuneConfig",
    "TuneError",
    "TuneSessionError",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "report",
    "run",
    "sample_from",
    "schedulers",
    "search",
    "stopper",
    "track",
    "uniform",
    "with_parameters",
    "with_resources",
]
