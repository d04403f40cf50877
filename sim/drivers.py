"""Workload shapes and the simulator's own drivers: graph templates, training roles, open-loop
arrivals, actor helpers and the hyperparameter search.

The closed-loop kinds' driving logic (independent, chain, graphs, actors, RL, PS) is
written once in `sim.programs` and run by every engine; this module holds what those
programs share with other drivers (templates, roles, iteration times) and the drivers
that are the simulator's alone. Every driver submits through its owner (one owner
service request per call) and counts a task when the future of its first return resolves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.core.ids import ObjectId
from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from runtime.core.task import ACTOR_METHOD, CheckpointPlan, TaskSpec
from sim.distributions import Sampler, make_sampler
from sim.host import Host
from sim.metrics import MetricsRecorder, round_sig
from sim.scenario import ConstantDist, GraphWorkload, read_task_graph
from sim.trial_loop import SimTrial, TrialLoop
from sim.workloads import Completion, _DriverBase

ArgRef = tuple[int, int]
"""An argument inside a graph: (index of the producing node, its return index from 1)."""


@dataclass(slots=True)
class GraphNode:
    """One task of a graph template."""

    name: str
    args: tuple[ArgRef, ...] = ()
    num_returns: int = 1
    duration: Sampler | None = None
    """None: the driver's duration model."""
    output: Sampler | None = None
    """None: the driver's output size model."""
    resources: dict[str, float] | None = None
    """None: the workload's demand."""


class PoissonDriver(_DriverBase):
    """Open-loop independent tasks: Poisson arrivals at `rate` per simulated second."""

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: Any,
        rng: random.Random,
        tasks: int,
        rate: float,
    ) -> None:
        """A driver submitting `tasks` tasks at `rate`."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self.remaining = tasks
        self.rate = rate
        self._submit_fn = self._submit
        self._retire: ObjectId = 0
        self._retire_fn = self._retire_ref

    @property
    def arrivals_pending(self) -> bool:
        """More tasks will arrive (idle gaps between arrivals are not a stall)."""
        return self.remaining > 0

    def start(self) -> None:
        """Schedule the first arrival."""
        if self.remaining > 0:
            self.host.call_at(self.host.now + self.rng.expovariate(self.rate), self._arrive)

    def _arrive(self) -> None:
        self.host.serve_call(self.owner.addr, self._submit_fn)
        if self.remaining > 0:
            self.host.call_at(self.host.now + self.rng.expovariate(self.rate), self._arrive)

    def _submit(self, now: float, out: list[Any]) -> None:
        self.remaining -= 1
        self.owner.submit(self._new_spec("poisson"), now, out)

    def _retire_ref(self, now: float, out: list[Any]) -> None:
        self.owner.remove_ref(self._retire, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        self._record(cmd, at)
        self._retire = cmd.oid
        self.host.serve_call(self.owner.addr, self._retire_fn, at)


def tree_template(leaves: int, fan_in: int) -> list[GraphNode]:
    """Leaves, then reducers combining `fan_in` values per level, down to one root."""
    nodes = [GraphNode(f"leaf{i}") for i in range(leaves)]
    level = list(range(leaves))
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for j in range(0, len(level), fan_in):
            args = tuple((i, 1) for i in level[j : j + fan_in])
            nodes.append(GraphNode(f"reduce{depth}.{j // fan_in}", args))
            nxt.append(len(nodes) - 1)
        level = nxt
    return nodes


def shuffle_template(maps: int, reduces: int) -> list[GraphNode]:
    """`maps` tasks with one output per reducer; reducer j reads output j of every map."""
    nodes = [GraphNode(f"map{i}", num_returns=reduces) for i in range(maps)]
    for j in range(reduces):
        nodes.append(GraphNode(f"reduce{j}", tuple((i, j + 1) for i in range(maps))))
    return nodes


def graph_template(spec: GraphWorkload, rng: random.Random) -> list[GraphNode]:
    """Read and topologically order the task graph of `spec.file` (stable: file order)."""
    path = Path(spec.file)
    tasks = read_task_graph(path)
    ids = [str(t["id"]) for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: task ids must be unique")
    deps = {str(t["id"]): [str(d) for d in t.get("deps", [])] for t in tasks}
    for tid, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise ValueError(f"{path}: task {tid!r} depends on unknown task {d!r}")
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(ids):  # Kahn's algorithm in file order; fine for file-sized graphs
        progress = [t for t in ids if t not in placed and all(d in placed for d in deps[t])]
        if not progress:
            raise ValueError(f"{path}: the task graph has a cycle")
        order.extend(progress)
        placed.update(progress)
    index = {tid: i for i, tid in enumerate(order)}
    by_id = {str(t["id"]): t for t in tasks}
    nodes = []
    for tid in order:
        entry = by_id[tid]
        node = GraphNode(tid, tuple((index[d], 1) for d in deps[tid]))
        if "duration_ms" in entry:
            node.duration = make_sampler(
                ConstantDist(dist="constant", value=float(entry["duration_ms"])), rng
            )
        if "output_bytes" in entry:
            node.output = make_sampler(
                ConstantDist(dist="constant", value=float(entry["output_bytes"])), rng
            )
        if any(k in entry for k in ("num_cpus", "num_gpus", "resources")):
            res = {"CPU": float(entry.get("num_cpus", spec.num_cpus))}
            if entry.get("num_gpus"):
                res["GPU"] = float(entry["num_gpus"])
            res.update({k: float(v) for k, v in (entry.get("resources") or {}).items()})
            node.resources = {k: v for k, v in res.items() if v}
        nodes.append(node)
    return nodes


# --- actors --------------------------------------------------------------------------------


def create_actor(
    owner: Owner,
    name: str,
    resources: dict[str, float],
    strategy: Any,
    now: float,
    out: list[Any],
    max_concurrency: int = 1,
    max_restarts: int = 0,
    checkpoint: CheckpointPlan | None = None,
) -> int:
    """Create an anonymous actor owned by `owner`; return its id."""
    spec = TaskSpec(
        task_id=owner.new_task_id(),
        owner=owner.addr,
        owner_node=owner.node,
        function=name,
        name=name,
        resources=resources,
        max_retries=0,
        max_concurrency=max_concurrency,
        strategy=strategy,
    )
    if checkpoint is not None:
        spec.checkpoint = checkpoint
    return owner.create_actor(spec, "", max_restarts, False, now, out)


def call_actor(
    owner: Owner,
    actor_id: int,
    name: str,
    duration_s: float,
    sizes: tuple[int, ...],
    arg_refs: tuple[ObjectId, ...],
    now: float,
    out: list[Any],
    max_retries: int = 0,
) -> tuple[ObjectId, ...]:
    """Submit a call of `duration_s` to actor `actor_id` returning objects of `sizes`."""
    spec = actor_call_spec(owner, actor_id, name, duration_s, sizes, arg_refs, max_retries)
    return owner.submit(spec, now, out)


def actor_call_spec(
    owner: Owner,
    actor_id: int,
    name: str,
    duration_s: float,
    sizes: tuple[int, ...],
    arg_refs: tuple[ObjectId, ...],
    max_retries: int = 0,
) -> TaskSpec:
    """The task of a call of `duration_s` to actor `actor_id` returning objects of `sizes`."""
    return TaskSpec(
        task_id=owner.new_task_id(),
        owner=owner.addr,
        owner_node=owner.node,
        function=name,
        name=name,
        resources={},
        shape=(),
        duration=duration_s,
        num_returns=len(sizes),
        output_sizes=sizes,
        arg_refs=arg_refs,
        kind=ACTOR_METHOD,
        actor_id=actor_id,
        max_retries=max_retries,  # Ray's max_task_retries (default 0)
    )


class _ActorDriverBase(_DriverBase):
    """Creating actors and calling their methods."""

    def _create_actor(
        self,
        name: str,
        resources: dict[str, float],
        now: float,
        out: list[Any],
        max_concurrency: int = 1,
        max_restarts: int = 0,
        checkpoint: CheckpointPlan | None = None,
    ) -> int:
        return create_actor(
            self.owner, name, resources, self._strategy(), now, out,
            max_concurrency, max_restarts, checkpoint,
        )  # fmt: skip

    def _call(
        self,
        actor_id: int,
        name: str,
        duration_s: float,
        sizes: tuple[int, ...],
        arg_refs: tuple[ObjectId, ...],
        now: float,
        out: list[Any],
        max_retries: int = 0,
    ) -> tuple[ObjectId, ...]:
        return call_actor(
            self.owner, actor_id, name, duration_s, sizes, arg_refs, now, out, max_retries
        )


@dataclass(slots=True)
class Role:
    """One side of an iterative training loop: what it runs and how long it takes."""

    name: str
    count: int
    duration_ms: Sampler
    output_bytes: Sampler
    resources: dict[str, float]
    actors: bool
    """True: `count` actors run it; False: plain tasks (``resources`` each)."""
    actor_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class IterationTimes:
    """When each iteration of a training loop could start and when its parts were done.

    An iteration starts when the previous one's weights are ready (the first: when it was
    submitted); its sampling ends with its last rollout, its learning with its weights.
    """

    start: dict[int, float] = field(default_factory=dict)
    rollouts_done: dict[int, float] = field(default_factory=dict)
    weights_done: dict[int, float] = field(default_factory=dict)
    moved: dict[int, int] = field(default_factory=dict)
    _learner_outputs: set[ObjectId] = field(default_factory=set)

    def submitted(self, iteration: int, now: float, weights: list[ObjectId], moved: int) -> None:
        """Iteration `iteration` was submitted at `now`; `weights` are its learner's outputs."""
        if iteration == 0:
            self.start[0] = now
        self._learner_outputs.update(weights)
        self.moved[iteration] = moved

    def ready(self, oid: ObjectId, iteration: int, at: float) -> None:
        """An output of `iteration` (a rollout's first return or new weights) is ready."""
        if oid in self._learner_outputs:
            self._learner_outputs.discard(oid)
            self.weights_done[iteration] = max(at, self.weights_done.get(iteration, at))
            self.start.setdefault(iteration + 1, at)
        else:
            self.rollouts_done[iteration] = max(at, self.rollouts_done.get(iteration, at))

    def summary(self) -> dict[str, Any]:
        """Means over the iterations after the first (all of them when there is one only)."""
        done = sorted(i for i in self.weights_done if i in self.rollouts_done)
        steady = done[1:] or done
        if not steady:
            return {"iterations": 0}

        def mean(values: list[float]) -> float:
            return round_sig(sum(values) / len(values))

        return {
            "iterations": len(done),
            "iteration_s": mean([self.weights_done[i] - self.start[i] for i in steady]),
            "sampling_s": mean([self.rollouts_done[i] - self.start[i] for i in steady]),
            "learner_s": mean([self.weights_done[i] - self.rollouts_done[i] for i in steady]),
            "bytes_per_iteration": mean([float(self.moved[i]) for i in steady]),
        }


def rl_summary(per_driver: list[dict[str, Any]]) -> dict[str, Any]:
    """The RL iteration times of all drivers: iterations summed, the rest averaged."""
    keys = [k for k in per_driver[0] if k != "iterations" and all(k in d for d in per_driver)]
    merged: dict[str, Any] = {"iterations": sum(d["iterations"] for d in per_driver)}
    for key in keys:
        merged[key] = round_sig(sum(d[key] for d in per_driver) / len(per_driver))
    return merged


# --- hyperparameter search -----------------------------------------------------------------


class SearchDriver(_DriverBase, TrialLoop):
    """Trials of epoch tasks, started and stopped by the core's Tune scheduler and searcher.

    The decisions are `sim.trial_loop.TrialLoop`'s (shared with the real twin); this
    driver submits the epoch tasks through its owner, holds and drops the checkpoint
    objects' references, and feeds back each epoch when its future resolves.
    ``decisions`` lists (trial_id, iteration, decision) in order.
    """

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: Any,
        rng: random.Random,
        trials: int,
        first: int = 0,
    ) -> None:
        """A driver running `trials` trials (rows `first`.. of the spec's `curves`)."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self._init_loop(spec, rng, trials, first, str(owner.addr))
        self._trial_of: dict[ObjectId, SimTrial] = {}
        self._current: SimTrial | None = None
        self._retire: ObjectId = 0
        self._fill_fn = self._fill
        self._step_fn = self._step
        self._fail_fn = self._fail_step

    def start(self) -> None:
        """Start the first trials."""
        self.host.serve_call(self.owner.addr, self._fill_fn)

    def _submit_epoch(
        self, trial: SimTrial, previous: Any, overhead: float, now: float, out: list[Any]
    ) -> ObjectId:
        """The epoch task through the owner; the trial's previous checkpoint is dropped."""
        spec = self._new_spec("epoch", (previous,) if previous else ())
        if self.checkpoint_bytes is not None:
            spec.output_sizes = (int(self.checkpoint_bytes),)
        if overhead:
            spec.duration += overhead
        (oid,) = self.owner.submit(spec, now, out)
        if previous:
            self.owner.remove_ref(previous, now, out)
        self._trial_of[oid] = trial
        return oid

    def _release(self, handle: Any, now: float, out: list[Any]) -> None:
        """Drop the owner's reference."""
        self.owner.remove_ref(handle, now, out)

    def _hold(self, handle: Any, now: float, out: list[Any]) -> None:
        """One more handle of the driver's own."""
        self.owner.borrow(handle, self.owner.addr, now, out)

    def _shrink(self, tasks: int, now: float) -> None:
        """The run's expected task total."""
        self.completion.shrink(tasks, now)

    def _step(self, now: float, out: list[Any]) -> None:
        trial = self._current
        assert trial is not None
        if self._retire != trial.checkpoint:
            return
        self._decide(trial, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        trial = self._trial_of.pop(cmd.oid, None)
        if trial is None:
            return  # resolved again after a lineage reconstruction: counted already
        self._record(cmd, at)
        if cmd.error_kind is not None:
            self._fail(trial, at)
            return
        self._epoch_finished(trial, at)
        self._current = trial
        self._retire = cmd.oid
        self.host.serve_call(self.owner.addr, self._step_fn, at)

    def _fail(self, trial: SimTrial, at: float) -> None:
        """A failed epoch fails its trial (the real runner's default ``max_failures=0``)."""
        self._current = trial
        self._retire = trial.checkpoint
        self.host.serve_call(self.owner.addr, self._fail_fn, at)

    def _fail_step(self, now: float, out: list[Any]) -> None:
        trial = self._current
        assert trial is not None
        self._trial_failed(trial, now, out)


def split(total: int, parts: int, i: int) -> int:
    """Share `i` of `total` split as evenly as possible into `parts`."""
    return total // parts + (1 if i < total % parts else 0)


RoleFactory = Callable[[Any, random.Random], tuple[Role, Role]]


def rl_roles(spec: Any, rng: random.Random) -> tuple[Role, Role]:
    """Rollout actors (workers) and the learner actor (server)."""
    workers = Role(
        "rollout",
        spec.rollout_actors,
        make_sampler(spec.rollout_ms, rng),
        make_sampler(spec.sample_bytes, rng),
        {"CPU": spec.rollout_cpus} if spec.rollout_cpus else {},
        True,
    )
    learner_res = {"CPU": spec.learner_cpus} if spec.learner_cpus else {}
    if spec.learner_gpus:
        learner_res["GPU"] = spec.learner_gpus
    learner = Role(
        "learner",
        1,
        make_sampler(spec.train_ms, rng),
        make_sampler(spec.weights_bytes, rng),
        learner_res,
        True,
    )
    return workers, learner


def ps_roles(spec: Any, rng: random.Random) -> tuple[Role, Role]:
    """Worker tasks and parameter-server actors."""
    dist = spec.duration_ms
    demand = spec.demand()
    if spec.gpu_duration_ms is not None and demand.get("GPU"):
        dist = spec.gpu_duration_ms
    workers = Role(
        "gradient",
        spec.workers,
        make_sampler(dist, rng),
        make_sampler(spec.gradient_bytes, rng),
        demand,
        False,
    )
    servers = Role(
        "apply",
        spec.servers,
        make_sampler(spec.update_ms, rng),
        make_sampler(spec.output_bytes, rng),
        {"CPU": spec.server_cpus} if spec.server_cpus else {},
        True,
    )
    return workers, servers


__all__ = [
    "GraphNode",
    "PoissonDriver",
    "Role",
    "SearchDriver",
    "graph_template",
    "IterationTimes",
    "ps_roles",
    "rl_roles",
    "rl_summary",
    "shuffle_template",
    "split",
    "tree_template",
]
