"""Ray Tune's decision logic as pure objects: search spaces, searchers and trial schedulers.

No I/O and no clock: time is what the reported results say (``time_attr``), randomness is
an injected ``Rng``. The real Tune runner and the simulator's hyperparameter-search
workload drive the same objects.
"""

from runtime.core.tune.errors import MetricNotReportedError, SearchSpaceError, TuneError
from runtime.core.tune.schedulers import (
    CONTINUE,
    NOOP,
    PAUSE,
    STOP,
    ASHAScheduler,
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
    TrialView,
)
from runtime.core.tune.search_space import (
    Domain,
    choice,
    count_variants,
    generate_variants,
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
from runtime.core.tune.searcher import FINISHED, BasicVariantGenerator, ConcurrencyLimiter, Searcher

__all__ = [
    "CONTINUE",
    "FINISHED",
    "NOOP",
    "PAUSE",
    "STOP",
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "BasicVariantGenerator",
    "ConcurrencyLimiter",
    "Domain",
    "FIFOScheduler",
    "MedianStoppingRule",
    "MetricNotReportedError",
    "SearchSpaceError",
    "Searcher",
    "TrialScheduler",
    "TrialView",
    "TuneError",
    "choice",
    "count_variants",
    "generate_variants",
    "grid_search",
    "lograndint",
    "loguniform",
    "qloguniform",
    "qlograndint",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "sample_from",
    "uniform",
]
