"""Readable numbers for summaries and reports: seconds and bytes with units."""

from __future__ import annotations

import math
from typing import Any


def num(x: Any) -> float | None:
    """``x`` as a finite float, or None (booleans and non-numbers are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def fmt_s(seconds: Any) -> str:
    """Seconds with a readable unit ('n/a' when missing)."""
    s = num(seconds)
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def fmt_bytes(n: Any) -> str:
    """Bytes with a binary unit."""
    x = num(n)
    if x is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024 or unit == "GiB":
            return f"{x:,.0f} {unit}" if unit == "B" else f"{x:,.2f} {unit}"
        x /= 1024.0
    return f"{x:.2f} TiB"  # pragma: no cover
