"""Drive every workload kind on real workers with the simulator's shapes, counts and draws.

Each runner mirrors its simulated driver in ``sim.workloads`` / ``sim.drivers``: the same
graph templates, roles, windows and lookaheads, and the same random draws in the same
order from the same stream (``{seed}:workload:0``; real mode runs one driver). Task
bodies are `work`: they sleep (or spin) for the drawn duration and return outputs of the
drawn sizes through the real object store; graph-shaped workloads pass ObjectRefs as
arguments; actor workloads call methods of real actors. A task counts when its first
return value is ready, as in the simulator.
"""

from __future__ import annotations

import math
import random
import time
from bisect import insort
from collections.abc import Callable
from typing import Any

from sim.distributions import make_sampler
from sim.drivers import (
    GraphNode,
    IterationTimes,
    Role,
    graph_template,
    ps_roles,
    rl_roles,
    shuffle_template,
    tree_template,
)
from sim.metrics import MetricsRecorder
from sim.scenario import (
    ActorWorkload,
    ChainWorkload,
    GraphWorkload,
    HyperparameterSearchWorkload,
    IndependentWorkload,
    ParameterServerWorkload,
    RLWorkload,
    Scenario,
    ShuffleWorkload,
    StreamWorkload,
    TreeWorkload,
)

SPIN_BELOW_S = 1e-3
"""Durations shorter than this are busy-waited; longer ones sleep, then spin the last 0.2 ms."""

INLINE_NUMPY_ABOVE = 100 * 1024
"""Outputs above this size are numpy arrays (stored out of band), smaller ones bytes."""


# --- task and actor bodies (run in worker processes) ---------------------------------------


def _output(nbytes: int) -> Any:
    """`nbytes` of output: bytes, or a numpy array above `INLINE_NUMPY_ABOVE`."""
    if nbytes > INLINE_NUMPY_ABOVE:
        import numpy as np

        return np.zeros(nbytes, dtype=np.uint8)
    return bytes(nbytes)


def work(duration_s: float, nbytes: int | tuple[int, ...], *_args: Any) -> Any:
    """Occupy a CPU slot for `duration_s`; return `nbytes` of output (a tuple: one per size)."""
    deadline = time.perf_counter() + duration_s
    if duration_s >= SPIN_BELOW_S:
        time.sleep(duration_s - 2e-4)
    while time.perf_counter() < deadline:
        pass
    if isinstance(nbytes, tuple):
        return tuple(_output(n) for n in nbytes)
    return _output(nbytes)


class Stateful:
    """A real actor: each `step` call runs one at a time like a task body."""

    def step(self, duration_s: float, nbytes: int | tuple[int, ...], *args: Any) -> Any:
        """Occupy the actor for `duration_s`; return outputs of the drawn size(s)."""
        return work(duration_s, nbytes, *args)


GROUP_WAIT_S = 60.0
"""Seconds to wait for a workload's placement group (it fits: the scenario was validated)."""


def _options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray's `num_cpus`/`num_gpus`/`resources` options from a resource request."""
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    return {
        "num_cpus": resources.get("CPU", 0.0),
        "num_gpus": resources.get("GPU", 0.0),
        "resources": custom,
    }


# --- the driver: submission, completion and metrics ----------------------------------------


class RealDriver:
    """One driver's submissions on the real runtime; records metrics as results arrive."""

    def __init__(self, ray: Any, scenario: Scenario) -> None:
        """Samplers on the simulator's stream of driver 0, in the same order."""
        spec = scenario.workload
        self.ray = ray
        self.rng = random.Random(f"{scenario.seed}:workload:0")
        self.resources = spec.demand()
        dist = spec.duration_ms
        if spec.gpu_duration_ms is not None and self.resources.get("GPU", 0.0) > 0:
            dist = spec.gpu_duration_ms
        self.duration_ms = make_sampler(dist, self.rng)
        self.output_bytes = make_sampler(spec.output_bytes, self.rng)
        self.remote = ray.remote(work)
        self.metrics = MetricsRecorder()
        self.submitted_at: dict[str, float] = {}
        self.pending: dict[Any, tuple[str, Any]] = {}
        self.actor_calls: dict[int, list[str]] = {}
        """Actor id -> names of its calls in submission order (they run in that order)."""
        self.t0 = 0.0
        self.last = 0.0
        self.rl_times: IterationTimes | None = None
        """An RL loop's iteration times (`run_iterative` sets them)."""
        self.count = 0
        self.strategies: list[Any] = self._strategies(spec)
        """Scheduling strategies of the tasks and actors, used in turn (none: default)."""
        self._next_strategy = 0

    def _strategies(self, spec: Any) -> list[Any]:
        """SPREAD, or the workload's placement groups (created and waited for now)."""
        if spec.scheduling_strategy == "spread":
            return ["SPREAD"]
        pg = spec.placement_group
        if pg is None:
            return []
        import importlib

        ray = self.ray
        strategy = importlib.import_module(f"{ray.__name__}.util.scheduling_strategies")
        bundles = [{k: float(v) for k, v in b.items() if v} for b in pg.bundles]
        out: list[Any] = []
        for _ in range(spec.drivers * pg.count):  # every simulated driver's groups
            group = ray.util.placement_group(bundles, strategy=pg.strategy)
            if not group.wait(GROUP_WAIT_S):
                table = ray.util.placement_group_table(group)
                reason = table.get("stats", {}).get("reason") or table.get("state")
                raise RuntimeError(f"placement group not created in {GROUP_WAIT_S:g} s: {reason}")
            if pg.bundle == "any":
                out.append(strategy.PlacementGroupSchedulingStrategy(group))
            else:
                out.extend(
                    strategy.PlacementGroupSchedulingStrategy(group, i) for i in range(len(bundles))
                )
        return out

    def _strategy_options(self) -> dict[str, Any]:
        strategies = self.strategies
        if not strategies:
            return {}
        i = self._next_strategy
        self._next_strategy = i + 1
        return {"scheduling_strategy": strategies[i % len(strategies)]}

    def _returns(self, name: str, tag: Any, refs: Any, sizes: tuple[int, ...]) -> list[Any]:
        refs = list(refs) if len(sizes) > 1 else [refs]
        self.pending[refs[0]] = (name, tag)
        return refs

    def _body_sizes(self, sizes: tuple[int, ...]) -> int | tuple[int, ...]:
        return sizes if len(sizes) > 1 else sizes[0]

    def task(
        self,
        tag: Any,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...] = (),
        resources: dict[str, float] | None = None,
    ) -> list[Any]:
        """Submit one task; return the refs of its `len(sizes)` return values."""
        name = f"t{self.count}"
        self.count += 1
        options = _options(self.resources if resources is None else resources)
        options.update(self._strategy_options())
        fn = self.remote.options(name=name, num_returns=len(sizes), **options)
        self.submitted_at[name] = time.monotonic()
        refs = fn.remote(duration_s, self._body_sizes(sizes), *args)
        return self._returns(name, tag, refs, sizes)

    def create_actor(self, resources: dict[str, float]) -> Any:
        """Start one actor holding `resources` (placement needs them, as in the simulator)."""
        options = {**_options(resources), **self._strategy_options()}
        handle = self.ray.remote(Stateful).options(**options).remote()
        self.actor_calls[handle.actor_id] = []
        return handle

    def call(
        self,
        actor: Any,
        tag: Any,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...] = (),
    ) -> list[Any]:
        """Call `actor.step`; return the refs of its `len(sizes)` return values."""
        name = f"t{self.count}"
        self.count += 1
        self.actor_calls[actor.actor_id].append(name)
        method = actor.step.options(num_returns=len(sizes))
        self.submitted_at[name] = time.monotonic()
        refs = method.remote(duration_s, self._body_sizes(sizes), *args)
        return self._returns(name, tag, refs, sizes)

    def submit(self, tag: Any, *args: Any) -> Any:
        """A task of the workload's demand with freshly drawn duration, then size."""
        duration = self.duration_ms() * 1e-3
        return self.task(tag, duration, (int(self.output_bytes()),), args)[0]

    def next_done(self) -> list[tuple[Any, Any]]:
        """Block until at least one pending task finishes; return (ref, tag) of finished ones."""
        refs = list(self.pending)
        ready, rest = self.ray.wait(refs, num_returns=1)
        if rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        now = time.monotonic()
        done = []
        for ref in ready:
            name, tag = self.pending.pop(ref)
            try:
                self.ray.get(ref)  # read the output through the store
                self.metrics.task_done(now - self.submitted_at[name], now - self.t0)
            except Exception:
                self.metrics.task_failed(now - self.t0)
            done.append((ref, tag))
        self.last = now
        return done

    def record_spans(self, spans: Any, workers: Any = ()) -> None:
        """Execution start/end of each task from the node's spans (queueing, busy time).

        Actor calls are named by their method, so they are matched by order: the calls of
        an actor run in submission order on its worker (`workers`: the node's handles).
        """
        from runtime.core.task import ACTOR_CREATION, ACTOR_METHOD

        actor_of = {w.worker_id: w.actor_id for w in workers if getattr(w, "actor_id", 0)}
        calls: dict[int, list[tuple[float, float]]] = {}
        for span in list(spans):
            name, kind, worker_id, start, end = span[0], span[1], span[2], span[4], span[5]
            if kind == ACTOR_METHOD:
                calls.setdefault(actor_of.get(worker_id, 0), []).append((start, end))
            elif kind != ACTOR_CREATION:
                self._span(name, start, end)
        for actor_id, names in self.actor_calls.items():
            for name, (start, end) in zip(names, sorted(calls.get(actor_id, [])), strict=False):
                self._span(name, start, end)

    def _span(self, name: str, start: float, end: float) -> None:
        submitted = self.submitted_at.get(name)
        if submitted is None:
            return
        self.metrics.task_started(0, start - self.t0)
        self.metrics.task_finished(end - start, max(0.0, start - submitted), 0, end - self.t0)


# --- independent tasks and chains (sim.workloads) ------------------------------------------


def run_independent(driver: RealDriver, spec: IndependentWorkload) -> None:
    """`tasks` independent tasks, at most `window` in flight."""
    remaining = spec.tasks
    for _ in range(min(spec.window, remaining)):
        driver.submit(None)
        remaining -= 1
    while driver.pending:
        for _ in driver.next_done():
            if remaining > 0:
                driver.submit(None)
                remaining -= 1


def run_chains(driver: RealDriver, spec: ChainWorkload) -> None:
    """`chains` chains of `length` tasks, each consuming its predecessor; 2 submitted each."""
    submitted = [0] * spec.chains
    last: list[Any] = [None] * spec.chains

    def extend(chain: int) -> None:
        args = () if last[chain] is None else (last[chain],)
        last[chain] = driver.submit(chain, *args)
        submitted[chain] += 1

    for chain in range(spec.chains):
        for _ in range(min(2, spec.length)):
            extend(chain)
    while driver.pending:
        for _, chain in driver.next_done():
            if submitted[chain] < spec.length:
                extend(chain)


# --- task graphs: tree, shuffle, file (sim.drivers.GraphDriver) ----------------------------


def _submit_graph(driver: RealDriver, template: list[GraphNode], instance: int) -> None:
    """Submit one copy of the graph; ObjectRefs flow between its tasks as arguments."""
    produced: list[list[Any]] = []
    for node in template:
        duration = (node.duration or driver.duration_ms)() * 1e-3
        output = node.output or driver.output_bytes
        sizes = tuple(int(output()) for _ in range(node.num_returns))
        args = tuple(produced[i][r - 1] for i, r in node.args)
        produced.append(driver.task(instance, duration, sizes, args, node.resources))


def run_graph(driver: RealDriver, template: list[GraphNode], copies: int, window: int) -> None:
    """`copies` copies of a graph, `window` in flight; a copy ends when all its tasks did."""
    left: dict[int, int] = {}
    started = 0
    while started < min(window, copies):
        _submit_graph(driver, template, started)
        left[started] = len(template)
        started += 1
    while driver.pending:
        for _, instance in driver.next_done():
            left[instance] -= 1
            if left[instance] == 0 and started < copies:
                del left[instance]
                _submit_graph(driver, template, started)
                left[started] = len(template)
                started += 1


def run_tree(driver: RealDriver, spec: TreeWorkload) -> None:
    """`trees` tree reductions (leaves combined `fan_in` at a time), `window` in flight."""
    run_graph(driver, tree_template(spec.leaves, spec.fan_in), spec.trees, spec.window)


def run_shuffle(driver: RealDriver, spec: ShuffleWorkload) -> None:
    """`rounds` map-reduce shuffles (one driver), `window` in flight."""
    run_graph(driver, shuffle_template(spec.maps, spec.reduces), spec.rounds, spec.window)


def run_file_graph(driver: RealDriver, spec: GraphWorkload) -> None:
    """The file's task graph `repeats` times (one driver), `window` copies in flight."""
    run_graph(driver, graph_template(spec, driver.rng), spec.repeats, spec.window)


# --- actors (sim.drivers.ActorDriver) ------------------------------------------------------


def _actor_resources(spec: ActorWorkload) -> dict[str, float]:
    res = {"CPU": spec.actor_cpus} if spec.actor_cpus else {}
    if spec.actor_gpus:
        res["GPU"] = spec.actor_gpus
    res.update(spec.resources)
    return res


def run_actors(driver: RealDriver, spec: ActorWorkload) -> None:
    """`actors` actors called `calls` times each, `window` calls in flight per actor."""
    actors = [driver.create_actor(_actor_resources(spec)) for _ in range(spec.actors)]
    left = dict.fromkeys(range(len(actors)), spec.calls)

    def call(i: int) -> None:
        left[i] -= 1
        size = int(driver.output_bytes())  # the simulator draws the size first
        driver.call(actors[i], i, driver.duration_ms() * 1e-3, (size,))

    for i in range(len(actors)):
        for _ in range(min(spec.window, spec.calls)):
            call(i)
    while driver.pending:
        for _, i in driver.next_done():
            if left[i] > 0:
                call(i)


# --- RL and parameter servers (sim.drivers.IterativeDriver) --------------------------------

LOOKAHEAD = 2
"""Iterations submitted ahead, as in the simulator (dependencies serialize them anyway)."""


class _Loop:
    """Iterations of: workers read all weight shards, emit one gradient per server; each
    server reads its gradients and emits its new shard."""

    def __init__(self, driver: RealDriver, workers: Role, servers: Role) -> None:
        self.driver = driver
        self.workers = workers
        self.servers = servers
        self.handles = {
            role.name: [driver.create_actor(role.resources) for _ in range(role.count)]
            for role in (workers, servers)
            if role.actors
        }
        self.weights: list[Any] = []
        self.left: dict[int, int] = {}
        self.submitted = 0
        self.times: IterationTimes | None = None
        """RL loops: when each iteration started and its rollouts and weights were done."""

    def _run(self, role: Role, i: int, sizes: tuple[int, ...], args: tuple) -> list[Any]:
        duration = role.duration_ms() * 1e-3
        if role.actors:
            return self.driver.call(
                self.handles[role.name][i], self.submitted, duration, sizes, args
            )
        return self.driver.task(self.submitted, duration, sizes, args, role.resources)

    def submit(self) -> None:
        """Submit the next iteration (reading the previous one's weights)."""
        workers, servers, previous = self.workers, self.servers, tuple(self.weights)
        grads = []
        moved = 0  # bytes the iteration's outputs carry to their readers (as the sim counts)
        for w in range(workers.count):
            sizes = tuple(int(workers.output_bytes()) for _ in range(servers.count))
            moved += sum(sizes)
            grads.append(self._run(workers, w, sizes, previous))
        weights = []
        for s in range(servers.count):
            args = tuple(g[s] for g in grads)
            size = int(servers.output_bytes())
            moved += size * workers.count
            weights.extend(self._run(servers, s, (size,), args))
        self.weights = weights
        self.left[self.submitted] = workers.count + servers.count
        if self.times is not None:
            now = time.monotonic() - self.driver.t0
            self.times.submitted(self.submitted, now, weights, moved)
        self.submitted += 1


def run_iterative(driver: RealDriver, spec: RLWorkload | ParameterServerWorkload) -> None:
    """RL (rollout actors -> learner actor) or parameter servers (worker tasks -> servers)."""
    roles = rl_roles if isinstance(spec, RLWorkload) else ps_roles
    loop = _Loop(driver, *roles(spec, driver.rng))
    if isinstance(spec, RLWorkload):
        loop.times = driver.rl_times = IterationTimes()
    for _ in range(min(LOOKAHEAD, spec.iterations)):
        loop.submit()
    while driver.pending:
        for ref, iteration in driver.next_done():
            if loop.times is not None:
                loop.times.ready(ref, iteration, driver.last - driver.t0)
            loop.left[iteration] -= 1
            if loop.left[iteration] == 0:
                del loop.left[iteration]
                if loop.submitted < spec.iterations:
                    loop.submit()
    loop.weights = []


# --- hyperparameter search (sim.drivers.SearchDriver) --------------------------------------


class _Search:
    """Trials of epoch tasks with asynchronous successive halving, the simulator's rule."""

    def __init__(self, driver: RealDriver, spec: HyperparameterSearchWorkload) -> None:
        self.driver = driver
        self.spec = spec
        self.trials_left = spec.trials
        rungs, epoch = set(), spec.grace_epochs
        while epoch < spec.epochs:
            rungs.add(epoch)
            epoch *= spec.reduction_factor
        self.results: dict[int, list[float]] = {r: [] for r in rungs}
        self.stopped_early = 0
        self.numbered = 0

    def new_trial(self) -> None:
        """Draw a trial's hidden quality and start its first epoch."""
        self.trials_left -= 1
        trial = {"number": self.numbered, "quality": self.driver.rng.random(), "epochs": 0}
        self.numbered += 1
        self.epoch(trial, None)

    def epoch(self, trial: dict[str, Any], checkpoint: Any) -> None:
        """One epoch task reading the trial's previous checkpoint."""
        args = () if checkpoint is None else (checkpoint,)
        trial["epochs"] += 1
        self.driver.submit(trial, *args)

    def continues(self, trial: dict[str, Any]) -> bool:
        """ASHA at a rung: go on only in the top 1/rf of the results seen there."""
        epochs = trial["epochs"]
        if epochs >= self.spec.epochs:
            return False
        if epochs not in self.results:
            return True
        seen = self.results[epochs]
        insort(seen, trial["quality"])
        better = len(seen) - 1 - seen.index(trial["quality"])
        return better < max(1, math.floor(len(seen) / self.spec.reduction_factor))

    def step(self, trial: dict[str, Any], checkpoint: Any) -> None:
        """An epoch ended: next epoch, or stop the trial and start another."""
        if self.continues(trial):
            self.epoch(trial, checkpoint)
            return
        if trial["epochs"] < self.spec.epochs:
            self.stopped_early += 1
        if self.trials_left > 0:
            self.new_trial()


def run_search(driver: RealDriver, spec: HyperparameterSearchWorkload) -> None:
    """`trials` trials, `concurrent_trials` at a time, stopped early by ASHA."""
    search = _Search(driver, spec)
    for _ in range(min(spec.concurrent_trials, spec.trials)):
        search.new_trial()
    while driver.pending:
        for ref, trial in driver.next_done():
            search.step(trial, ref)


# --- streaming generators (sim.streams.StreamDriver) ------------------------------------------


def produce(duration_s: float, sizes: tuple[int, ...]) -> Any:
    """A generator task body: item `i` of `n` (of `sizes[i]` bytes) at `(i + 1) / (n + 1)`."""
    step = duration_s / (len(sizes) + 1)
    for nbytes in sizes:
        yield work(step, nbytes)
    work(step, 0)


def run_stream(driver: RealDriver, spec: StreamWorkload) -> None:
    """`producers` generator tasks, `window` at a time; one consumer task per item as it comes."""
    ray = driver.ray
    item_bytes = make_sampler(spec.item_bytes, driver.rng)
    consumer_ms = make_sampler(spec.consumer_duration_ms, driver.rng)
    producer = ray.remote(produce)
    options = _options(driver.resources)
    streams: dict[Any, str] = {}
    remaining = spec.producers

    def start() -> None:
        name = f"t{driver.count}"
        driver.count += 1
        sizes = tuple(int(item_bytes()) for _ in range(spec.items))
        driver.submitted_at[name] = time.monotonic()
        gen = producer.options(name=name, **options).remote(driver.duration_ms() * 1e-3, sizes)
        streams[gen] = name

    for _ in range(min(spec.window, remaining)):
        start()
        remaining -= 1
    while streams or driver.pending:
        ready, _ = ray.wait([*streams, *driver.pending], num_returns=1)
        if any(x not in streams for x in ready):
            driver.next_done()  # a consumer finished: record it (returns at once)
        for x in ready:
            if x not in streams:
                continue
            try:
                item = next(x)
            except StopIteration:
                now = time.monotonic()
                name = streams.pop(x)
                driver.metrics.task_done(now - driver.submitted_at[name], now - driver.t0)
                driver.last = now
                if remaining > 0:
                    start()
                    remaining -= 1
                continue
            driver.task(None, consumer_ms() * 1e-3, (0,), (item,))


RUNNERS: dict[str, Callable[[RealDriver, Any], None]] = {
    "stream": run_stream,
    "independent": run_independent,
    "chain": run_chains,
    "tree": run_tree,
    "shuffle": run_shuffle,
    "graph": run_file_graph,
    "actors": run_actors,
    "rl": run_iterative,
    "parameter_server": run_iterative,
    "hyperparameter_search": run_search,
}
"""Workload kind -> real-mode runner (the simulator's driver shape, on real workers)."""
