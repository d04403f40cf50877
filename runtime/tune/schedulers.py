"""``tune.schedulers``: the core's trial schedulers, with a default random source for ASHA and PBT."""

from __future__ import annotations

import random
from typing import Any

from runtime.core.tune.hyperband import HyperBandScheduler
from runtime.core.tune.pbt import PopulationBasedTraining as _CorePBT
from runtime.core.tune.schedulers import (
    AsyncHyperBandScheduler as _CoreASHA,
)
from runtime.core.tune.schedulers import (
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)


class AsyncHyperBandScheduler(_CoreASHA):
    """ASHA (Ray's defaults); with several brackets it draws them from ``random.Random()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("brackets", 1) > 1 and kwargs.get("rng") is None:
            kwargs["rng"] = random.Random()
        super().__init__(*args, **kwargs)


#: Ray's short name for AsyncHyperBandScheduler.
ASHAScheduler = AsyncHyperBandScheduler


class PopulationBasedTraining(_CorePBT):
    """PBT (Ray's parameters); explorations drawn from ``random.Random()`` unless ``rng``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("rng") is None:
            kwargs["rng"] = random.Random()
        super().__init__(*args, **kwargs)


__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "HyperBandScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "TrialScheduler",
]
