"""Load, override and validate scenario YAML files into typed pydantic models."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sim.profile import apply_profile

DEFAULT_POLICIES: tuple[str, ...] = (
    "bottom_up",
    "centralized",
    "random",
    "power_of_two",
    "locality",
)
"""Policy names accepted when neither a registry is passed nor the core's can be imported."""


def known_policies() -> tuple[str, ...]:
    """Names in the core's policy registry (imported lazily), else DEFAULT_POLICIES."""
    try:
        from runtime.core.policies import POLICIES
    except ImportError:
        return DEFAULT_POLICIES
    return tuple(POLICIES)


class ScenarioError(ValueError):
    """A scenario file could not be read or is invalid; one message line per problem."""

    def __init__(self, problems: list[str]) -> None:
        """Keep the individual problem lines and join them into the message."""
        self.problems = problems
        super().__init__("\n".join(problems))


class _Spec(BaseModel):
    """Base of every scenario section: strict types, unknown fields rejected, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- distributions -------------------------------------------------------------------------


class ConstantDist(_Spec):
    """Always the same value."""

    dist: Literal["constant"]
    value: float = Field(ge=0)


class ExponentialDist(_Spec):
    """Exponential distribution with the given mean."""

    dist: Literal["exponential"]
    mean: float = Field(gt=0)


class UniformDist(_Spec):
    """Uniform distribution on [low, high]."""

    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformDist:
        if self.high < self.low:
            raise ValueError(f"expected high >= low, got low={self.low:g} high={self.high:g}")
        return self


class LognormalDist(_Spec):
    """Lognormal distribution; `mean` is the mean of the distribution, not of its log."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    sigma: float = Field(ge=0)


class NormalDist(_Spec):
    """Normal distribution truncated at 0 (negative draws are redrawn)."""

    dist: Literal["normal"]
    mean: float = Field(ge=0)
    stddev: float = Field(ge=0)


def _bare_number_is_constant(value: Any) -> Any:
    """Accept a bare number where a distribution is expected, as a constant."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


DistSpec = Annotated[
    ConstantDist | ExponentialDist | UniformDist | LognormalDist | NormalDist,
    Field(discriminator="dist"),
    BeforeValidator(_bare_number_is_constant),
]
"""A distribution spec: `{dist: <name>, ...}` or a bare number (constant)."""


# --- sections ------------------------------------------------------------------------------


class NodeGroupSpec(_Spec):
    """A group of identical nodes (e.g. 64 CPU nodes, or 8 GPU nodes)."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_-]+$")
    count: int = Field(1, ge=1)
    cpus: int = Field(32, ge=0)
    gpus: int = Field(0, ge=0)
    memory_gb: float = Field(0, ge=0)
    """Schedulable memory, as the resource ``memory`` in GB (0: not a resource)."""
    object_store_mb: float = Field(2048, gt=0)
    custom_resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    def resources(self) -> dict[str, float]:
        """The resources of one node of this group (zero entries left out)."""
        res = {"CPU": float(self.cpus)}
        if self.gpus:
            res["GPU"] = float(self.gpus)
        if self.memory_gb:
            res["memory"] = float(self.memory_gb)
        res.update(self.custom_resources)
        return res


class ClusterSpec(_Spec):
    """Size and per-node resources of the simulated cluster.

    Either one homogeneous group described by ``nodes``/``cpus_per_node``/... or explicit
    ``groups`` (heterogeneous clusters); with groups, ``nodes`` is their total count and
    nodes are numbered group by group, in order.
    """

    nodes: int = Field(100, ge=1)
    cpus_per_node: int = Field(32, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    memory_gb_per_node: float = Field(0, ge=0)
    custom_resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    object_store_mb: float = Field(2048, gt=0)
    groups: list[NodeGroupSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _count_groups(self) -> ClusterSpec:
        if self.groups:
            total = sum(g.count for g in self.groups)
            if "nodes" in self.model_fields_set and self.nodes != total:
                raise ValueError(
                    f"expected nodes to be left out or equal the groups' total ({total}),"
                    f" got {self.nodes}"
                )
            object.__setattr__(self, "nodes", total)
        return self

    def node_groups(self) -> list[NodeGroupSpec]:
        """The node groups, a single default one when none are given."""
        if self.groups:
            return list(self.groups)
        return [
            NodeGroupSpec(
                name="default",
                count=self.nodes,
                cpus=self.cpus_per_node,
                gpus=self.gpus_per_node,
                memory_gb=self.memory_gb_per_node,
                object_store_mb=self.object_store_mb,
                custom_resources=dict(self.custom_resources),
            )
        ]


class EdgeSpec(_Spec):
    """One link of an explicit topology: ints are compute nodes, strings are switches."""

    a: int | str
    b: int | str
    latency_us: float = Field(ge=0)
    bandwidth_gbps: float = Field(gt=0)


class NetworkSpec(_Spec):
    """Network topology and link parameters.

    * ``star``: one switch, one link (``link_*``) per node.
    * ``two_tier``: racks of ``nodes_per_rack`` nodes under top-of-rack switches, each
      linked to one spine by an uplink of ``nodes_per_rack x link bandwidth /
      oversubscription`` and ``uplink_latency_us``.
    * ``fat_tree``: the k-ary fat-tree (``fat_tree_k``; default the smallest even k with
      k^3/4 >= nodes), every link ``link_*``.
    * ``edges``: an explicit edge list (networkx-style), ``{a, b, latency_us, bandwidth_gbps}``.

    Control messages cost path latency + size / bottleneck bandwidth; object transfers share
    links max-min fairly (``sim.flows``).
    """

    topology: Literal["star", "two_tier", "fat_tree", "edges"] = "star"
    link_latency_us: float = Field(25, ge=0)
    link_bandwidth_gbps: float = Field(10, gt=0)
    local_latency_us: float = Field(2, ge=0)
    nodes_per_rack: int = Field(16, ge=1)
    uplink_latency_us: float = Field(25, ge=0)
    oversubscription: float = Field(4.0, gt=0)
    fat_tree_k: int | None = Field(None, ge=2)
    edges: list[EdgeSpec] = Field(default_factory=list)


class ControlPlaneSpec(_Spec):
    """Per-message service time of each control-plane component, in microseconds."""

    owner_us: float = Field(3, ge=0)
    raylet_us: float = Field(5, ge=0)
    global_scheduler_us: float = Field(10, ge=0)
    gcs_us: float = Field(10, ge=0)
    per_kib_us: float = Field(0.05, ge=0)
    gcs_shards: int = Field(1, ge=1)
    """GCS shards (objects and tasks hashed by id over them; see sim/shards.py)."""
    record_task_events: bool = True
    """Raylets batch task state changes to the GCS task table (costs GCS time and memory)."""
    profile: str | None = None
    """Calibration profile (`run-scenario --calibrate`): its control_plane and network
    values are this scenario's defaults; fields given here win (see sim/profile.py)."""
    task_overhead_us: float = Field(0, ge=0)
    """CPU-slot time every task holds beyond its body: dispatch to a worker and the return
    of its result (a calibration profile measures it on real workers)."""
    store_put_us_per_mib: float = Field(0, ge=0)
    """Further slot time per MiB of output written to the object store."""


class SchedulerSpec(_Spec):
    """Placement policy and its knobs."""

    policy: str = "bottom_up"
    spillback_threshold: int = Field(16, ge=0)
    report_interval_ms: float = Field(100, gt=0)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("policies") or DEFAULT_POLICIES
        if value not in known:
            raise PydanticCustomError(
                "unknown_policy",
                "expected one of {expected}",
                {"expected": ", ".join(repr(p) for p in sorted(known))},
            )
        return value


class PlacementGroupSpec(_Spec):
    """Placement groups a workload's tasks and actors run in (Ray's gang-reserved bundles).

    Each driver creates ``count`` groups of ``bundles`` by ``strategy`` before it submits
    anything; its tasks and actors go to its groups in turn, in any bundle that fits
    (``bundle: any``) or bundle after bundle (``bundle: round_robin``).
    """

    bundles: list[dict[str, Annotated[float, Field(ge=0)]]] = Field(min_length=1)
    strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    count: int = Field(1, ge=1)
    bundle: Literal["any", "round_robin"] = "any"

    @field_validator("bundles")
    @classmethod
    def _nonempty_bundles(cls, value: list[dict[str, float]]) -> list[dict[str, float]]:
        for i, bundle in enumerate(value):
            if not any(v > 0 for v in bundle.values()):
                raise ValueError(f"expected bundle {i} to request some resource, got {bundle}")
        return value


class _WorkloadBase(_Spec):
    """Fields shared by every workload kind: drivers, durations, sizes and resource demands.

    ``gpu_duration_ms``, when given, is the duration model of tasks that request GPUs
    (GPU work has its own speed); otherwise they use ``duration_ms`` too.
    ``scheduling_strategy: spread`` spreads tasks and actors over the nodes (Ray's
    ``"SPREAD"``); ``placement_group`` puts them in placement groups instead.
    """

    drivers: int = Field(1, ge=1)
    duration_ms: DistSpec = ExponentialDist(dist="exponential", mean=1.0)
    gpu_duration_ms: DistSpec | None = None
    output_bytes: DistSpec = ConstantDist(dist="constant", value=0.0)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Custom resources each task requests, e.g. {accelerator_x: 1}."""
    scheduling_strategy: Literal["default", "spread"] = "default"
    placement_group: PlacementGroupSpec | None = None

    def demand(self) -> dict[str, float]:
        """The resource request of one task (zero entries left out)."""
        return _demand(self.num_cpus, self.num_gpus, self.resources)

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """(field path, request) of every kind of task or actor this workload runs."""
        return [("workload", self.demand())]


def _demand(
    cpus: float, gpus: float, custom: Mapping[str, float] | None = None
) -> dict[str, float]:
    """A resource request from its parts (zero entries left out)."""
    res = {"CPU": float(cpus)} if cpus else {}
    if gpus:
        res["GPU"] = float(gpus)
    res.update({k: float(v) for k, v in (custom or {}).items() if v})
    return res


class IndependentWorkload(_WorkloadBase):
    """`tasks` independent tasks submitted by `drivers` drivers, each with a window.

    With ``poisson_rate_tps`` set, submission is open-loop instead: Poisson arrivals at
    that total rate (split evenly over drivers), whatever is in flight.
    """

    kind: Literal["independent"]
    tasks: int = Field(1000, ge=1)
    window: int = Field(1000, ge=1)
    poisson_rate_tps: float | None = Field(None, gt=0)


class ChainWorkload(_WorkloadBase):
    """`chains` chains of `length` dependent tasks, given to drivers round robin."""

    kind: Literal["chain"]
    length: int = Field(10, ge=1)
    chains: int = Field(1, ge=1)


class TreeWorkload(_WorkloadBase):
    """Tree reductions: `leaves` leaf tasks, combined `fan_in` at a time up to one root.

    Each driver runs its share of `trees`, keeping `window` trees in flight.
    """

    kind: Literal["tree"]
    trees: int = Field(1, ge=1)
    leaves: int = Field(16, ge=1)
    fan_in: int = Field(2, ge=2)
    window: int = Field(1, ge=1)


class ShuffleWorkload(_WorkloadBase):
    """Map-reduce shuffle: `maps` tasks each emit one partition (`output_bytes`) per reducer.

    Every reducer reads its partition of every map (maps x reduces transfers); `rounds`
    shuffles per driver, `window` in flight.
    """

    kind: Literal["shuffle"]
    maps: int = Field(8, ge=1)
    reduces: int = Field(8, ge=1, le=255)
    rounds: int = Field(1, ge=1)
    window: int = Field(1, ge=1)


class GraphWorkload(_WorkloadBase):
    """A task graph read from a JSON or YAML file (relative paths: from the scenario's folder).

    The file holds ``{"tasks": [{"id": str, "deps": [ids], "duration_ms": f,
    "output_bytes": n, "num_cpus": f, "num_gpus": f, "resources": {...}}, ...]}``; missing
    fields take the workload's values (distributions) and demands. Tasks are listed in
    any order; the graph must be acyclic. Each driver runs it `repeats` times, `window`
    copies in flight.
    """

    kind: Literal["graph"]
    file: str
    repeats: int = Field(1, ge=1)
    window: int = Field(1, ge=1)

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """The distinct requests of the file's tasks (unreadable files are reported apart)."""
        try:
            tasks = read_task_graph(Path(self.file))
        except (OSError, ValueError, yaml.YAMLError):
            return []
        demands: list[tuple[str, dict[str, float]]] = []
        for i, entry in enumerate(tasks):
            demand = _demand(
                entry.get("num_cpus", self.num_cpus),
                entry.get("num_gpus", self.num_gpus),
                entry.get("resources", self.resources),
            )
            if all(d != demand for _, d in demands):
                demands.append((f"workload.file (task {entry.get('id', i)!r})", demand))
        return demands


def read_task_graph(path: Path) -> list[dict[str, Any]]:
    """The task entries of a graph file: JSON, or YAML for .yaml/.yml files."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise ValueError("expected a mapping with a non-empty list 'tasks' of mappings")
    if not all("id" in t for t in tasks):
        raise ValueError("expected an 'id' in every task")
    return tasks


class ActorWorkload(_WorkloadBase):
    """`actors` stateful actors (split over drivers), each called `calls` times in order.

    Calls run up to ``max_concurrency`` at a time on their actor (``duration_ms`` each; 1,
    the default, is a sync actor: one at a time; more is a threaded or async actor whose
    calls overlap, e.g. waiting on I/O); a driver keeps `window` calls in flight per actor.
    Actors hold ``actor_cpus``/``actor_gpus`` while alive.
    """

    kind: Literal["actors"]
    actors: int = Field(4, ge=1)
    calls: int = Field(100, ge=1)
    window: int = Field(4, ge=1)
    max_concurrency: int = Field(1, ge=1)
    """Calls of one actor that run at once (Ray's ``max_concurrency``)."""
    actor_cpus: float = Field(1.0, ge=0)
    actor_gpus: float = Field(0.0, ge=0)

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """An actor's request."""
        return [("workload.actor_cpus", _demand(self.actor_cpus, self.actor_gpus, self.resources))]


class RLWorkload(_WorkloadBase):
    """RL training: rollout actors on CPUs feed a learner actor on a GPU, iterating.

    Each iteration every rollout actor produces `sample_bytes` of experience from the
    latest weights (``rollout_ms``); the learner trains on all of it (``train_ms``) and
    produces `weights_bytes` of new weights for the next iteration. One driver.
    """

    kind: Literal["rl"]
    rollout_actors: int = Field(8, ge=1)
    iterations: int = Field(10, ge=1)
    rollout_ms: DistSpec = ConstantDist(dist="constant", value=10.0)
    train_ms: DistSpec = ConstantDist(dist="constant", value=20.0)
    sample_bytes: DistSpec = ConstantDist(dist="constant", value=1e6)
    weights_bytes: DistSpec = ConstantDist(dist="constant", value=1e6)
    rollout_cpus: float = Field(1.0, ge=0)
    learner_cpus: float = Field(1.0, ge=0)
    learner_gpus: float = Field(1.0, ge=0)

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """Rollout actors and the learner."""
        return [
            ("workload.rollout_cpus", _demand(self.rollout_cpus, 0)),
            ("workload.learner_gpus", _demand(self.learner_cpus, self.learner_gpus)),
        ]


class ParameterServerWorkload(_WorkloadBase):
    """Data-parallel training with `servers` parameter-server actors (the weights sharded).

    Each iteration `workers` tasks (``duration_ms``, ``num_cpus``/``num_gpus``) read all
    weight shards and emit one gradient shard (`gradient_bytes`) per server; each server
    applies its shards (``update_ms``) and emits its new weight shard. One driver.
    """

    kind: Literal["parameter_server"]
    servers: int = Field(1, ge=1, le=255)
    workers: int = Field(8, ge=1)
    iterations: int = Field(10, ge=1)
    update_ms: DistSpec = ConstantDist(dist="constant", value=1.0)
    gradient_bytes: DistSpec = ConstantDist(dist="constant", value=1e6)
    server_cpus: float = Field(1.0, ge=0)

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """Workers and servers."""
        return [
            ("workload", self.demand()),
            ("workload.server_cpus", _demand(self.server_cpus, 0)),
        ]


class HyperparameterSearchWorkload(_WorkloadBase):
    """Hyperparameter search with early stopping (asynchronous successive halving).

    `trials` trials of up to `epochs` epochs (one task each, ``duration_ms`` or
    ``gpu_duration_ms``), at most `concurrent_trials` at a time per driver. Each trial has
    a hidden quality drawn uniformly; at epochs grace, grace*rf, grace*rf^2, ... a trial
    continues only if its quality is in the top 1/rf of the trials seen at that rung.
    """

    kind: Literal["hyperparameter_search"]
    trials: int = Field(32, ge=1)
    epochs: int = Field(9, ge=1)
    concurrent_trials: int = Field(8, ge=1)
    grace_epochs: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)


class StreamWorkload(_WorkloadBase):
    """Streaming generators: `producers` tasks each yield `items` items over their run.

    A producer's items are yielded evenly over its `duration_ms` (item `i` of `n` at
    `(i + 1) / (n + 1)` of it), each of `item_bytes`; every item, as it reaches its driver, is
    the argument of one consumer task (`consumer_duration_ms`, same resources), so
    consumers start while their producer still runs. Each driver keeps `window`
    producers in flight; a producer that fails ends its stream with fewer items.
    """

    kind: Literal["stream"]
    producers: int = Field(4, ge=1)
    items: int = Field(10, ge=1)
    item_bytes: DistSpec = ConstantDist(dist="constant", value=1024.0)
    consumer_duration_ms: DistSpec = ExponentialDist(dist="exponential", mean=1.0)
    window: int = Field(4, ge=1)


WorkloadSpec = Annotated[
    StreamWorkload
    | IndependentWorkload
    | ChainWorkload
    | TreeWorkload
    | ShuffleWorkload
    | GraphWorkload
    | ActorWorkload
    | RLWorkload
    | ParameterServerWorkload
    | HyperparameterSearchWorkload,
    Field(discriminator="kind"),
]
"""A workload spec, discriminated on `kind`."""


# --- faults --------------------------------------------------------------------------------


class NodeFault(_Spec):
    """Kill node `node` at `at_s` (seconds after the workload starts): raylet, workers, store."""

    kind: Literal["node"]
    at_s: float = Field(ge=0)
    node: int = Field(ge=0)
    restart_after_s: float | None = Field(None, gt=0)
    """When set, the node comes back this long after it died: empty (no tasks, no
    objects), with a fresh raylet that registers with the GCS like a new node."""


class WorkerFault(_Spec):
    """Kill one worker on `node` at `at_s`: the oldest task running there fails (worker_died)."""

    kind: Literal["worker"]
    at_s: float = Field(ge=0)
    node: int = Field(ge=0)


class GcsFault(_Spec):
    """The GCS is unavailable from `at_s` for `duration_s`: messages to it wait until it is back.

    Its tables survive (as with Ray's GCS fault tolerance backed by external storage).
    """

    kind: Literal["gcs"]
    at_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class PartitionFault(_Spec):
    """Cut `nodes` off from the rest of the cluster from `at_s` for `duration_s`.

    Messages and transfers crossing the cut are delayed until it heals (TCP retransmits;
    the control plane has no message timeouts, so dropping them would hang it).
    """

    kind: Literal["partition"]
    at_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    nodes: list[int] = Field(min_length=1)


FaultSpec = Annotated[
    NodeFault | WorkerFault | GcsFault | PartitionFault, Field(discriminator="kind")
]
"""A fault, discriminated on `kind`."""


class OutputSpec(_Spec):
    """Where and how results are reported."""

    report_dir: str = "reports"
    progress: bool | None = Field(
        default=None,
        description="show a progress bar on stderr; unset: shown when stderr is a terminal",
    )


class Scenario(_Spec):
    """A complete, validated scenario."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    description: str = ""
    seed: int = 42
    cluster: ClusterSpec = ClusterSpec()
    network: NetworkSpec = NetworkSpec()
    control_plane: ControlPlaneSpec = ControlPlaneSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    workload: WorkloadSpec = IndependentWorkload(kind="independent")
    faults: list[FaultSpec] = Field(default_factory=list)
    output: OutputSpec = OutputSpec()


def scenario_json_schema() -> dict[str, Any]:
    """Return the JSON schema of scenario files (for editors and docs)."""
    return Scenario.model_json_schema()


# --- error formatting ----------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """Render a bound or an offending value compactly."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}

_EXPECTATIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda c: "expected an integer",
    "int_parsing": lambda c: "expected an integer",
    "int_from_float": lambda c: "expected an integer",
    "float_type": lambda c: "expected a number",
    "float_parsing": lambda c: "expected a number",
    "finite_number": lambda c: "expected a finite number",
    "string_type": lambda c: "expected a string",
    "bool_type": lambda c: "expected true or false",
    "dict_type": lambda c: "expected a mapping",
    "model_type": lambda c: "expected a mapping",
    "model_attributes_type": lambda c: "expected a mapping",
    "literal_error": lambda c: f"expected one of {c['expected']}",
    "string_pattern_mismatch": lambda c: f"expected a string matching {c['pattern']}",
    "unknown_policy": lambda c: f"expected one of {c['expected']}",
    "union_tag_invalid": lambda c: f"expected one of {c['expected_tags']}",
}


def _child(node: Any, key: Any) -> tuple[bool, Any]:
    """Step into a raw YAML container; (found, child)."""
    if isinstance(node, dict) and key in node:
        return True, node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return True, node[key]
    return False, None


def _user_path(
    loc: tuple[Any, ...], raw: Any, leaf_may_be_absent: bool
) -> tuple[list[str], Any, bool]:
    """Map a pydantic error location onto the user's field path in the raw data.

    Union tags that pydantic inserts into locations (e.g. `independent`) are not keys of
    the raw data and are dropped; when the raw data holds a scalar where pydantic went on
    (a bare number as a distribution), the path stops there. Returns (path, raw value at
    path, whether the value exists).
    """
    path: list[str] = []
    node, found = raw, True
    for i, key in enumerate(loc):
        if isinstance(node, dict) and i < len(loc) - 1 and any(node.get(t) == key for t in _TAGS):
            continue  # a union tag pydantic put in the location (it may equal a field name)
        hit, child = _child(node, key)
        if hit:
            path.append(str(key))
            node = child
        elif leaf_may_be_absent and i == len(loc) - 1:
            path.append(str(key))
            found = False
        elif not isinstance(node, dict | list):
            break
    return path, node, found


def _allowed_fields(loc_path: list[str], raw: Any) -> list[str]:
    """Names of the fields allowed at the model holding the last element of `loc_path`."""
    model = _model_at(loc_path[:-1], raw)
    return sorted(model.model_fields) if model is not None else []


_TAGS = ("kind", "dist")


def _union_member(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """Pick the member of a discriminated union of models matching the raw data's tag."""
    for member in typing.get_args(annotation):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for tag in _TAGS:
            field = member.model_fields.get(tag)
            if (
                field
                and isinstance(raw, dict)
                and raw.get(tag) in typing.get_args(field.annotation)
            ):
                return member
    return None


def _optional_model(annotation: Any) -> type[BaseModel] | None:
    """The model of an optional model field (``Model | None``), else None."""
    members = [
        m for m in typing.get_args(annotation) if isinstance(m, type) and issubclass(m, BaseModel)
    ]
    others = [m for m in typing.get_args(annotation) if m is not type(None) and m not in members]
    return members[0] if len(members) == 1 and not others else None


def _model_at(path: Iterable[str], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, or None (dict or scalar)."""
    model: type[BaseModel] | None = Scenario
    node = raw
    item: Any = None
    """The element annotation of a list field, awaiting the item's index."""
    for key in path:
        if item is not None:  # `key` indexes a list of models (faults.0, cluster.groups.1)
            ok = isinstance(node, list) and key.isdigit() and int(key) < len(node)
            node = node[int(key)] if ok else None
            if typing.get_origin(item) is Annotated:
                item = typing.get_args(item)[0]
            is_model = isinstance(item, type) and issubclass(item, BaseModel)
            model = item if is_model else _union_member(item, node)
            item = None
            continue
        if model is None or key not in model.model_fields:
            return None
        field = model.model_fields[key]
        annotation = field.annotation
        node = node.get(key) if isinstance(node, dict) else None
        if typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            model = None
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = _union_member(annotation, node) or _optional_model(annotation)
            if model is None and isinstance(field.default, BaseModel):
                tags = [t for t in _TAGS if t in type(field.default).model_fields]
                if node is None or (isinstance(node, dict) and not any(t in node for t in tags)):
                    model = type(field.default)
    return model if item is None else None


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    """One `field.path: expected ..., got ...` line for a pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path, value, found = _user_path(tuple(error["loc"]), raw, kind == "missing")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(path, raw)
        text = f"unknown field; expected one of: {', '.join(allowed)}"
        return f"{'.'.join(path)}: {text}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str(ctx.get("discriminator", "")).strip("'"))
        if kind == "union_tag_not_found":
            member_names = _tags_at(path, raw)
            return f"{'.'.join(path)}: missing; expected one of {member_names}"
        return f"{'.'.join(path)}: expected one of {ctx['expected_tags']}, got {_fmt(ctx['tag'])}"
    if kind == "missing":
        return f"{'.'.join(path) or '<top>'}: missing required field"
    if kind == "value_error":
        return f"{'.'.join(path) or '<top>'}: {ctx.get('error', error['msg'])}"
    if kind in _BOUNDS:
        bound = ctx[_BOUNDS[kind][0]]
        noun = "an integer" if isinstance(bound, int) else "a number"
        text = f"expected {noun} {_BOUNDS[kind][1]} {_fmt(bound)}"
    else:
        render = _EXPECTATIONS.get(kind)
        text = render(ctx) if render else f"expected valid input ({error['msg']})"
    if found:
        text += f", got {_fmt(value)}"
    return f"{'.'.join(path) or '<top>'}: {text}"


def _tags_at(path: list[str], raw: Any) -> str:
    """Allowed tags of the union field whose tag is missing at `path` (ends with the tag)."""
    parent = _model_at(path[:-2], raw)
    if parent is None or path[-2] not in parent.model_fields:
        return "?"
    tags: list[str] = []
    for member in typing.get_args(parent.model_fields[path[-2]].annotation):
        field = getattr(member, "model_fields", {}).get(path[-1])
        if field is not None:
            tags.extend(repr(t) for t in typing.get_args(field.annotation))
    return ", ".join(tags)


def _cross_checks(scenario: Scenario, policies: tuple[str, ...]) -> list[str]:
    """Constraints that span sections; each problem as a `field: expected ...` line."""
    problems = []
    if scenario.scheduler.policy not in policies:  # a defaulted policy skips the validator
        expected = ", ".join(repr(p) for p in sorted(policies))
        problems.append(
            f"scheduler.policy: expected one of {expected}, got {scenario.scheduler.policy!r}"
        )
    workload, cluster = scenario.workload, scenario.cluster
    if workload.drivers > cluster.nodes:
        problems.append(
            f"workload.drivers: expected an integer <= cluster.nodes ({cluster.nodes}),"
            f" got {workload.drivers}"
        )
    problems.extend(_topology_problems(scenario))
    if isinstance(workload, GraphWorkload):
        try:
            read_task_graph(Path(workload.file))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(
                f"workload.file: expected a readable JSON/YAML task graph, got"
                f" {workload.file!r} ({getattr(exc, 'strerror', None) or exc})"
            )
    groups = cluster.node_groups()
    for path, demand in workload.demands():
        problem = _infeasible(path, demand, groups)
        if problem:
            problems.append(problem)
    problems.extend(_placement_group_problems(workload, groups))
    for i, fault in enumerate(scenario.faults):
        problems.extend(_fault_problems(f"faults.{i}", fault, cluster.nodes, workload.drivers))
    return problems


def _topology_problems(scenario: Scenario) -> list[str]:
    """Build the topology graph once to report what is wrong with it."""
    from sim.network import build_graph
    from sim.topology import TopologyError

    net = scenario.network
    if net.topology == "edges" and not net.edges:
        return ["network.edges: expected a non-empty list of edges for topology 'edges'"]
    try:
        build_graph(net, scenario.cluster.nodes)
    except TopologyError as exc:
        field = {"edges": "network.edges", "fat_tree": "network.fat_tree_k"}.get(
            net.topology, "network"
        )
        return [f"{field}: {exc}"]
    return []


_DEMAND_FIELDS = {"CPU": "num_cpus", "GPU": "num_gpus"}


def _infeasible(path: str, demand: dict[str, float], groups: list[NodeGroupSpec]) -> str | None:
    """A problem text if no node group can ever satisfy `demand`, else None."""
    node_res = [(g.name, g.resources()) for g in groups]
    if any(all(res.get(k, 0.0) + 1e-9 >= v for k, v in demand.items()) for _, res in node_res):
        return None
    offered = "; ".join(f"{name}: {_describe_res(res)}" for name, res in node_res)
    for key, amount in sorted(demand.items()):
        if all(res.get(key, 0.0) + 1e-9 < amount for _, res in node_res):
            where = path
            if path == "workload":
                where += "." + _DEMAND_FIELDS.get(key, f"resources.{key}")
            return (
                f"{where}: expected a request some node group can satisfy ({offered}),"
                f" got {_describe_res(demand)}: no node has {_fmt(amount)} {key}"
            )
    return (
        f"{path}: expected a request some node group can satisfy ({offered}),"
        f" got {_describe_res(demand)}: no single node has all of it"
    )


def _placement_group_problems(workload: Any, groups: list[NodeGroupSpec]) -> list[str]:
    """The workload's placement group must fit the cluster and hold every task and actor."""
    pg = workload.placement_group
    if pg is None:
        return []
    if workload.scheduling_strategy != "default":
        return [
            "workload.scheduling_strategy: expected 'default' with a placement_group (a "
            f"task runs in its group), got {workload.scheduling_strategy!r}"
        ]
    from runtime.core.placement import Candidate, place_bundles

    problems = []
    nodes = [Candidate(n, g.resources()) for n, g in enumerate(_nodes_of(groups))]
    bundles = [{k: float(v) for k, v in b.items() if v} for b in pg.bundles]
    placed, reason = place_bundles(pg.strategy, bundles, nodes)
    if placed is None:
        problems.append(
            f"workload.placement_group: expected bundles the cluster can hold, got "
            f"{len(bundles)} bundle(s) by {pg.strategy}: {reason}"
        )
    for path, demand in workload.demands():
        fitting = [i for i, b in enumerate(bundles) if _fits(demand, b)]
        if pg.bundle == "round_robin" and len(fitting) < len(bundles):
            missing = next(i for i in range(len(bundles)) if i not in fitting)
            problems.append(
                f"workload.placement_group.bundles.{missing}: expected a bundle that holds "
                f"{path} {_describe_res(demand)} (bundle: round_robin uses every bundle), "
                f"got {_describe_res(bundles[missing])}"
            )
        elif not fitting:
            problems.append(
                f"workload.placement_group.bundles: expected a bundle that holds {path} "
                f"{_describe_res(demand)}, got {[_describe_res(b) for b in bundles]}"
            )
    return problems


def _nodes_of(groups: list[NodeGroupSpec]) -> list[NodeGroupSpec]:
    return [g for g in groups for _ in range(g.count)]


def _fits(demand: Mapping[str, float], res: Mapping[str, float]) -> bool:
    return all(res.get(k, 0.0) + 1e-9 >= v for k, v in demand.items() if v > 0)


def _describe_res(res: Mapping[str, float]) -> str:
    """`{CPU: 32, GPU: 8}`."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items())) + "}"


def _fault_problems(path: str, fault: Any, nodes: int, drivers: int) -> list[str]:
    """Problems with one fault's targets."""
    problems = []
    targets = [fault.node] if hasattr(fault, "node") else list(getattr(fault, "nodes", []))
    for node in targets:
        if node >= nodes:
            problems.append(f"{path}: expected node < cluster.nodes ({nodes}), got {node}")
    if fault.kind == "node" and fault.node < max(1, drivers):
        problems.append(
            f"{path}.node: expected a node hosting neither the head (0) nor a driver"
            f" (nodes 0..{drivers - 1}): >= {max(1, drivers)}, got {fault.node}"
        )
    return problems


# --- overrides -----------------------------------------------------------------------------


def _check_override_path(dotted: str, raw: dict[str, Any]) -> str | None:
    """Return a problem text if `dotted` names no field of the schema, else None."""
    parts = dotted.split(".")
    if not all(parts):
        return f"--set {dotted}: expected a dotted field path like cluster.nodes"
    model: type[BaseModel] | None = Scenario
    for depth, key in enumerate(parts):
        if model is None:
            # inside a free-form mapping (custom_resources): any key is a valid path
            if depth > 0 and _is_mapping_field(parts[:depth], raw):
                return None
            return f"--set {dotted}: unknown field {'.'.join(parts[: depth + 1])!r}"
        if key not in model.model_fields:
            allowed = ", ".join(sorted(model.model_fields))
            prefix = ".".join(parts[: depth + 1])
            return f"--set {dotted}: unknown field {prefix!r}; expected one of: {allowed}"
        model = _model_at(parts[: depth + 1], raw)
    return None


def _is_mapping_field(path: list[str], raw: Any) -> bool:
    """Whether `path` names a `dict[...]`-typed field (free-form keys below it)."""
    parent = _model_at(path[:-1], raw)
    if parent is None or path[-1] not in parent.model_fields:
        return False
    return typing.get_origin(parent.model_fields[path[-1]].annotation) is dict


def _default_tags(path: list[str], raw: Any) -> dict[str, Any]:
    """A fresh mapping for `path`, holding the union tag of the field's default if any."""
    parent = _model_at(path[:-1], raw)
    field = parent.model_fields.get(path[-1]) if parent is not None else None
    default = field.default if field is not None else None
    if not isinstance(default, BaseModel):
        return {}
    return {t: getattr(default, t) for t in _TAGS if t in type(default).model_fields}


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, str]) -> list[str]:
    """Set dotted-path overrides (values parsed as YAML) into `raw`; return problem texts."""
    problems = []
    for dotted, text in overrides.items():
        if any(part.isdigit() for part in dotted.split(".")):
            problem = _set_in_list(raw, dotted, text)
            if problem is not None:
                problems.append(problem)
            continue
        problem = _check_override_path(dotted, raw)
        if problem is None:
            try:
                value = yaml.safe_load(text) if isinstance(text, str) else text
            except yaml.YAMLError as exc:
                problem = f"--set {dotted}: value is not valid YAML: {exc}".replace("\n", " ")
        if problem is not None:
            problems.append(problem)
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                node[key] = _default_tags(parents[: depth + 1], raw)
            node = node[key]
        node[leaf] = value
    return problems


def _set_in_list(raw: dict[str, Any], dotted: str, text: str) -> str | None:
    """Set a path through list items (`faults.0.at_s`, `cluster.groups.1.count`).

    The list and the item must exist in the file; unknown fields below an item are
    reported by validation like any other.
    """
    *parents, leaf = dotted.split(".")
    node: Any = raw
    for depth, key in enumerate(parents):
        where = ".".join(parents[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                return f"--set {dotted}: no item {key} in {'.'.join(parents[:depth])} (has {len(node)})"
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return f"--set {dotted}: {where!r} is not in the scenario file"
    try:
        value = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as exc:
        return f"--set {dotted}: value is not valid YAML: {exc}".replace("\n", " ")
    if isinstance(node, list):
        if not leaf.isdigit() or int(leaf) >= len(node):
            return f"--set {dotted}: no item {leaf} in {'.'.join(parents)} (has {len(node)})"
        node[int(leaf)] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        return f"--set {dotted}: {'.'.join(parents)!r} is not a mapping"
    return None


# --- loading -------------------------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    """Parse the YAML file, turning I/O and syntax errors into a ScenarioError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read scenario file: {exc.strerror or exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{where}: YAML syntax error: {problem}"]) from None


def validate_scenario(
    raw: Any, source: str = "<scenario>", policies: Iterable[str] | None = None
) -> Scenario:
    """Validate raw (already parsed) scenario data; raise ScenarioError listing all problems."""
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ScenarioError([f"{source}: <top>: expected a mapping of sections, got {got}"])
    known = tuple(policies) if policies is not None else known_policies()
    context = {"policies": known}
    try:
        scenario = Scenario.model_validate(raw, context=context)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err, raw)}" for err in exc.errors()]
        raise ScenarioError(lines) from None
    problems = _cross_checks(scenario, known)
    if problems:
        raise ScenarioError([f"{source}: {p}" for p in problems])
    return scenario


def load_scenario(
    path: str | Path,
    overrides: Mapping[str, str] | None = None,
    policies: Iterable[str] | None = None,
) -> Scenario:
    """Read a scenario YAML file, apply `overrides` (dotted path -> YAML text) and validate.

    `policies` is the registry of scheduling policy names to accept (default: the core's
    registry, see `known_policies`). Raises ScenarioError naming the file, field and expectation.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if overrides and isinstance(raw, dict):
        problems = apply_overrides(raw, overrides)
        if problems:
            raise ScenarioError([f"{path}: {p}" for p in problems])
    workload = raw.get("workload") if isinstance(raw, dict) else None
    if isinstance(workload, dict) and isinstance(workload.get("file"), str):
        graph = Path(workload["file"])
        if not graph.is_absolute():  # relative to the scenario's folder
            workload["file"] = str(path.parent / graph)
    if isinstance(raw, dict):
        problems = apply_profile(raw, path)
        if problems:
            raise ScenarioError([f"{path}: {p}" for p in problems])
    return validate_scenario(raw, str(path), policies)
