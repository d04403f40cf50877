"""``tune.PlacementGroupFactory``: a trial's resources as placement-group bundles (Ray's class).

The trial's trainable runs in the first bundle (the "head"); the other bundles are
reserved for the tasks and actors it starts, which the group captures. A head bundle
with no resources gives the trainable none: it runs in the group beside bundle 0.
"""

from __future__ import annotations

from typing import Any

from runtime.tune.errors import TuneError

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupFactory:
    """The bundles (and strategy) of the placement group each trial is given."""

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK") -> None:
        if not isinstance(bundles, list | tuple) or not bundles:
            raise TuneError(
                "PlacementGroupFactory needs a non-empty list of bundles (dicts of resources), "
                f"got {bundles!r}"
            )
        if strategy not in STRATEGIES:
            raise TuneError(
                f"PlacementGroupFactory strategy must be one of {STRATEGIES}, got {strategy!r}"
            )
        cleaned: list[dict[str, float]] = []
        for i, bundle in enumerate(bundles):
            if not isinstance(bundle, dict):
                raise TuneError(f"bundle {i} must be a dict of resources, got {bundle!r}")
            for key, value in bundle.items():
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise TuneError(f"bundle {i}[{key!r}] must be a number >= 0, got {value!r}")
            cleaned.append({k: float(v) for k, v in bundle.items() if v != 0})
        self._head_bundle_is_empty = not cleaned[0]
        if self._head_bundle_is_empty:
            cleaned.pop(0)
            if not cleaned:
                raise TuneError(
                    "Cannot initialize a ResourceRequest with an empty head and zero worker "
                    "bundles."
                )
        self._bundles = cleaned
        self._strategy = strategy

    @property
    def bundles(self) -> list[dict[str, float]]:
        """A copy of the bundles (without an empty head bundle)."""
        return [dict(b) for b in self._bundles]

    @property
    def strategy(self) -> str:
        """How the bundles are placed (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD)."""
        return self._strategy

    @property
    def head_bundle_is_empty(self) -> bool:
        """Whether the trainable itself takes no resources."""
        return self._head_bundle_is_empty

    @property
    def head_cpus(self) -> float:
        """The CPUs of the trainable's own bundle."""
        return 0.0 if self._head_bundle_is_empty else self._bundles[0].get("CPU", 0.0)

    @property
    def required_resources(self) -> dict[str, float]:
        """The sum of all bundles: what a trial holds while it runs."""
        total: dict[str, float] = {}
        for bundle in self._bundles:
            for key, value in bundle.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def to_placement_group(self) -> Any:
        """Create the placement group (asynchronously, as ``placement_group()``)."""
        from runtime.util.placement_group import placement_group

        return placement_group(self.bundles, strategy=self._strategy)

    def actor_options(self, group: Any) -> dict[str, Any]:
        """The options that put the trainable's actor in ``group``'s head bundle (Ray's)."""
        from runtime.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        head = {} if self._head_bundle_is_empty else dict(self._bundles[0])
        options: dict[str, Any] = {
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=group,
                placement_group_bundle_index=0,
                placement_group_capture_child_tasks=True,
            ),
            "num_cpus": head.pop("CPU", 0.0),
            "num_gpus": head.pop("GPU", 0.0),
        }
        if head:
            options["resources"] = head
        return options

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PlacementGroupFactory)
            and self._bundles == other._bundles
            and self._strategy == other._strategy
            and self._head_bundle_is_empty == other._head_bundle_is_empty
        )

    def __hash__(self) -> int:
        return hash((repr(self._bundles), self._strategy, self._head_bundle_is_empty))

    def __repr__(self) -> str:
        return f"PlacementGroupFactory({self._bundles!r}, strategy={self._strategy!r})"


__all__ = ["PlacementGroupFactory"]
