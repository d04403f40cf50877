"""``tune.schedulers``: the core's trial schedulers, with a default random source for ASHA."""

from __future__ import annotations

import random
from typing import Any

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

__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "MedianStoppingRule",
    "TrialScheduler",
]
