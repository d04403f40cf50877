"""Ray's placement-group API (`runtime.util.placement_group`): gang-reserved bundles of resources.

The core decides everything (``runtime.core.placement``, the GCS table, the global
scheduler's prepare/commit): this module validates arguments as Ray does and asks the
node (the driver, or the driver on behalf of a worker) to create, remove or describe
groups.
"""

from __future__ import annotations

from typing import Any

from runtime.core.placement import PG_REMOVED, PG_STRATEGIES
from runtime.exceptions import RayError, RaySystemError

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

_SCHEDULING_STATES = {
    "PENDING": "QUEUED",
    "CREATED": "FINISHED",
    "RESCHEDULING": "RESCHEDULING",
    "REMOVED": "REMOVED",
}


class PlacementGroupID:
    """A placement group's id (the core's integer id; ``hex()`` names its resources)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    @classmethod
    def nil(cls) -> PlacementGroupID:
        """The id of no group."""
        return cls(0)

    def is_nil(self) -> bool:
        """True for the id of no group."""
        return self.value == 0

    def hex(self) -> str:
        """The id in hex, as it appears in resource names (``CPU_group_<hex>``)."""
        return f"{self.value:x}"

    def binary(self) -> bytes:
        """The id as bytes."""
        return self.value.to_bytes(18, "big")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("pg", self.value))

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group: wait for it (``ready``/``wait``), read its bundles."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        """The handle of no group."""
        return PlacementGroup(PlacementGroupID.nil())

    @property
    def is_empty(self) -> bool:
        """True for the handle of no group."""
        return self.id.is_nil()

    def ready(self) -> Any:
        """An ObjectRef that resolves to this handle once every bundle is reserved.

        `get` on it raises `TaskPlacementGroupRemoved` if the group is removed first.
        """
        from runtime.api import _current_node
        from runtime.real.serialization import serialize

        node = _current_node()
        if self.is_empty:
            return node.put(self)
        payload = serialize(self, "placement group").to_bytes()
        return node.placement_group_ready(self.id.value, payload)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Wait up to ``timeout_seconds`` for the group to be created; True if it is."""
        from runtime.api import _current_node

        node = _current_node()
        rows = node.placement_group_rows(self.id.value, None)
        if not rows or rows[0]["state"] == PG_REMOVED:
            raise RayError(f"Placement group {self.id!r} does not exist.")
        ref = self.ready()
        ready, _ = node.wait([ref], 1, timeout_seconds)
        if not ready:
            return False
        try:
            node.get(ready, None)
        except RayError as exc:
            raise RayError(f"Placement group {self.id!r} does not exist.") from exc
        return True

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, in order: one resource dict each."""
        self._fill_bundle_cache()
        return list(self.bundle_cache or [])

    @property
    def bundle_count(self) -> int:
        """The number of bundles."""
        self._fill_bundle_cache()
        return len(self.bundle_cache or [])

    def _fill_bundle_cache(self) -> None:
        if not self.bundle_cache and not self.is_empty:
            from runtime.api import _current_node

            rows = _current_node().placement_group_rows(self.id.value, None)
            self.bundle_cache = [dict(b) for b in rows[0]["bundles"]] if rows else []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def _validate_bundles(bundles: Any) -> None:
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError(
            "Bundles must be a non-empty list of resource dictionaries. For example: "
            '`[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.'
        )
    for bundle in bundles:
        if (
            not isinstance(bundle, dict)
            or not all(isinstance(k, str) for k in bundle)
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in bundle.values()
            )
        ):
            raise ValueError(
                "Bundles must be a non-empty list of resource dictionaries. For example: "
                '`[{"CPU": 1.0}, {"GPU": 1.0}]`.'
            )
        if not bundle or all(v == 0 for v in bundle.values()):
            raise ValueError(
                "Bundles cannot be an empty dictionary or resources with only 0 values. "
                f"Bundles: {bundles}"
            )
        negative = [k for k, v in bundle.items() if v < 0]
        if negative:
            raise ValueError(f"Bundle resources cannot be negative: {negative} in {bundle}")


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str | None = None,
    name: str = "",
    lifetime: str | None = None,
) -> PlacementGroup:
    """Reserve ``bundles`` by ``strategy`` (PACK by default), asynchronously; all or nothing.

    "PACK": as few nodes as possible; "SPREAD": as many distinct nodes as possible;
    "STRICT_PACK": one node; "STRICT_SPREAD": a distinct node per bundle. A group that
    cannot be placed stays PENDING, with the reason in `placement_group_table`, until
    nodes that fit it exist. As in Ray, a group created by an actor is removed when that
    actor dies unless ``lifetime="detached"``; one created by the driver or a task lives
    as long as the job (until `shutdown`).
    """
    from runtime.api import _current_node

    if strategy is not None and strategy not in PG_STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy}. Supported strategies are: "
            f"{set(PG_STRATEGIES)}."
        )
    _validate_bundles(bundles)
    if lifetime not in (None, "detached"):
        raise ValueError(
            "Placement group `lifetime` argument must be either `None` or "
            f"'detached'. Got {lifetime}."
        )
    if not isinstance(name, str):
        raise TypeError(f"placement group name must be a str, got {type(name).__name__}")
    specs = [{k: float(v) for k, v in b.items()} for b in bundles]
    node = _current_node()
    if name and node.placement_group_rows(None, name):
        raise RaySystemError(
            f"System error: Failed to create placement group because name {name!r} already exists."
        )
    pg_id = node.create_placement_group(specs, strategy or "PACK", name, lifetime)
    return PlacementGroup(PlacementGroupID(pg_id), bundle_cache=specs)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group, asynchronously: its actors are killed, its pending and running
    tasks fail with `TaskPlacementGroupRemoved`, its resources return to the nodes."""
    from runtime.api import _current_node

    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(
            f"remove_placement_group() expects a PlacementGroup, got "
            f"{type(placement_group).__name__}"
        )
    _current_node().remove_placement_group(placement_group.id.value)


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live (not removed) group named ``placement_group_name``; ValueError if none."""
    from runtime.api import _current_node

    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    rows = _current_node().placement_group_rows(None, placement_group_name)
    if not rows:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    row = rows[0]
    return PlacementGroup(PlacementGroupID(row["pg_id"]), [dict(b) for b in row["bundles"]])


def _ray_row(row: dict[str, Any]) -> dict[str, Any]:
    """A GCS row in Ray's ``placement_group_table`` shape (plus ``stats["reason"]``)."""
    latency = (row["placed_at"] - row["created_at"]) * 1000 if row["placed_at"] >= 0 else 0.0
    state = row["state"]
    scheduling = _SCHEDULING_STATES.get(state, state)
    if state == "PENDING" and row["reason"].startswith("infeasible"):
        scheduling = "INFEASIBLE"
    return {
        "placement_group_id": f"{row['pg_id']:x}",
        "name": row["name"],
        "bundles": {i: dict(b) for i, b in enumerate(row["bundles"])},
        "bundles_to_node_id": {
            i: (f"{n:056x}" if n >= 0 else "") for i, n in enumerate(row["bundle_nodes"])
        },
        "strategy": row["strategy"],
        "state": state,
        "stats": {
            "end_to_end_creation_latency_ms": round(latency, 3),
            "scheduling_latency_ms": round(latency, 3),
            "scheduling_attempt": row["attempts"],
            "highest_retry_delay_ms": 0.0,
            "scheduling_state": scheduling,
            "reason": row["reason"],
        },
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """The state of one group (a dict with Ray's keys), or of all of them by hex id.

    ``stats["reason"]`` (twinray's addition) says why a PENDING group is not placed: which
    bundle could not be placed and why.
    """
    from runtime.api import _current_node

    node = _current_node()
    if placement_group is None:
        rows = node.placement_group_rows(None, None)
        return {f"{row['pg_id']:x}": _ray_row(row) for row in rows}
    rows = node.placement_group_rows(placement_group.id.value, None)
    return _ray_row(rows[0]) if rows else {}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in the driver or outside groups."""
    from runtime.api import _current_node

    current = _current_node().current_placement_group()
    if current is None:
        return None
    pg_id, bundles, _ = current
    return PlacementGroup(PlacementGroupID(pg_id), [dict(b) for b in bundles])
