"""Ray Tune on twinray (``from runtime import tune``): hyperparameter search over actors.

Decisions (search spaces, searchers, schedulers) are the core's pure objects in
``runtime.core.tune``; this package runs trials as actors and carries those decisions out.
Names load on first use, so a trial's worker imports only what its trainable touches.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module defining it
_EXPORTS: dict[str, str] = {
    "choice": "runtime.core.tune.search_space",
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
    "Callback": "runtime.tune.callback",
    "Checkpoint": "runtime.tune.checkpoint",
    "PlacementGroupFactory": "runtime.tune.placement_groups",
    "CheckpointConfig": "runtime.tune.config",
    "FailureConfig": "runtime.tune.config",
    "RunConfig": "runtime.tune.config",
    "TuneConfig": "runtime.tune.config",
    "InfeasibleTrialError": "runtime.tune.errors",
    "MetricNotReportedError": "runtime.tune.errors",
    "SearchSpaceError": "runtime.tune.errors",
    "TuneError": "runtime.tune.errors",
    "TuneSessionError": "runtime.tune.errors",
    "ExperimentAnalysis": "runtime.tune.result",
    "Result": "runtime.tune.result",
    "ResultGrid": "runtime.tune.result",
    "get_checkpoint": "runtime.tune.session",
    "get_context": "runtime.tune.session",
    "report": "runtime.tune.session",
    "Stopper": "runtime.tune.stopper",
    "Trainable": "runtime.tune.trainable",
    "with_parameters": "runtime.tune.trainable",
    "with_resources": "runtime.tune.trainable",
    "Tuner": "runtime.tune.tuner",
    "run": "runtime.tune.tuner",
    "register_trainable": "runtime.tune.registry",
    "register_env": "runtime.tune.registry",
}
_SUBMODULES = frozenset({"track", "stopper", "search", "schedulers", "registry"})

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    """Load a public name (or submodule) of ``runtime.tune`` on first use."""
    if name in _SUBMODULES:
        module = importlib.import_module(f"runtime.tune.{name}")
    elif name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    else:
        raise AttributeError(f"module 'runtime.tune' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
