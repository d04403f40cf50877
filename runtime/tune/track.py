"""``tune.track``: the older reporting call, ``tune.track.log(**metrics)``."""

from __future__ import annotations

from typing import Any

from runtime.tune.session import report


def log(**metrics: Any) -> None:
    """Report ``metrics`` for this iteration, as ``tune.report(metrics)`` does."""
    report(metrics)


__all__ = ["log"]
