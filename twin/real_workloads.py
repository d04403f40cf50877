"""Drive every workload kind on real workers (twinray's or Ray's) with the simulator's draws.

`RealDriver` is the real engine of the workload programs (`sim.programs`): the kinds they
describe (independent, chain, tree, shuffle, graph, actors, rl, parameter_server) run
the very code the simulator runs, drawing from the same stream (``{seed}:workload:0``;
real mode runs one driver). hyperparameter_search runs `sim.trial_loop.TrialLoop` and
streams mirror `sim.streams`. The driver uses only Ray's public API on the module it is
given, so the same runs work on `runtime` (twinray) and on `ray`. Task
bodies are `work`: they sleep (or spin) for the drawn duration and return outputs of the
drawn sizes through the real object store; graph-shaped workloads pass ObjectRefs as
arguments; actor workloads call methods of real actors. A task counts when its first
return value is ready, as in the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sim.drivers import IterationTimes
from sim.metrics import MetricsRecorder
from sim.programs import PROGRAM_KINDS, Program, make_program, task_samplers, workload_rng
from sim.puts_program import PutsProgram
from sim.scenario import HyperparameterSearchWorkload, PutsWorkload, Scenario, StreamWorkload
from sim.stream_program import StreamProgram
from sim.trial_loop import SimTrial, TrialLoop

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


def _actor_key(handle: Any) -> int:
    """A key of an actor handle (twinray's actor id; Ray's handles: the object's id)."""
    return getattr(handle, "actor_id", None) or id(handle)


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
        self.rng = workload_rng(scenario.seed, 0)
        self.resources = spec.demand()
        self.duration_ms, self.output_bytes = task_samplers(spec, self.rng)
        """Draws of the runners that are not programs (search, streams)."""
        self.remote = ray.remote(work)
        self.metrics = MetricsRecorder()
        self.submitted_at: dict[str, float] = {}
        self.pending: dict[Any, tuple[str, Any]] = {}
        self.actor_calls: dict[int, list[str]] = {}
        """Actor id -> names of its calls in submission order (they run in that order)."""
        self.t0 = 0.0
        self.last = 0.0
        self.failed: set[Any] = set()
        """Refs of finished tasks that raised (a runner that cares removes them)."""
        self.rl_times: IterationTimes | None = None
        """An RL loop's iteration times (`run_program` sets them)."""
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

    def actor_call(
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
        self.actor_calls[_actor_key(actor)].append(name)
        method = actor.step.options(num_returns=len(sizes))
        self.submitted_at[name] = time.monotonic()
        refs = method.remote(duration_s, self._body_sizes(sizes), *args)
        return self._returns(name, tag, refs, sizes)

    # the engine interface of workload programs (`sim.programs.Engine`)

    def owner_call(self, fn: Callable[[float, Any], None], at: float | None = None) -> None:
        """Run a piece of the program now: real submissions need no owner call of their own."""
        fn(time.monotonic() - self.t0, None)

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
        """A task of `work` (`function` and `name` are the simulator's labels); its refs."""
        return tuple(self.task(tag, duration_s, sizes, args, resources))

    def release(self, handle: Any, now: float, out: Any) -> None:
        """Nothing to do: the object is freed when its last ObjectRef goes."""

    def create_actor(
        self,
        name: str,
        resources: dict[str, float],
        now: float = 0.0,
        out: Any = None,
        max_concurrency: int = 1,
        max_restarts: int = 0,
        checkpoint: Any = None,
    ) -> Any:
        """Start one `Stateful` actor holding `resources` (placement needs them)."""
        options = {**_options(resources), **self._strategy_options()}
        if max_concurrency != 1:
            options["max_concurrency"] = max_concurrency
        if max_restarts:
            options["max_restarts"] = max_restarts
        handle = self.ray.remote(Stateful).options(**options).remote()
        self.actor_calls[_actor_key(handle)] = []
        return handle

    def call(
        self,
        tag: Any,
        actor: Any,
        name: str,
        duration_s: float,
        sizes: tuple[int, ...],
        args: tuple[Any, ...],
        now: float = 0.0,
        out: Any = None,
        max_retries: int = 0,
    ) -> tuple[Any, ...]:
        """Call `actor.step` (the simulator's method `name`); its refs.

        Retries of failed calls (`max_retries`) matter only where workers fail, which real
        mode does not inject (`fit_to_machine` refuses fault scenarios).
        """
        return tuple(self.actor_call(actor, tag, duration_s, sizes, args))

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
                self.failed.add(ref)
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


# --- workload programs (sim.programs): the simulator's drivers, written once ---------------


def run_program(driver: RealDriver, spec: Any) -> Program:
    """Run the workload's program (driver 0 of ``spec.drivers``) on `driver`; return it.

    Real mode runs one driver (a scenario that fits this machine has one node, and
    scaling down merges the drivers), so the program draws from the simulator's stream
    of driver 0 and runs the same tasks as the simulated driver 0.
    """
    program = make_program(spec, driver.rng, 0, spec.drivers)
    driver.rl_times = program.times
    program.start(driver)
    done = program.done
    while driver.pending:
        for ref, tag in driver.next_done():
            ok = ref not in driver.failed
            driver.failed.discard(ref)
            done(tag, ref, ok, driver.last - driver.t0)
    return program


# --- hyperparameter search (sim.drivers.SearchDriver) --------------------------------------


class _Search(TrialLoop):
    """`sim.trial_loop.TrialLoop` on real epoch tasks: the simulator's decisions and draws.

    The scheduler, searcher and PBT seed come from the driver's stream after its duration
    and size samplers, as in ``sim.drivers.SearchDriver``; each epoch draws its duration,
    then its size, as the simulator's ``_new_spec`` does. Checkpoints are the epoch tasks'
    ObjectRefs: an epoch reads its trial's previous one, PBT keeps the saved ones and an
    exploit continues from the clone's; a dropped handle frees the object.
    """

    def __init__(self, driver: RealDriver, spec: HyperparameterSearchWorkload) -> None:
        """All of the workload's trials on one driver (real mode runs one)."""
        self.driver = driver
        self._init_loop(spec, driver.rng, spec.trials, 0, "0")

    def _submit_epoch(
        self, trial: SimTrial, previous: Any, overhead: float, now: float, out: list[Any]
    ) -> Any:
        """One epoch task reading the trial's previous checkpoint, tagged with the trial."""
        driver = self.driver
        duration = driver.duration_ms() * 1e-3
        size = int(driver.output_bytes())
        if self.checkpoint_bytes is not None:
            size = int(self.checkpoint_bytes)
        if overhead:
            duration += overhead
        args = (previous,) if previous else ()
        return driver.task(trial, duration, (size,), args)[0]

    def _release(self, handle: Any, now: float, out: list[Any]) -> None:
        """Nothing to do: the object is freed when its last ObjectRef goes."""

    def _hold(self, handle: Any, now: float, out: list[Any]) -> None:
        """Nothing to do: the loop's reference to the ObjectRef keeps the object."""

    def _shrink(self, tasks: int, now: float) -> None:
        """Nothing to do: real mode runs until no epoch is pending."""


def run_search(driver: RealDriver, spec: HyperparameterSearchWorkload) -> _Search:
    """`trials` trials, `concurrent_trials` at a time, decided by the workload's scheduler.

    Returns the loop (its ``decisions``, ``exploits`` and ``trials``).
    """
    search = _Search(driver, spec)
    out: list[Any] = []
    search._fill(time.monotonic(), out)
    while driver.pending:
        for ref, trial in driver.next_done():
            now = driver.last
            if ref in driver.failed:
                driver.failed.discard(ref)
                search._trial_failed(trial, now, out)
                continue
            search._epoch_finished(trial, now)
            if ref == trial.checkpoint:  # not replaced by an exploit while it ran
                search._decide(trial, now, out)
    return search


# --- streaming generators (sim.streams.StreamDriver) ------------------------------------------


def produce(duration_s: float, sizes: tuple[int, ...]) -> Any:
    """A generator task body: item `i` of `n` (of `sizes[i]` bytes) at `(i + 1) / (n + 1)`."""
    step = duration_s / (len(sizes) + 1)
    for nbytes in sizes:
        yield work(step, nbytes)
    work(step, 0)


def run_stream(driver: RealDriver, spec: StreamWorkload) -> StreamProgram:
    """`producers` generator tasks, `window` at a time; one consumer task per item as it comes.

    The window and draws are `sim.stream_program.StreamProgram`'s, on the driver's stream
    (real mode runs one driver: all the producers); returns the program.
    """
    ray = driver.ray
    program = StreamProgram(spec, driver.rng, spec.producers)
    producer = ray.remote(produce)
    options = _options(driver.resources)
    streams: dict[Any, str] = {}

    def start() -> None:
        drawn = program.next_producer()
        if drawn is None:
            return
        name = f"t{driver.count}"
        driver.count += 1
        driver.submitted_at[name] = time.monotonic()
        gen = producer.options(name=name, **options).remote(drawn.duration_s, drawn.item_sizes)
        streams[gen] = name

    for _ in range(program.first()):
        start()
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
                start()
                continue
            driver.task(None, program.consumer_duration(), (0,), (item,))
    return program


# --- puts (sim.store.PutDriver) -----------------------------------------------------------


def run_puts(driver: RealDriver, spec: PutsWorkload) -> PutsProgram:
    """Put `puts` objects one after the other, each reference dropped at once; one task each.

    What is put is `sim.puts_program.PutsProgram`'s (real mode runs one driver: every
    driver's puts). Each put's latency is the ``put`` call (serializing and storing the
    value made before it); the simulator's store model (``object_store``, ``threads``)
    prices puts there only: a real put copies as its engine does. Returns the program.
    """
    program = PutsProgram(spec, spec.puts)
    put, metrics, t0 = driver.ray.put, driver.metrics, driver.t0
    while (nbytes := program.next_put()) is not None:
        value = _output(nbytes)
        start = time.monotonic()
        ref = put(value)
        now = time.monotonic()
        del ref  # dropped at once, as the simulated driver does
        metrics.task_done(now - start, now - t0)
        driver.last = now
    return program


RUNNERS: dict[str, Callable[[RealDriver, Any], object]] = {
    "stream": run_stream,
    "puts": run_puts,
    "hyperparameter_search": run_search,
    **{kind: run_program for kind in PROGRAM_KINDS},
}
"""Workload kind -> real-mode runner (the simulator's driver shape, on real workers)."""
