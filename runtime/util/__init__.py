"""Ray's `ray.util` namespace: actor pools, queues, placement groups, scheduling strategies, state.

Submodules load on first use, so `import runtime` stays light (but for the small
`placement_group`, imported at once, see below):
`runtime.util.ActorPool`, `runtime.util.queue.Queue`, `runtime.util.placement_group(...)`,
`runtime.util.scheduling_strategies`, `runtime.util.state`.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule defining it (a submodule name maps to itself)
_EXPORTS: dict[str, str] = {
    "ActorPool": "actor_pool",
    "placement_group": "placement_group",
    "remove_placement_group": "placement_group",
    "get_placement_group": "placement_group",
    "placement_group_table": "placement_group",
    "get_current_placement_group": "placement_group",
    "PlacementGroup": "placement_group",
}
_SUBMODULES = frozenset(
    {"actor_pool", "queue", "placement_group", "scheduling_strategies", "state"}
)

__all__ = sorted(_EXPORTS)

# Eager, as in Ray: importing the submodule `placement_group` binds that name on this
# package to the module, so the function of the same name is bound here after it.
from runtime.util.placement_group import (  # noqa: E402, F401
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(_EXPORTS) | _SUBMODULES)
