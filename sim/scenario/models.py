"""The scenario schema: pydantic models of every section, workload kind and fault."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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


class HealthSpec(_Spec):
    """Heartbeats and the GCS's failure detector (`runtime.core.health`).

    Without this section a dead node is known to the GCS at once (instant detection, the
    default). With it, raylets send heartbeats every `heartbeat_period_s` and a node the
    GCS has not heard from for `node_timeout_s` is declared dead: a crashed node's tasks
    and objects are lost at the crash, their recovery starts at the declaration.
    Ray 2.60's own check: every 3 s (`health_check_period_ms`), dead after 5 misses.
    """

    heartbeat_period_s: float = Field(3.0, gt=0)
    node_timeout_s: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _timeout_exceeds_period(self) -> HealthSpec:
        if self.node_timeout_s <= self.heartbeat_period_s:
            raise ValueError(
                f"expected node_timeout_s to be longer than heartbeat_period_s"
                f" ({self.heartbeat_period_s:g} s), got {self.node_timeout_s:g}"
            )
        return self


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
    health: HealthSpec | None = None
    """Heartbeat-based death detection; None: the GCS knows of a death at once."""

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
    check_invariants: bool = False
    """Debugging: assert every raylet lifecycle transition against its table and run
    ``check()`` of every raylet, owner, GCS shard and the global scheduler after each message it handles (an
    ``InvariantError`` stops the run). Slow (a check walks the component's state): for
    tests and small runs, off for studies."""
    profile: str | None = None
    """Calibration profile (`run-scenario --calibrate`): its control_plane and network
    values are this scenario's defaults; fields given here win (see sim/profile.py)."""
    task_overhead_us: float = Field(0, ge=0)
    """CPU-slot time every task holds beyond its body: dispatch to a worker and the return
    of its result (a calibration profile measures it on real workers)."""
    store_put_us_per_mib: float = Field(0, ge=0)
    """Further slot time per MiB of output written to the object store."""
    store_get_us_per_mib: float = Field(0, ge=0)
    """Further slot time per MiB of object-store arguments the task reads (Ray copies
    them out of its store and deserializes them; twinray maps them, so ~0 there)."""


class ObjectStoreSpec(_Spec):
    """The cost of a program's ``put`` into its node's object store (the ``puts`` workload).

    One put costs ``put_overhead_us`` (serialization and the IPC that creates and seals
    the object) plus its size over the copy bandwidth: ``copy_gbps`` per copying thread,
    at most ``memory_gbps`` for the node (memory bandwidth; 0: no cap). Objects of at
    least ``threads_min_bytes`` are copied by the workload's ``threads`` threads, smaller
    ones by one (the paper's Fig. 9 used 8 threads above 0.5 MB). The defaults cost
    nothing, so scenarios without a ``puts`` workload are unaffected.
    """

    put_overhead_us: float = Field(0, ge=0)
    copy_gbps: float = Field(0, ge=0)
    """Copy bandwidth of one thread in GB/s (10^9 bytes); 0: copies cost nothing."""
    memory_gbps: float = Field(0, ge=0)
    """The node's memory bandwidth in GB/s shared by the copying threads; 0: no cap."""
    threads_min_bytes: int = Field(512 * 1024, ge=0)


class GcsMemorySpec(_Spec):
    """A model of the GCS's memory: its task table, a capacity, and flushing to disk.

    Off unless ``record_bytes`` > 0. The GCS holds ``record_bytes`` per task-table record;
    with ``flush`` the core's GCS keeps at most ``table_records`` records in memory (it
    evicts the least recently updated, ``runtime.core.gcs``) and the evicted ones are
    written to disk at ``flush_mbps`` (memory is freed as they are written); without it
    the table keeps every record. While memory exceeds ``capacity_mb`` the GCS stalls:
    it serves nothing and what is sent to it waits. Memory is sampled every
    ``sample_ms`` into ``metrics["gcs_memory"]``.
    """

    record_bytes: int = Field(0, ge=0)
    capacity_mb: float = Field(1024, gt=0)
    flush: bool = False
    table_records: int = Field(1000, ge=1)
    flush_mbps: float = Field(100, gt=0)
    sample_ms: float = Field(100, gt=0)


class SpeculationSpec(_Spec):
    """Speculative execution of stragglers (``runtime.core.speculation``): a backup copy of
    a task on another node once it has run `multiplier` times the `quantile` (0.5: the
    median) of its function's recent run times, at most `budget` backups per driver at once,
    once `min_samples` runs finished; the first copy to finish wins."""

    multiplier: float = Field(1.5, gt=1)
    quantile: float = Field(0.5, gt=0, lt=1)
    budget: int = Field(1, ge=1)
    min_samples: int = Field(5, ge=1)


class SchedulerSpec(_Spec):
    """Placement policy and its knobs (``sample_size``: the sampling policies' only)."""

    policy: str = "bottom_up"
    spillback_threshold: int = Field(16, ge=0)
    report_interval_ms: float = Field(100, gt=0)
    sample_size: int = Field(
        2,
        ge=1,
        description="nodes a sampling policy (bottom_up, locality, power_of_two) samples"
        " per placement; only for those policies",
    )
    speculation: SpeculationSpec | None = Field(
        None, description="speculative execution of stragglers (off when absent)"
    )

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
    max_restarts: int = Field(0, ge=-1)
    """Ray's ``max_restarts``: an actor whose node dies comes back elsewhere (-1: always)."""
    max_task_retries: int = Field(0, ge=-1)
    """Ray's ``max_task_retries``: a call running when its actor died is run again."""
    checkpoint_interval: int | None = Field(None, ge=0)
    """twinray's actor checkpoints: save the state after every this many calls; a
    restarted actor restores it and replays the later calls (0: never save, replay every
    call since the constructor, as the Ray paper's lineage replay; None: Ray's semantics,
    nothing replayed). ``runtime.core.checkpoints``."""
    checkpoint_ms: float = Field(0.0, ge=0)
    """The modelled time of one save (the actor runs no call meanwhile)."""
    checkpoint_bytes: int = Field(0, ge=0)
    """The modelled size of one saved state (sent to the GCS)."""

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """An actor's request."""
        return [("workload.actor_cpus", _demand(self.actor_cpus, self.actor_gpus, self.resources))]


class RLlibModelSpec(_Spec):
    """The default MLP's model_config (Ray's names; runtime.rllib's defaults when omitted)."""

    fcnet_hiddens: list[Annotated[int, Field(gt=0)]] | None = None
    fcnet_activation: Literal["tanh", "relu", "linear"] | None = None
    vf_share_layers: bool | None = None


class RLlibSpec(_Spec):
    """An RLlib algorithm config (Ray's setting names) an `rl` workload takes its shape from.

    Omitted settings take the algorithm's defaults (those of ``runtime.rllib``). The shape
    (runners, batch split, bytes, parameters) comes from ``runtime.core.rl_shape``; the
    other settings (lr, gamma, lambda_, seed, activation) matter to the real run
    (``--mode both`` trains this config with ``runtime.rllib`` beside the simulation).
    """

    algo: Literal["PPO", "PG"] = "PPO"
    env: str
    num_env_runners: int | None = Field(None, ge=0)
    num_envs_per_env_runner: int | None = Field(None, ge=1)
    num_cpus_per_env_runner: float | None = Field(None, ge=0)
    rollout_fragment_length: Literal["auto"] | Annotated[int, Field(ge=1)] | None = None
    train_batch_size: int | None = Field(None, ge=1)
    minibatch_size: int | None = Field(None, ge=1)
    num_epochs: int | None = Field(None, ge=1)
    num_learners: Literal[0, 1] | None = None
    num_cpus_per_learner: float | None = Field(None, ge=0)
    lr: float | None = Field(None, gt=0)
    gamma: float | None = Field(None, ge=0, le=1)
    lambda_: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    model: RLlibModelSpec | None = None
    """The network's model_config (``model`` is its name in Ray's config dicts)."""

    def settings(self) -> dict[str, Any]:
        """The algorithm's settings given (Ray's names), without the algorithm's name."""
        raw = self.model_dump(exclude_none=True)
        raw.pop("algo", None)
        if "model" in raw:
            raw["model_config"] = raw.pop("model")
        return raw


class RLWorkload(_WorkloadBase):
    """RL training: rollout actors on CPUs feed a learner actor on a GPU, iterating.

    Each iteration every rollout actor produces `sample_bytes` of experience from the
    latest weights (``rollout_ms``); the learner trains on all of it (``train_ms``) and
    produces `weights_bytes` of new weights for the next iteration. One driver.

    `from_rllib` (an RLlib config) derives rollout_actors, rollout_cpus, learner_cpus,
    sample_bytes and weights_bytes (see ``sim/rl_shape.py``); `timing_profile` (a file
    from ``python -m twin.calibrate_rl``) derives rollout_ms and train_ms as well.
    """

    kind: Literal["rl"]
    from_rllib: RLlibSpec | None = None
    timing_profile: str | None = None
    rollout_actors: int = Field(8, ge=1)
    iterations: int = Field(10, ge=1)
    rollout_ms: DistSpec = ConstantDist(dist="constant", value=10.0)
    train_ms: DistSpec = ConstantDist(dist="constant", value=20.0)
    sample_bytes: DistSpec = ConstantDist(dist="constant", value=1e6)
    weights_bytes: DistSpec = ConstantDist(dist="constant", value=1e6)
    rollout_cpus: float = Field(1.0, ge=0)
    learner_cpus: float = Field(1.0, ge=0)
    learner_gpus: float = Field(1.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _shape_from_rllib(cls, data: Any) -> Any:
        """Fill the derived fields from `from_rllib` (and `timing_profile`)."""
        if not isinstance(data, dict):
            return data
        if data.get("timing_profile") is not None and data.get("from_rllib") is None:
            raise ValueError("timing_profile times an RLlib config: it needs from_rllib")
        raw = data.get("from_rllib")
        if not isinstance(raw, dict):
            return data
        try:
            spec = RLlibSpec.model_validate(raw)
        except ValueError:
            return data  # reported with its path by the field's own validation
        from sim.rl_shape import derive_rl_fields

        return derive_rl_fields(data, {"algo": spec.algo, **spec.settings()})

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


class SearchDomainSpec(_Spec):
    """A hyperparameter's range for PBT to draw and resample from (Ray's tune.uniform,
    tune.loguniform, tune.randint: ``randint`` excludes `upper`)."""

    kind: Literal["uniform", "loguniform", "randint"]
    lower: float
    upper: float

    @model_validator(mode="after")
    def _bounds(self) -> SearchDomainSpec:
        if not self.lower < self.upper:
            raise ValueError(f"{self.kind} needs lower < upper, got {self.lower:g}, {self.upper:g}")
        if self.kind == "loguniform" and self.lower <= 0:
            raise ValueError(f"loguniform needs lower > 0, got {self.lower:g}")
        if self.kind == "randint" and not (self.lower.is_integer() and self.upper.is_integer()):
            raise ValueError(f"randint needs integer bounds, got {self.lower:g}, {self.upper:g}")
        return self


MutationSpec = Annotated[
    list[Annotated[float, Field(strict=False)]] | list[str] | SearchDomainSpec,
    Field(union_mode="left_to_right"),
]
"""A PBT mutation: a list of values (shifted or resampled) or a range (perturbed by a factor)."""


class PBTSchedulerSpec(_Spec):
    """Ray Tune's PopulationBasedTraining (asynchronous; `synch: true` for synchronous PBT).

    Ray's parameter names and defaults. Every `perturbation_interval` of `time_attr` a trial
    in the bottom `quantile_fraction` continues from a top trial's checkpoint (its
    checkpoint object is the next epoch's argument) with the config explored: numbers in a
    range multiplied by one of `perturbation_factors`, list values shifted to a neighbour,
    either resampled with `resample_probability`. `seed` seeds PBT's draws (default: drawn
    from the scenario seed).
    """

    kind: Literal["pbt"]
    time_attr: Literal["training_iteration", "time_total_s"] = "time_total_s"
    perturbation_interval: float = Field(60.0, gt=0, strict=False)
    burn_in_period: float = Field(0.0, ge=0, strict=False)
    hyperparam_mutations: dict[str, MutationSpec] = Field(min_length=1)
    quantile_fraction: float = Field(0.25, ge=0, le=0.5, strict=False)
    resample_probability: float = Field(0.25, ge=0, le=1, strict=False)
    perturbation_factors: tuple[
        Annotated[float, Field(gt=0, strict=False)], Annotated[float, Field(gt=0, strict=False)]
    ] = (1.2, 0.8)
    synch: bool = False
    seed: int | None = None

    @field_validator("hyperparam_mutations")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, mutation in value.items():
            if isinstance(mutation, list) and not mutation:
                raise ValueError(f"hyperparam_mutations.{key} is an empty list: give its values")
        return value


class HyperparameterSearchWorkload(_WorkloadBase):
    """Hyperparameter search driven by the core's Tune scheduler and searcher objects.

    `trials` trials of up to `epochs` epochs (one task each, ``duration_ms`` or
    ``gpu_duration_ms``), at most `concurrent_trials` at a time per driver. Each finished
    epoch is a reported result (``training_iteration`` = epochs done, `metric` from the
    trial's learning curve, ``time_total_s`` = the trial's simulated epoch time) given to
    `trial_scheduler` (Ray's ASHA, HyperBand, MedianStoppingRule, FIFO), whose
    CONTINUE/PAUSE/STOP decisions the driver carries out. Without `curves` a trial's
    quality q is drawn uniformly by the searcher and its curve is ``q * (1 - 2**-t)``;
    `curves` gives the metric per trial (row) per iteration (column) instead.
    `max_t` defaults to `epochs` and `grace_period` to `grace_epochs`.

    `trial_scheduler` may instead be `{kind: pbt, ...}` (PBTSchedulerSpec): trial configs
    are drawn from its `hyperparam_mutations`, and a trial's metric accumulates a gain per
    epoch that depends on its config (``sim.tune_curves``: the best value of each
    hyperparameter moves from the top of its range to the bottom over `epochs`), so the
    exploited trials learn faster. Epoch tasks output the trial's checkpoint
    (`checkpoint_bytes`, default `output_bytes`); a checkpoint PBT asks for costs
    `checkpoint_save_ms` and restoring one (an exploit, or resuming a paused trial)
    `checkpoint_restore_ms`, both added to the trial's next epoch task.
    """

    kind: Literal["hyperparameter_search"]
    trials: int = Field(32, ge=1)
    epochs: int = Field(9, ge=1)
    concurrent_trials: int = Field(8, ge=1)
    grace_epochs: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)
    trial_scheduler: Literal["asha", "hyperband", "median_stopping", "fifo"] | PBTSchedulerSpec = (
        "asha"
    )
    max_t: int | None = Field(None, ge=1)
    grace_period: float | None = Field(None, ge=0)
    metric: str = "score"
    mode: Literal["min", "max"] = "max"
    time_attr: Literal["training_iteration", "time_total_s"] = "training_iteration"
    min_samples_required: int = Field(3, ge=1)
    curves: list[list[float]] | None = None
    checkpoint_bytes: float | None = Field(None, ge=0, strict=False)
    checkpoint_save_ms: float = Field(0.0, ge=0, strict=False)
    checkpoint_restore_ms: float = Field(0.0, ge=0, strict=False)

    @model_validator(mode="after")
    def _consistent(self) -> HyperparameterSearchWorkload:
        if isinstance(self.trial_scheduler, PBTSchedulerSpec) and self.curves is not None:
            raise ValueError(
                "curves cannot be used with trial_scheduler pbt: PBT's learning curves "
                "depend on each trial's config (see sim.tune_curves), not on a table"
            )
        if self.max_t is not None and self.max_t > self.epochs:
            raise ValueError(f"max_t ({self.max_t}) must be <= epochs ({self.epochs})")
        if self.grace_period is not None and self.grace_period > (self.max_t or self.epochs):
            raise ValueError(
                f"grace_period ({self.grace_period:g}) must be <= max_t ({self.max_t or self.epochs})"
            )
        if self.curves is not None:
            if len(self.curves) != self.trials:
                raise ValueError(
                    f"curves has {len(self.curves)} rows but trials is {self.trials}: "
                    "give one learning curve per trial"
                )
            short = [i for i, c in enumerate(self.curves) if len(c) < self.epochs]
            if short:
                raise ValueError(
                    f"curves row {short[0]} has {len(self.curves[short[0]])} values, "
                    f"fewer than epochs ({self.epochs}): give a metric per epoch"
                )
        return self


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


class PoissonArrivals(_Spec):
    """Requests arrive as a Poisson process at ``rate_rps`` requests per second."""

    process: Literal["poisson"]
    rate_rps: float = Field(gt=0)


class BurstArrivals(_Spec):
    """``burst_size`` requests at once every ``interval_s`` seconds (the first at time 0)."""

    process: Literal["bursts"]
    burst_size: int = Field(ge=1)
    interval_s: float = Field(gt=0)


class TraceArrivals(_Spec):
    """Arrival times read from a text file: one time in seconds per line, ``#`` comments.

    Relative paths are from the scenario's folder; times must not decrease. The workload's
    ``requests`` takes the file's first that many arrivals (the file must hold enough).
    """

    process: Literal["trace"]
    file: str


ArrivalSpec = Annotated[
    PoissonArrivals | BurstArrivals | TraceArrivals, Field(discriminator="process")
]
"""How serving requests arrive, discriminated on `process`."""


def read_arrival_trace(path: Path) -> list[float]:
    """The arrival times of a trace file (ValueError naming the bad line)."""
    times: list[float] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            t = float(text)
        except ValueError:
            raise ValueError(f"line {n}: expected a time in seconds, got {text!r}") from None
        if t < 0 or (times and t < times[-1]):
            raise ValueError(f"line {n}: expected a time >= 0 and >= the previous one, got {t:g}")
        times.append(t)
    return times


class ServeDeploymentSpec(_Spec):
    """One Serve deployment: its replicas, their limits, batching and model latency.

    A batch of n requests takes ``latency_fixed_ms + n * latency_per_item_ms`` (each drawn
    per batch). ``max_batch_size: 1`` is a deployment without ``@serve.batch``. Replicas are
    actors holding ``num_cpus``/``num_gpus``; ``max_queued_requests`` bounds the requests the
    proxy holds for this deployment when every replica is full (beyond it: 503, counted as
    rejected; -1: no bound). ``weight`` is this deployment's share of the requests.
    """

    name: str = Field("Model", pattern=r"^[A-Za-z0-9_-]+$")
    num_replicas: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    max_ongoing_requests: int = Field(5, ge=1)
    max_queued_requests: int = Field(-1, ge=-1)
    max_batch_size: int = Field(1, ge=1)
    batch_wait_timeout_s: float = Field(0.0, ge=0)
    max_concurrent_batches: int = Field(1, ge=1)
    latency_fixed_ms: DistSpec = ConstantDist(dist="constant", value=1.0)
    latency_per_item_ms: DistSpec = ConstantDist(dist="constant", value=0.0)
    weight: float = Field(1.0, gt=0)

    def demand(self) -> dict[str, float]:
        """One replica's resource request."""
        return _demand(self.num_cpus, self.num_gpus)


class ServingWorkload(_Spec):
    """Serve: ``requests`` HTTP requests through one proxy to one or more deployments.

    The proxy spends ``proxy_overhead_ms`` on each request before routing it (and
    ``response_overhead_ms`` after its replica returns); routing is Serve's
    power-of-two-choices router and batching its ``@serve.batch`` rule, the same core objects
    (``runtime.core.serve``) the real proxy uses. Requests start once every replica runs.
    ``scheduling_strategy: spread`` spreads the replicas over the nodes.
    """

    kind: Literal["serving"]
    drivers: int = Field(1, ge=1)
    scheduling_strategy: Literal["default", "spread"] = "default"
    requests: int = Field(1000, ge=1)
    arrivals: ArrivalSpec = PoissonArrivals(process="poisson", rate_rps=100.0)
    deployments: list[ServeDeploymentSpec] = Field(
        default_factory=lambda: [ServeDeploymentSpec()], min_length=1
    )
    proxy_overhead_ms: DistSpec = ConstantDist(dist="constant", value=0.0)
    response_overhead_ms: DistSpec = ConstantDist(dist="constant", value=0.0)

    @model_validator(mode="after")
    def _one_proxy(self) -> ServingWorkload:
        if self.drivers != 1:
            raise ValueError(f"expected drivers: 1 (one proxy) for serving, got {self.drivers}")
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"expected distinct deployment names, got {names}")
        return self

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """Each deployment's replica request."""
        return [(f"workload.deployments.{i}", d.demand()) for i, d in enumerate(self.deployments)]


def _refuse_unused(spec: _Spec, kind: str, unused: tuple[str, ...]) -> None:
    """Raise when `spec` sets a field its workload `kind` does not use (never ignore one)."""
    given = sorted(set(unused) & spec.model_fields_set)
    if given:
        raise ValueError(f"the {kind} workload does not use {', '.join(given)}: leave it out")


class PutsWorkload(_WorkloadBase):
    """Each driver puts `puts` objects of `object_bytes` into its node's store, one at a time.

    A put costs the ``object_store`` model's time on the program's thread(s), then one
    owner call (register and pin the object); the reference is dropped at once. One
    "task" of the metrics is one put (``throughput_tps`` is IOPS).
    """

    kind: Literal["puts"]
    puts: int = Field(1000, ge=1)
    object_bytes: int = Field(1024, ge=1)
    threads: int = Field(1, ge=1)
    """Threads copying objects of at least ``object_store.threads_min_bytes``."""

    @model_validator(mode="after")
    def _no_task_fields(self) -> PutsWorkload:
        _refuse_unused(self, "puts", _PUTS_UNUSED)
        return self


class AllreduceWorkload(_WorkloadBase):
    """Ring allreduce of `bytes` over `actors` actors (one per node with ``actor_cpus``).

    The vector is cut into one chunk per actor and each chunk into `chunks` pieces; a
    round is 2 x (actors - 1) ring steps (reduce-scatter, then allgather), each step one
    method call per actor and piece whose argument is what its left neighbour produced
    at the previous step. A reduce-scatter call sums at ``reduce_gbps`` (0: free);
    every call takes ``injected_delay_ms`` more (the paper's Fig. 12b). `rounds`
    allreduces run one after the other (the first also waits for the actors to start).
    """

    kind: Literal["allreduce"]
    actors: int = Field(16, ge=2)
    bytes: int = Field(100_000_000, ge=1)
    chunks: int = Field(1, ge=1)
    rounds: int = Field(2, ge=1)
    reduce_gbps: float = Field(0, ge=0)
    injected_delay_ms: float = Field(0, ge=0)
    actor_cpus: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _no_task_fields(self) -> AllreduceWorkload:
        _refuse_unused(self, "allreduce", _ALLREDUCE_UNUSED)
        return self

    def demands(self) -> list[tuple[str, dict[str, float]]]:
        """An actor's request."""
        return [("workload.actor_cpus", _demand(self.actor_cpus, 0, self.resources))]


_ALLREDUCE_UNUSED = (
    "duration_ms",
    "gpu_duration_ms",
    "output_bytes",
    "num_cpus",
    "num_gpus",
    "placement_group",
)
"""Task fields the allreduce workload has no use for (sizes and durations are its own)."""
_PUTS_UNUSED = (*_ALLREDUCE_UNUSED, "resources", "scheduling_strategy")
"""Task fields the puts workload has no use for (it runs no task)."""


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
    | HyperparameterSearchWorkload
    | ServingWorkload
    | PutsWorkload
    | AllreduceWorkload,
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


class SlowFault(_Spec):
    """Slow node `node` down by `factor` from `at_s` for `duration_s` (a straggler).

    Every task body that starts on the node in the window runs `factor` times its drawn
    duration (a hot, throttled or overloaded machine); bodies started before or after it
    are not affected. With `worker` (an index below the node's CPU count) only one worker
    of the node is slow: each body that starts on the node while that worker is idle runs
    on it, stretched, and the node's other bodies run at full speed.
    """

    kind: Literal["slow"]
    at_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    node: int = Field(ge=0)
    factor: float = Field(gt=1)
    worker: int | None = Field(
        None, ge=0, description="one worker of the node (< its CPUs) instead of the whole node"
    )


FaultSpec = Annotated[
    NodeFault | WorkerFault | GcsFault | PartitionFault | SlowFault, Field(discriminator="kind")
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
    object_store: ObjectStoreSpec = ObjectStoreSpec()
    gcs_memory: GcsMemorySpec = GcsMemorySpec()
    workload: WorkloadSpec = IndependentWorkload(kind="independent")
    faults: list[FaultSpec] = Field(default_factory=list)
    output: OutputSpec = OutputSpec()


def scenario_json_schema() -> dict[str, Any]:
    """Return the JSON schema of scenario files (for editors and docs)."""
    return Scenario.model_json_schema()
