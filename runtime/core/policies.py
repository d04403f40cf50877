"""Placement policies: small pluggable classes deciding where a task runs.

A policy answers two questions. The raylet asks ``run_locally``: keep this task here
(queue it if it cannot start yet) or hand it to the global scheduler? The global
scheduler asks ``choose``: which of the feasible nodes should run it? Each answer
carries a short reason, so the system can say why a task ran where it did.

To add a policy, subclass ``PlacementPolicy``, give it a ``name`` and register it in
``POLICIES``; scenarios and ``runtime.init(scheduling_policy=...)`` find it by name. Every
policy is built from the cluster's ``CoreConfig``; the config fields a policy reads are its
parameters, named in its ``params`` (a scenario may set only those, e.g.
``scheduler.sample_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from runtime.core.config import CoreConfig
from runtime.core.ids import Address, NodeId
from runtime.core.resources import Resources
from runtime.core.rng import Rng
from runtime.core.task import TaskSpec


@dataclass(slots=True)
class NodeView:
    """The global scheduler's picture of one node, refreshed by resource reports."""

    node: NodeId
    addr: Address
    total: Resources
    available: Resources = field(default_factory=dict)
    queued: int = 0
    running: int = 0
    assigned: int = 0
    """Tasks this scheduler sent to the node since its last report."""
    spread_pending: Resources = field(default_factory=dict)
    """What SPREAD tasks sent to the node since its last ``ResourceReport`` asked for: its
    room is ``available`` (as of that report) less this. Unlike ``assigned`` it is not
    reset by the node's spills, which carry fresh load but not fresh resources."""

    def load(self) -> float:
        """Estimated work per CPU on the node: the lower, the sooner a new task starts."""
        slots = self.total.get("CPU", 0.0) or 1.0
        return (self.queued + self.running + self.assigned) / slots


@dataclass(slots=True)
class LocalState:
    """What a raylet tells the policy about itself when a task arrives."""

    node: NodeId
    fits_now: bool
    queued: int
    threshold: int
    local_dep_bytes: int
    remote_dep_bytes: int


class PlacementPolicy:
    """Base class: by default run locally when possible and pick the least-loaded node."""

    name: ClassVar[str] = "base"
    params: ClassVar[tuple[str, ...]] = ()
    """The ``CoreConfig`` fields this policy reads: its parameters."""

    def __init__(self, config: CoreConfig) -> None:
        """Keep the config the policy's parameters come from."""
        self.config = config

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Return a reason to keep ``spec`` on this node, or None to spill it."""
        raise NotImplementedError

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """Pick a node among ``candidates`` (non-empty, all feasible) and say why."""
        raise NotImplementedError


def _sample_size(config: CoreConfig) -> int:
    """``config.sample_size``, checked: a sampling policy needs at least one node per draw."""
    size = config.sample_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"sample_size: expected an integer >= 1, got {size!r}")
    return size


def _least_loaded_of_sample(candidates: Sequence[NodeView], k: int, rng: Rng) -> NodeView:
    n = len(candidates)
    if n <= k:
        sample: Sequence[NodeView] = candidates
    else:
        sample = [candidates[int(rng.random() * n)] for _ in range(k)]
    best = sample[0]
    best_load = best.load()
    for view in sample[1:]:
        load = view.load()
        if load < best_load:
            best, best_load = view, load
    return best


class BottomUp(PlacementPolicy):
    """The Ray paper's bottom-up scheduler.

    A raylet keeps a task when it can start it now or its queue is below the spillback
    threshold; otherwise the global scheduler places it on the least loaded of a few
    sampled nodes (sampling keeps the decision O(1) in the cluster size).
    """

    name = "bottom_up"
    params = ("sample_size",)

    def __init__(self, config: CoreConfig) -> None:
        """Read ``sample_size`` (an integer >= 1) from the config."""
        super().__init__(config)
        self.sample_size = _sample_size(config)

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Keep the task if it can start now or the local queue is below the threshold."""
        if state.fits_now:
            return "local: resources free"
        if state.queued < state.threshold:
            return "local: queued below spillback threshold"
        return None

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """The least loaded of ``sample_size`` randomly sampled feasible nodes."""
        return _least_loaded_of_sample(candidates, self.sample_size, rng), "global: least loaded"


class Centralized(PlacementPolicy):
    """Every task goes through the global scheduler, which picks the least loaded node.

    The choice scans all feasible nodes (O(nodes) per task): that is the point of this
    policy as a baseline whose scheduler saturates.
    """

    name = "centralized"

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Never: the global scheduler decides every placement."""
        return None

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """The globally least loaded feasible node (ties broken by a random start offset)."""
        n = len(candidates)
        start = int(rng.random() * n)
        best = candidates[start]
        best_load = best.load()
        for i in range(1, n):
            view = candidates[(start + i) % n]
            load = view.load()
            if load < best_load:
                best, best_load = view, load
        return best, "global: least loaded of all"


class RandomPlacement(PlacementPolicy):
    """Every task goes to a uniformly random feasible node (a baseline)."""

    name = "random"

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Never: placement is random."""
        return None

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """A uniformly random feasible node."""
        return candidates[int(rng.random() * len(candidates))], "global: random"


class PowerOfTwo(PlacementPolicy):
    """Every task goes to the less loaded of two (``sample_size``) random feasible nodes."""

    name = "power_of_two"
    params = ("sample_size",)

    def __init__(self, config: CoreConfig) -> None:
        """Read ``sample_size`` (an integer >= 1; 2 by default) from the config."""
        super().__init__(config)
        self.sample_size = _sample_size(config)

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Never: the global scheduler samples for every task."""
        return None

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """The least loaded of ``sample_size`` (two by default) sampled feasible nodes."""
        return (
            _least_loaded_of_sample(candidates, self.sample_size, rng),
            "global: power of two choices",
        )


class LocalityAware(BottomUp):
    """Bottom-up, but tasks whose inputs mostly live elsewhere go where their bytes are."""

    name = "locality"

    def run_locally(self, state: LocalState, spec: TaskSpec) -> str | None:
        """Keep the task unless more of its input bytes live on other nodes than here."""
        if state.remote_dep_bytes > state.local_dep_bytes:
            return None
        return super().run_locally(state, spec)

    def choose(
        self, candidates: Sequence[NodeView], spec: TaskSpec, rng: Rng
    ) -> tuple[NodeView, str]:
        """The feasible node holding the most input bytes, else bottom-up's choice."""
        if spec.deps:
            weight: dict[NodeId, int] = {}
            for dep in spec.deps:
                for node in dep.locations:
                    weight[node] = weight.get(node, 0) + dep.size
            by_node = {view.node: view for view in candidates}
            ranked = sorted(weight.items(), key=lambda item: (-item[1], item[0]))
            for node, _ in ranked:
                view = by_node.get(node)
                if view is not None:
                    return view, "global: holds most input bytes"
        return super().choose(candidates, spec, rng)


POLICIES: dict[str, type[PlacementPolicy]] = {
    cls.name: cls for cls in (BottomUp, Centralized, RandomPlacement, PowerOfTwo, LocalityAware)
}


def make_policy(config: CoreConfig) -> PlacementPolicy:
    """Instantiate the policy ``config.policy`` names, with its parameters from ``config``.

    Unknown names list the known ones (ValueError), as do out-of-range parameters.
    """
    cls = POLICIES.get(config.policy)
    if cls is None:
        known = ", ".join(sorted(POLICIES))
        raise ValueError(f"unknown scheduling policy {config.policy!r}; expected one of: {known}")
    return cls(config)


def policies_with(param: str) -> list[str]:
    """Names of the registered policies that read ``param`` from the config, sorted."""
    return sorted(name for name, cls in POLICIES.items() if param in cls.params)
