"""Ray Tune's decision logic as pure objects: search spaces, searchers and trial schedulers.

No I/O and no clock: time is what the reported results say (``time_attr``), randomness is
an injected ``Rng``. The real Tune runner and the simulator's hyperparameter-search
workload drive the same objects. Names load on first use (a trial's worker needs only
``errors``), so importing one submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule defining it
_EXPORTS: dict[str, str] = {
    "MetricNotReportedError": "runtime.core.tune.errors",
    "SearchSpaceError": "runtime.core.tune.errors",
    "TuneError": "runtime.core.tune.errors",
    "CONTINUE": "runtime.core.tune.schedulers",
    "NOOP": "runtime.core.tune.schedulers",
    "PAUSE": "runtime.core.tune.schedulers",
    "STOP": "runtime.core.tune.schedulers",
    "ASHAScheduler": "runtime.core.tune.schedulers",
    "AsyncHyperBandScheduler": "runtime.core.tune.schedulers",
    "FIFOScheduler": "runtime.core.tune.schedulers",
    "MedianStoppingRule": "runtime.core.tune.schedulers",
    "TrialScheduler": "runtime.core.tune.schedulers",
    "TrialView": "runtime.core.tune.schedulers",
    "Domain": "runtime.core.tune.search_space",
    "choice": "runtime.core.tune.search_space",
    "count_variants": "runtime.core.tune.search_space",
    "generate_variants": "runtime.core.tune.search_space",
    "grid_search": "runtime.core.tune.search_space",
    "lograndint": "runtime.core.tune.search_space",
    "loguniform": "runtime.core.tune.search_space",
    "qlograndint": "runtime.core.tune.search_space",
    "qloguniform": "runtime.core.tune.search_space",
    "qrandint": "runtime.core.tune.search_space",
    "qrandn": "runtime.core.tune.search_space",
    "quniform": "runtime.core.tune.search_space",
    "randint": "runtime.core.tune.search_space",
    "randn": "runtime.core.tune.search_space",
    "sample_from": "runtime.core.tune.search_space",
    "uniform": "runtime.core.tune.search_space",
    "FINISHED": "runtime.core.tune.searcher",
    "PopulationBasedTraining": "runtime.core.tune.pbt",
    "ExploitRequest": "runtime.core.tune.schedulers",
    "SaveRequest": "runtime.core.tune.schedulers",
    "Notice": "runtime.core.tune.schedulers",
    "StopRequest": "runtime.core.tune.schedulers",
    "HyperBandScheduler": "runtime.core.tune.hyperband",
    "BasicVariantGenerator": "runtime.core.tune.searcher",
    "ConcurrencyLimiter": "runtime.core.tune.searcher",
    "Searcher": "runtime.core.tune.searcher",
}

__all__ = [
    "HyperBandScheduler",
    "StopRequest",
    "ExploitRequest",
    "Notice",
    "PopulationBasedTraining",
    "SaveRequest",
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


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'runtime.core.tune' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
