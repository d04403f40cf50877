"""``tune.search``: the search-algorithm interface and the core's generators and limiter."""

from __future__ import annotations

from runtime.core.tune.searcher import BasicVariantGenerator, ConcurrencyLimiter, Searcher

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Searcher"]
