"""Ray's scheduling strategies (`runtime.util.scheduling_strategies`) and their translation for the core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.core.placement import SPREAD, NodeAffinity, PlacementGroupStrategy
from runtime.core.resources import fits

if TYPE_CHECKING:
    from runtime.util.placement_group import PlacementGroup  # noqa: F401

__all__ = [
    "NodeAffinitySchedulingStrategy",
    "PlacementGroupSchedulingStrategy",
]

NODE_ID_HEX_LEN = 56
"""Node ids are 28 bytes, written as 56 hex digits (as in Ray)."""


class PlacementGroupSchedulingStrategy:
    """Run a task or actor in a placement group's bundle (-1: any bundle that fits).

    ``placement_group_capture_child_tasks``: tasks and actors it creates without a
    strategy of their own go in the same group (None: inherit the creator's setting).
    """

    def __init__(
        self,
        placement_group: PlacementGroup,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run a task or actor on the node ``node_id`` (a hex string, as `get_node_id()` gives).

    ``soft=False``: fail when that node is gone or can never fit it; ``soft=True``: run
    elsewhere then. While the node exists and fits, it waits there for resources.
    """

    def __init__(
        self,
        node_id: str,
        soft: bool,
        _spill_on_unavailable: bool = False,
        _fail_on_unavailable: bool = False,
    ) -> None:
        if not isinstance(node_id, str):
            node_id = node_id.hex()
        self.node_id = node_id
        self.soft = soft
        if _spill_on_unavailable or _fail_on_unavailable:
            raise ValueError(
                "_spill_on_unavailable and _fail_on_unavailable are not supported by twinray"
            )
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable
        node_int(node_id)  # validates


def node_int(node_id: str) -> int:
    """The core's integer node id of a hex node id; ValueError naming the bad value."""
    bad = ValueError(
        f"Invalid node_id '{node_id}'. Node ID must be a valid hex string of "
        f"{NODE_ID_HEX_LEN} digits; runtime.nodes() lists the nodes and their ids."
    )
    if len(node_id) != NODE_ID_HEX_LEN:
        raise bad
    try:
        return int(node_id, 16)
    except ValueError:
        raise bad from None


_VALID = (
    '["DEFAULT" | "SPREAD" | PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy]'
)


def check_strategy_option(value: Any) -> None:
    """Reject a ``scheduling_strategy`` option value Ray would reject (ValueError)."""
    if value is None or value in ("DEFAULT", "SPREAD"):
        return
    if isinstance(value, PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy):
        return
    raise ValueError(f"Invalid scheduling_strategy value {value}. Valid values are {_VALID}")


def to_core(
    strategy: Any,
    placement_group: Any,
    bundle_index: int,
    capture: bool | None,
    demand: dict[str, float],
    what: str,
    current: tuple[int, list[dict[str, float]], bool] | None = None,
) -> Any:
    """The core strategy (``runtime.core.placement``) of a task's or actor's options; None: default.

    Follows Ray: a ``PlacementGroupSchedulingStrategy`` (or the deprecated
    ``placement_group=`` options) names the group; without one, a task created inside a
    group that captures child tasks (``current``) goes in the same group. The bundle
    index and the request's shape are checked here, so a task that can never fit its
    bundle fails at ``.remote()`` with ValueError, as in Ray.
    """
    from runtime.util.placement_group import PlacementGroup, PlacementGroupID

    check_strategy_option(strategy)
    if strategy == "SPREAD":
        return SPREAD
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return NodeAffinity(node_int(strategy.node_id), bool(strategy.soft))
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        if placement_group not in ("default", None):
            raise ValueError(
                "Placement groups should be specified via the scheduling_strategy option. "
                "The placement_group option is deprecated."
            )
        placement_group = strategy.placement_group
        bundle_index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    elif strategy == "DEFAULT":
        return None
    inherited = current is not None and current[2]
    if capture is None:
        capture = inherited
    if placement_group == "default":
        if current is not None and capture:
            placement_group = PlacementGroup(PlacementGroupID(current[0]), current[1])
        else:
            placement_group = None
    if placement_group is None:
        if bundle_index != -1:
            raise ValueError("If placement group is not set, the value of bundle index must be -1.")
        return None
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(
            f"placement_group must be a PlacementGroup, got {type(placement_group).__name__}"
        )
    bundles = placement_group.bundle_specs
    if not isinstance(bundle_index, int) or not -1 <= bundle_index < len(bundles):
        raise ValueError(
            f"placement group bundle index {bundle_index} is invalid. Valid placement group "
            f"indexes: 0-{len(bundles)}"
        )
    candidates = bundles if bundle_index < 0 else [bundles[bundle_index]]
    plain = {k: v for k, v in demand.items() if v > 0}
    if not any(fits(plain, b) for b in candidates):
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the resource request "
            f"{plain} cannot fit into any bundles for the placement group, {bundles}."
        )
    return PlacementGroupStrategy(placement_group.id.value, bundle_index, bool(capture))


def strategy_of(
    options: Any,
    demand: dict[str, float],
    what: str,
    current: tuple[int, list[dict[str, float]], bool] | None = None,
) -> Any:
    """The core strategy of task or actor ``options`` (see ``to_core``); None: default."""
    if (
        options.scheduling_strategy is None
        and options.placement_group == "default"
        and options.placement_group_bundle_index == -1
        and (current is None or not current[2])
    ):
        return None  # the common case, cheaply
    return to_core(
        options.scheduling_strategy,
        options.placement_group,
        options.placement_group_bundle_index,
        options.placement_group_capture_child_tasks,
        demand,
        what,
        current,
    )


def raw_options(options: Any) -> tuple[Any, Any, int, bool | None] | None:
    """The strategy options as plain values, to send from a worker (None: all default)."""
    if (
        options.scheduling_strategy is None
        and options.placement_group == "default"
        and options.placement_group_bundle_index == -1
        and options.placement_group_capture_child_tasks is None
    ):
        return None
    return (
        options.scheduling_strategy,
        options.placement_group,
        options.placement_group_bundle_index,
        options.placement_group_capture_child_tasks,
    )


class _Raw:
    """Strategy options rebuilt from ``raw_options`` (attribute access like the options)."""

    __slots__ = (
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
    )

    def __init__(self, raw: tuple[Any, Any, int, bool | None] | None) -> None:
        values = raw if raw is not None else (None, "default", -1, None)
        (
            self.scheduling_strategy,
            self.placement_group,
            self.placement_group_bundle_index,
            self.placement_group_capture_child_tasks,
        ) = values


def strategy_of_raw(
    raw: tuple[Any, Any, int, bool | None] | None,
    demand: dict[str, float],
    what: str,
    current: tuple[int, list[dict[str, float]], bool] | None,
) -> Any:
    """``strategy_of`` for options a worker sent as ``raw_options``."""
    return strategy_of(_Raw(raw), demand, what, current)
