"""Rows of the microbenchmark for Ray's wider core API (one module per feature area).

Each module in this package defines ``ROWS`` (a tuple of `benchmarks.rowkit.Row`) and
``GROUPS`` (a tuple of ``(function, keys)``, where ``function(system, params, num_cpus)``
returns a `Result` for ``keys``). A group that needs Ray's API reads ``system.api`` (the
`runtime` or `ray` module) and raises `Unsupported` on systems without it. `collect()`
gathers every module's rows, in module-name order, for `benchmarks.microbenchmark`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from benchmarks.rowkit import Row, Unsupported

__all__ = ["collect", "ray_api"]


def ray_api(system: Any) -> Any:
    """The Ray-like API module of `system` (`runtime` or `ray`); `Unsupported` for others."""
    api = getattr(system, "api", None)
    if api is None or not hasattr(api, "remote"):
        raise Unsupported("no Ray API")
    return api


def collect() -> tuple[tuple[Row, ...], tuple[tuple[Any, tuple[str, ...]], ...]]:
    """Every row and group defined by this package's modules."""
    rows: list[Row] = []
    groups: list[tuple[Any, tuple[str, ...]]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rows.extend(module.ROWS)
        groups.extend(module.GROUPS)
    return tuple(rows), tuple(groups)
