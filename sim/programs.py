"""Workload programs: each kind's driving logic and random draws, written once for every engine.

A program is one driver's part of a scenario's workload: it draws every duration and size
from the driver's seeded stream (``{seed}:workload:{i}``), decides what to submit and when
(windows, lookaheads, graph shapes, actor calls, training iterations) and which handles
to drop. It starts nothing and holds no clock: an *engine* carries its intents out. The
simulator (`sim.sim_engine.SimEngine`: owner calls in simulated time), twinray's real
mode and real Ray (`twin.real_workloads.RealDriver`: remote functions and actors) are
the three engines, so all of them run the same tasks with the same draws.

The engine interface (`Engine`) is what a driver does on its owner: run a piece of the
program as one owner call (`owner_call`, whose body gets the call's ``now`` and the
engine's opaque ``out``), submit a task, create an actor, call it, release a handle. The
engine calls back `Program.done(tag, handle, ok, at)` when the first return of a task
it submitted with ``tag`` is ready (counted once; ``ok`` false when it failed).

Kinds written here: independent (closed loop), chain, tree, shuffle, graph, actors, rl,
parameter_server and allreduce. hyperparameter_search shares `sim.trial_loop.TrialLoop`
the same way, serving `sim.serving_program.ServingProgram`, streams
`sim.stream_program.StreamProgram` and puts `sim.puts_program.PutsProgram`; open-loop
arrivals have their own driver.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, get_args

from runtime.core.task import CheckpointPlan
from sim.distributions import Sampler, make_sampler
from sim.drivers import (
    GraphNode,
    IterationTimes,
    Role,
    graph_template,
    ps_roles,
    rl_roles,
    shuffle_template,
    split,
    tree_template,
)
from sim.scenario import (
    ActorWorkload,
    AllreduceWorkload,
    ChainWorkload,
    GraphWorkload,
    IndependentWorkload,
    ParameterServerWorkload,
    RLWorkload,
    ShuffleWorkload,
    TreeWorkload,
)

OwnerCall = Callable[[float, Any], None]
"""A piece of a program run as one call on its owner: ``fn(now, out)``."""


class Engine(Protocol):
    """What a program asks of the world it runs in (see the module docstring)."""

    def owner_call(self, fn: OwnerCall, at: float | None = None) -> None:
        """Run `fn(now, out)` as one call on the driver's owner (arriving at `at`)."""

    def submit(
        self,
        tag: Any,
        function: str,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float,
        out: Any,
        resources: dict[str, float] | None = None,
        name: str = "",
    ) -> tuple[Any, ...]:
        """Submit a task (None `resources`: the workload's demand); its return handles."""

    def release(self, handle: Any, now: float, out: Any) -> None:
        """The program no longer needs `handle` (pending consumers keep what they read)."""

    def create_actor(
        self,
        name: str,
        resources: dict[str, float],
        now: float,
        out: Any,
        max_concurrency: int = 1,
        max_restarts: int = 0,
        checkpoint: CheckpointPlan | None = None,
    ) -> Any:
        """Create an actor holding `resources`; its handle."""

    def call(
        self,
        tag: Any,
        actor: Any,
        name: str,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float,
        out: Any,
        max_retries: int = 0,
    ) -> tuple[Any, ...]:
        """Call method `name` of `actor` (runs `duration_s`, returns `sizes`); its handles."""


def task_samplers(spec: Any, rng: random.Random) -> tuple[Sampler, Sampler]:
    """The workload's duration (ms; GPU tasks: ``gpu_duration_ms``) and output size samplers."""
    dist = spec.duration_ms
    if spec.gpu_duration_ms is not None and spec.demand().get("GPU", 0.0) > 0:
        dist = spec.gpu_duration_ms  # GPU work has its own duration model
    return make_sampler(dist, rng), make_sampler(spec.output_bytes, rng)


class Program:
    """One driver's workload: `tasks` tasks to run; `start` then `done` drive it."""

    tasks: int = 0
    """How many tasks the program runs (each counted once when its first return is ready)."""
    times: IterationTimes | None = None
    """Training loops: when each iteration started and its parts were done."""

    def __init__(self, spec: Any, rng: random.Random) -> None:
        self.duration_ms, self.output_bytes = task_samplers(spec, rng)
        self.eng: Any = None

    def start(self, engine: Engine) -> None:
        """Begin: the first owner calls on `engine`."""
        raise NotImplementedError

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """The task submitted with `tag` (first return `handle`) ended at `at`."""
        raise NotImplementedError


class IndependentProgram(Program):
    """`tasks` independent tasks, at most `window` in flight; each result dropped when ready."""

    def __init__(self, spec: IndependentWorkload, rng: random.Random, tasks: int) -> None:
        """A driver's share of `tasks` tasks."""
        super().__init__(spec, rng)
        self.tasks = self.remaining = tasks
        self.window = spec.window
        self._retire: Any = None
        self._submit_fn = self._submit
        self._retire_fn = self._retire_and_submit

    def start(self, engine: Engine) -> None:
        """Fill the window (one owner call per submission)."""
        self.eng = engine
        for _ in range(min(self.window, self.remaining)):
            engine.owner_call(self._submit_fn)

    def _submit(self, now: float, out: Any) -> None:
        self.remaining -= 1
        duration = self.duration_ms() * 1e-3
        self.eng.submit(None, "independent", duration, (int(self.output_bytes()),), (), now, out)

    def _retire_and_submit(self, now: float, out: Any) -> None:
        self.eng.release(self._retire, now, out)
        if self.remaining > 0:
            self._submit(now, out)

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Drop the result and submit the next task, in one owner call."""
        self._retire = handle
        self.eng.owner_call(self._retire_fn, at)


_SUBMITTING = object()
"""A chain's newest handle while its task is being submitted (not known yet)."""


@dataclass(slots=True)
class ChainState:
    """Progress of one chain: its number, tasks submitted, newest handle, total work."""

    index: int
    submitted: int = 0
    last: Any = None
    work_s: float = 0.0


class ChainProgram(Program):
    """Chains of dependent tasks, each consuming its predecessor's output.

    Each chain keeps two tasks submitted: the one running (or about to) and its successor
    waiting for its argument, so dependency resolution is the engine's job and memory
    stays proportional to the number of chains.
    """

    LOOKAHEAD: ClassVar[int] = 2

    def __init__(self, spec: ChainWorkload, rng: random.Random, chains: list[int]) -> None:
        """The chains numbered `chains` of the workload."""
        super().__init__(spec, rng)
        self.length = spec.length
        self.chains = [ChainState(i) for i in chains]
        self.tasks = len(chains) * spec.length
        self._current: ChainState | None = None
        self._retire: Any = None
        self._extend_fn = self._extend
        self._retire_fn = self._retire_and_extend

    def start(self, engine: Engine) -> None:
        """Submit the first tasks of every chain."""
        self.eng = engine
        for chain in self.chains:
            self._current = chain
            for _ in range(min(self.LOOKAHEAD, self.length)):
                engine.owner_call(self._extend_fn)

    def _extend(self, now: float, out: Any) -> None:
        """Submit the next task of the current chain, consuming its newest output."""
        chain = self._current
        assert chain is not None
        previous = chain.last
        duration = self.duration_ms() * 1e-3
        size = int(self.output_bytes())
        args = () if previous is None else (previous,)
        chain.work_s += duration
        chain.submitted += 1
        chain.last = _SUBMITTING  # a failed argument may resolve the task during submit
        (handle,) = self.eng.submit(chain, "chain", duration, (size,), args, now, out)
        if chain.last is _SUBMITTING:
            chain.last = handle
        if previous is not None:
            self.eng.release(previous, now, out)  # the new task holds it now

    def _retire_and_extend(self, now: float, out: Any) -> None:
        chain = self._current
        assert chain is not None
        last = chain.last
        if chain.submitted >= self.length and (last is _SUBMITTING or self._retire == last):
            self.eng.release(self._retire, now, out)  # the chain's final result
            chain.last = self._retire
        elif chain.submitted < self.length:
            self._extend(now, out)

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Extend the chain (or drop its final result), in one owner call."""
        self._current = tag
        self._retire = handle
        self.eng.owner_call(self._retire_fn, at)


class GraphProgram(Program):
    """`instances` copies of a task graph, at most `window` at a time.

    A whole copy is submitted in one owner call and every handle dropped straight away:
    pending consumers hold their arguments, so values are freed once their readers ran.
    """

    def __init__(
        self,
        spec: Any,
        rng: random.Random,
        template: list[GraphNode],
        instances: int,
        window: int,
    ) -> None:
        """`template` lists the graph's tasks, each after the tasks it reads."""
        super().__init__(spec, rng)
        self.template = template
        self.remaining = instances
        self.window = window
        self.tasks = instances * len(template)
        self._left: dict[int, int] = {}
        """Instance number -> tasks not yet ended."""
        self._next = 0
        self._submit_fn = self._submit_instance

    def start(self, engine: Engine) -> None:
        """Submit the first `window` instances."""
        self.eng = engine
        for _ in range(min(self.window, self.remaining)):
            engine.owner_call(self._submit_fn)

    def _submit_instance(self, now: float, out: Any) -> None:
        self.remaining -= 1
        instance = self._next
        self._next += 1
        self._left[instance] = len(self.template)
        eng = self.eng
        produced: list[tuple[Any, ...]] = []
        for node in self.template:
            duration = (node.duration or self.duration_ms)() * 1e-3
            output = node.output or self.output_bytes
            sizes = tuple(int(output()) for _ in range(node.num_returns))
            args = tuple(produced[i][r - 1] for i, r in node.args)
            name = node.name
            produced.append(
                eng.submit(instance, name, duration, sizes, args, now, out, node.resources, name)
            )
        for returns in produced:
            for handle in returns:
                eng.release(handle, now, out)  # pending consumers hold what they read

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Count the instance's task; submit another instance when this one is complete."""
        left = self._left[tag] - 1
        if left:
            self._left[tag] = left
            return
        del self._left[tag]
        if self.remaining > 0:
            self.eng.owner_call(self._submit_fn, at)


class ActorProgram(Program):
    """`actors` actors, each called `calls` times with `window` calls in flight."""

    def __init__(self, spec: ActorWorkload, rng: random.Random, actors: int) -> None:
        """A driver owning `actors` of the workload's actors."""
        super().__init__(spec, rng)
        self.actor_resources = {"CPU": spec.actor_cpus} if spec.actor_cpus else {}
        if spec.actor_gpus:
            self.actor_resources["GPU"] = spec.actor_gpus
        self.actor_resources.update(spec.resources)
        self.count = actors
        self.calls = spec.calls
        self.tasks = actors * spec.calls
        self.window = spec.window
        self.max_concurrency = spec.max_concurrency
        self.max_restarts = spec.max_restarts
        self.max_task_retries = spec.max_task_retries
        self.checkpoint = spec.checkpoint_interval
        """None, or the actors' checkpoint interval (`runtime.core.checkpoints`)."""
        self.checkpoint_s = spec.checkpoint_ms * 1e-3
        self.checkpoint_bytes = spec.checkpoint_bytes
        self.actors: list[Any] = []
        self._left: list[int] = []
        """Calls not yet submitted, by actor number."""
        self._current = 0
        self._retire: Any = None
        self._call_fn = self._call_current
        self._retire_fn = self._retire_and_call

    def start(self, engine: Engine) -> None:
        """Create the actors, then fill each one's window of calls."""
        self.eng = engine
        engine.owner_call(self._create_all)
        for i in range(len(self.actors)):
            self._current = i
            for _ in range(min(self.window, self.calls)):
                engine.owner_call(self._call_fn)

    def _create_all(self, now: float, out: Any) -> None:
        for i in range(self.count):
            plan = None
            if self.checkpoint is not None:
                plan = CheckpointPlan(
                    self.checkpoint, size=self.checkpoint_bytes, cost_s=self.checkpoint_s
                )
            actor = self.eng.create_actor(
                f"actor{i}",
                self.actor_resources,
                now,
                out,
                self.max_concurrency,
                self.max_restarts,
                plan,
            )
            self.actors.append(actor)
            self._left.append(self.calls)

    def _call_current(self, now: float, out: Any) -> None:
        i = self._current
        self._left[i] -= 1
        size = int(self.output_bytes())  # the size is drawn first
        duration = self.duration_ms() * 1e-3
        retries = self.max_task_retries
        self.eng.call(i, self.actors[i], "step", duration, (size,), (), now, out, retries)

    def _retire_and_call(self, now: float, out: Any) -> None:
        self.eng.release(self._retire, now, out)
        if self._left[self._current] > 0:
            self._call_current(now, out)

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Drop the result and make the actor's next call, in one owner call."""
        self._current = tag
        self._retire = handle
        self.eng.owner_call(self._retire_fn, at)


class IterativeProgram(Program):
    """Iterations of: workers read all weight shards and emit one gradient per server;
    each server reads its gradients and emits its new weight shard.

    RL is this with rollout actors as workers and one learner actor as the server; a
    parameter server with worker tasks and ``servers`` server actors. Two iterations are
    submitted ahead, as dependencies serialize them anyway.
    """

    LOOKAHEAD: ClassVar[int] = 2

    def __init__(
        self,
        spec: Any,
        rng: random.Random,
        workers: Role,
        servers: Role,
        iterations: int,
        timed: bool = False,
    ) -> None:
        """`iterations` of the loop (`timed`: keep `IterationTimes`)."""
        super().__init__(spec, rng)
        self.workers = workers
        self.servers = servers
        self.iterations = iterations
        self.tasks = iterations * (workers.count + servers.count)
        self.submitted = 0
        self._weights: tuple[Any, ...] = ()
        self._left: dict[int, int] = {}
        self._submit_fn = self._submit_iteration
        self.times = IterationTimes() if timed else None

    def start(self, engine: Engine) -> None:
        """Create the actors, then submit the first iterations."""
        self.eng = engine
        engine.owner_call(self._create_all)
        for _ in range(min(self.LOOKAHEAD, self.iterations)):
            engine.owner_call(self._submit_fn)

    def _create_all(self, now: float, out: Any) -> None:
        for role in (self.workers, self.servers):
            if role.actors:
                for i in range(role.count):
                    actor = self.eng.create_actor(f"{role.name}{i}", role.resources, now, out)
                    role.actor_ids.append(actor)

    def _run(
        self,
        role: Role,
        i: int,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float,
        out: Any,
    ) -> tuple[Any, ...]:
        duration = role.duration_ms() * 1e-3
        iteration = self.submitted - 1
        if role.actors:
            actor = role.actor_ids[i]
            return self.eng.call(iteration, actor, role.name, duration, sizes, args, now, out)
        return self.eng.submit(
            iteration, role.name, duration, sizes, args, now, out, role.resources, role.name
        )

    def _submit_iteration(self, now: float, out: Any) -> None:
        iteration = self.submitted
        self.submitted += 1
        workers, servers, eng = self.workers, self.servers, self.eng
        previous = self._weights
        self._left[iteration] = workers.count + servers.count
        grads = []
        moved = 0  # bytes the iteration's outputs carry to their readers
        for w in range(workers.count):
            sizes = tuple(int(workers.output_bytes()) for _ in range(servers.count))
            moved += sum(sizes)
            grads.append(self._run(workers, w, sizes, previous, now, out))
        weights = []
        for s in range(servers.count):
            args = tuple(g[s] for g in grads)
            size = int(servers.output_bytes())
            moved += size * workers.count  # every worker reads the new shard
            (handle,) = self._run(servers, s, (size,), args, now, out)
            weights.append(handle)
        for returns in grads:
            for handle in returns:
                eng.release(handle, now, out)
        for handle in previous:
            eng.release(handle, now, out)
        self._weights = tuple(weights)
        if self.times is not None:
            self.times.submitted(iteration, now, weights, moved)

    def _finish(self, now: float, out: Any) -> None:
        for handle in self._weights:
            self.eng.release(handle, now, out)
        self._weights = ()

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Count the iteration's task; submit the next iteration when this one is complete."""
        if self.times is not None and ok:
            self.times.ready(handle, tag, at)
        left = self._left[tag] - 1
        if left:
            self._left[tag] = left
            return
        del self._left[tag]
        if self.submitted < self.iterations:
            self.eng.owner_call(self._submit_fn, at)
        elif not self._left:
            self.eng.owner_call(self._finish, at)


class AllreduceProgram(Program):
    """Ring allreduces over actors: the ring's actors, then `rounds` allreduces in turn.

    Step 0: each actor emits its own chunk (in ``chunks`` pieces). Steps 1..n-1
    (reduce-scatter): actor i sums the piece its left neighbour produced at the previous
    step into its own and passes it on; steps n..2n-2 (allgather): it stores and passes
    on the reduced piece. Each call's argument is the left neighbour's previous output,
    so every step moves ``bytes / (n x chunks)`` per actor and piece, and each actor runs
    its calls in submission order. A round is submitted in one owner call; the next
    starts when its last call's result is ready. Nothing is drawn: durations are the
    reduce cost and the injected delay. ``round_times`` holds each round's time from its
    submission to its last result.
    """

    def __init__(self, spec: AllreduceWorkload, rng: random.Random) -> None:
        """The whole ring of the workload (each driver runs its own ring)."""
        super().__init__(spec, rng)
        self.n = spec.actors
        self.pieces = spec.chunks
        self.piece_bytes = max(1, spec.bytes // (spec.actors * spec.chunks))
        self.reduce_s = self.piece_bytes / (spec.reduce_gbps * 1e9) if spec.reduce_gbps else 0.0
        self.delay_s = spec.injected_delay_ms * 1e-3
        self.rounds = spec.rounds
        self.tasks = spec.rounds * self.n * self.pieces * (2 * self.n - 1)
        self.actor_resources = {"CPU": spec.actor_cpus} if spec.actor_cpus else {}
        self.actor_resources.update(spec.resources)
        self.actors: list[Any] = []
        self.round_started: list[float] = []
        self.round_times: list[float] = []
        self._left = 0
        """Calls of the running round whose result is not ready yet."""

    def start(self, engine: Engine) -> None:
        """Create the actors, then submit the first round."""
        self.eng = engine
        engine.owner_call(self._create_all)
        engine.owner_call(self._submit_round)

    def _create_all(self, now: float, out: Any) -> None:
        for i in range(self.n):
            self.actors.append(self.eng.create_actor(f"ring{i}", self.actor_resources, now, out))

    def _submit_round(self, now: float, out: Any) -> None:
        self.round_started.append(now)
        n, pieces, size, eng = self.n, self.pieces, (self.piece_bytes,), self.eng
        tag = len(self.round_started) - 1
        self._left += n * pieces * (2 * n - 1)
        previous: list[list[Any]] = []
        for step in range(2 * n - 1):
            duration = self.delay_s + (self.reduce_s if 1 <= step <= n - 1 else 0.0)
            name = "send" if step == 0 else ("reduce" if step <= n - 1 else "gather")
            current = []
            for i in range(n):
                row = []
                for j in range(pieces):
                    args = (previous[(i - 1) % n][j],) if previous else ()
                    (handle,) = eng.call(tag, self.actors[i], name, duration, size, args, now, out)
                    row.append(handle)
                current.append(row)
            for row in previous:
                for handle in row:
                    eng.release(handle, now, out)  # the next step's calls hold them
            previous = current
        for row in previous:
            for handle in row:
                eng.release(handle, now, out)

    def done(self, tag: Any, handle: Any, ok: bool, at: float) -> None:
        """Count the round's call; after its last, note its time and submit the next."""
        self._left -= 1
        if self._left:
            return
        self.round_times.append(at - self.round_started[-1])
        if len(self.round_times) < self.rounds:
            self.eng.owner_call(self._submit_round, at)


def _independent(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    return IndependentProgram(spec, rng, split(spec.tasks, n, i))


def _chain(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    return ChainProgram(spec, rng, list(range(i, spec.chains, n)))  # round robin


def _tree(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    template = tree_template(spec.leaves, spec.fan_in)
    return GraphProgram(spec, rng, template, split(spec.trees, n, i), spec.window)


def _shuffle(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    template = shuffle_template(spec.maps, spec.reduces)
    return GraphProgram(spec, rng, template, split(spec.rounds * n, n, i), spec.window)


def _file_graph(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    template = graph_template(spec, rng)
    return GraphProgram(spec, rng, template, split(spec.repeats * n, n, i), spec.window)


def _actors(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    return ActorProgram(spec, rng, split(spec.actors, n, i))


def _allreduce(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    return AllreduceProgram(spec, rng)  # one ring per driver


def _iterative(spec: Any, rng: random.Random, i: int, n: int) -> Program:
    rl = isinstance(spec, RLWorkload)
    workers, servers = (rl_roles if rl else ps_roles)(spec, rng)
    return IterativeProgram(spec, rng, workers, servers, spec.iterations, timed=rl)


PROGRAMS: dict[type[Any], Callable[[Any, random.Random, int, int], Program]] = {
    IndependentWorkload: _independent,
    ChainWorkload: _chain,
    TreeWorkload: _tree,
    ShuffleWorkload: _shuffle,
    GraphWorkload: _file_graph,
    ActorWorkload: _actors,
    RLWorkload: _iterative,
    ParameterServerWorkload: _iterative,
    AllreduceWorkload: _allreduce,
}
"""Workload type -> builder of driver i's (of n) program from its seeded stream."""

PROGRAM_KINDS = frozenset(k for t in PROGRAMS for k in get_args(t.model_fields["kind"].annotation))
"""The workload kinds (``workload.kind``) that run as programs."""


def workload_rng(seed: int, driver: int) -> random.Random:
    """Driver `driver`'s stream of draws (the same in every engine)."""
    return random.Random(f"{seed}:workload:{driver}")


def make_program(spec: Any, rng: random.Random, driver: int, drivers: int) -> Program:
    """Driver `driver` of `drivers`'s program for the workload `spec`, drawing from `rng`.

    Raises ValueError for a workload kind no program describes (see `PROGRAMS`).
    """
    build = PROGRAMS.get(type(spec))
    if build is None:
        raise ValueError(f"no workload program for kind {spec.kind!r}")
    return build(spec, rng, driver, drivers)


__all__ = [
    "PROGRAMS",
    "PROGRAM_KINDS",
    "ActorProgram",
    "AllreduceProgram",
    "ChainProgram",
    "ChainState",
    "Engine",
    "GraphProgram",
    "IndependentProgram",
    "IterativeProgram",
    "Program",
    "make_program",
    "task_samplers",
    "workload_rng",
]
