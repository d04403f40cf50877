"""Benchmark: the twinray simulator against raw SimPy models of the same cluster and workload.

The flagship's shape (independent tasks with exponential 1 ms durations, nodes x slots,
one driver per node submitting through a window) is run three ways in one process:

* ``simpy-idiomatic``: a SimPy Process per task, a ``simpy.Resource`` per node;
* ``simpy-lean``: bare events with callbacks, slot counters and FIFO queues per node;
* ``twinray``: the real control plane (owners, raylets, global scheduler, GCS) on the
  simulator's host, with network delays and per-message service costs, as pure Python;
* ``twinray-compiled``: the same with the compiled build (``python -m sim.build_fast``)
  of the current source; refused with a message when there is none.

The raw models schedule locally and model no control plane, so the ratio is the price of
simulating the real scheduler rather than an idealised one. Each (system, size) runs in a
fresh subprocess, so its peak RSS is its own; the table gives wall and CPU microseconds per
task, engine events per task (entries pushed on the calendar: for twinray, the host's
``sim.calendar``, every message arrival, task end, timer and host call), control messages per task and peak RSS,
so a regression of the engine, of the core's message count or of memory shows at a glance.
Prints a table; not a test.

    python -m benchmarks.sim_engine                       # 100k tasks
    python -m benchmarks.sim_engine --tasks 100k,1M,10M   # the scaling table
    python -m benchmarks.sim_engine --systems twinray --tasks 1M
    python -m benchmarks.sim_engine --systems twinray,twinray-compiled --tasks 1M
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import simpy

FLAGSHIP = Path(__file__).resolve().parents[1] / "scenarios" / "millions_tasks.yaml"


Outcome = tuple[float, int, int]
"""What a model run returns: (simulated makespan s, engine events, control messages)."""


def _events(env: simpy.Environment) -> int:
    """Calendar entries scheduled so far: SimPy's tie counter, which every push advances."""
    return next(env._eid)  # type: ignore[attr-defined]


def simpy_idiomatic(tasks: int, nodes: int, slots: int, window: int, seed: int) -> Outcome:
    """A Process per driver and per task, a Resource per node."""
    env = simpy.Environment()
    rng = random.Random(seed)
    cpus = [simpy.Resource(env, capacity=slots) for _ in range(nodes)]
    per_driver = tasks // nodes

    def task(node: int, done: simpy.Event) -> object:
        with cpus[node].request() as slot:
            yield slot
            yield env.timeout(rng.expovariate(1000.0))
        done.succeed()

    def driver(node: int) -> object:
        in_flight: deque[simpy.Event] = deque()
        for _ in range(per_driver):
            if len(in_flight) >= window:
                yield in_flight.popleft()
            done = env.event()
            env.process(task(node, done))
            in_flight.append(done)
        for done in in_flight:
            yield done

    for node in range(nodes):
        env.process(driver(node))
    env.run()
    return env.now, _events(env), 0


def simpy_lean(tasks: int, nodes: int, slots: int, window: int, seed: int) -> Outcome:
    """Callbacks on bare events, free-slot counters and FIFO queues."""
    env = simpy.Environment()
    rng = random.Random(seed)
    expo = rng.expovariate
    free = [slots] * nodes
    queues: list[deque[int]] = [deque() for _ in range(nodes)]
    left = [tasks // nodes] * nodes

    def start(node: int) -> None:
        free[node] -= 1
        end = env.timeout(expo(1000.0))
        end.callbacks.append(lambda _e, n=node: finish(n))

    def submit(node: int) -> None:
        left[node] -= 1
        if free[node] > 0:
            start(node)
        else:
            queues[node].append(node)

    def finish(node: int) -> None:
        free[node] += 1
        if queues[node]:
            queues[node].popleft()
            start(node)
        if left[node] > 0:
            submit(node)

    for node in range(nodes):
        for _ in range(min(window, left[node])):
            submit(node)
    env.run()
    return env.now, _events(env), 0


def twinray(tasks: int, nodes: int, slots: int, window: int, seed: int) -> Outcome:
    """The flagship scenario scaled to ``tasks``, through the real control plane."""
    from sim.runner import build  # imported here: `twinray_compiled` enables a build first
    from sim.scenario import load_scenario

    overrides = {
        "workload.tasks": str(tasks),
        "workload.drivers": str(nodes),
        "workload.window": str(window),
        "cluster.nodes": str(nodes),
        "cluster.cpus_per_node": str(slots),
        "seed": str(seed),
        "output.progress": "false",
    }
    sim = build(load_scenario(FLAGSHIP, overrides))
    metrics = sim.run()
    return float(metrics["makespan_s"]), sim.host.calendar.pushed, int(metrics["messages"])


class NoCompiledBuild(RuntimeError):
    """``twinray-compiled`` was asked for, but no compiled build of this source can be used."""


def twinray_compiled(tasks: int, nodes: int, slots: int, window: int, seed: int) -> Outcome:
    """`twinray` with the compiled build of the current source (in a fresh process)."""
    from sim import fast

    status = fast.enable()
    if not status.compiled:
        raise NoCompiledBuild(f"twinray-compiled: {status.reason}")
    return twinray(tasks, nodes, slots, window, seed)


SYSTEMS: dict[str, Callable[[int, int, int, int, int], Outcome]] = {
    "simpy-idiomatic": simpy_idiomatic,
    "simpy-lean": simpy_lean,
    "twinray": twinray,
    "twinray-compiled": twinray_compiled,
}


@dataclass
class Row:
    """One measured run of one system at one size."""

    system: str
    tasks: int
    wall_s: float
    cpu_s: float
    makespan_s: float
    events: int
    messages: int
    peak_rss_mib: float


def measure(system: str, tasks: int, nodes: int, slots: int, window: int, seed: int) -> Row:
    """Run `system` once in this process and time it (wall and CPU seconds)."""
    run = SYSTEMS[system]
    wall, cpu = time.perf_counter(), time.process_time()
    makespan, events, messages = run(tasks, nodes, slots, window, seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return Row(system, tasks, wall, cpu, makespan, events, messages, rss)


def _child(conn: Any, args: tuple[Any, ...]) -> None:
    try:
        conn.send(asdict(measure(*args)))
    except NoCompiledBuild as exc:
        conn.send({"error": str(exc)})
    conn.close()


def measure_apart(system: str, tasks: int, nodes: int, slots: int, window: int, seed: int) -> Row:
    """`measure` in a fresh subprocess, so the peak RSS is this run's alone."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, (system, tasks, nodes, slots, window, seed)))
    proc.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(
            f"{system} at {tasks:,} tasks died (exit code {proc.exitcode})"
        ) from None
    proc.join()
    if "error" in result:
        raise NoCompiledBuild(result["error"])
    return Row(**result)


def parse_sizes(text: str) -> list[int]:
    """``"100k,1M,10M"`` -> ``[100000, 1000000, 10000000]`` (k and M suffixes, or digits)."""
    sizes = []
    for item in text.split(","):
        item = item.strip()
        scale = {"k": 1_000, "K": 1_000, "M": 1_000_000}.get(item[-1:], 1)
        digits = item[:-1] if scale > 1 else item
        try:
            value = int(float(digits) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--tasks: {item!r} is not a size like 100k or 1M"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"--tasks: {item!r} must be at least 1")
        sizes.append(value)
    return sizes


def table(rows: Sequence[Row]) -> list[str]:
    """The printed table: per size, each system's cost per task and its ratio to twinray."""
    lines = [
        f"{'system':<16} {'tasks':>11} {'wall s':>8} {'us/task':>8} {'cpu us/task':>11}"
        f" {'events/task':>11} {'msgs/task':>9} {'peak MiB':>8} {'makespan ms':>12}"
        f" {'cpu / twinray':>13}"
    ]
    base = {r.tasks: r.cpu_s for r in rows if r.system == "twinray"}
    for r in rows:
        ratio = f"{r.cpu_s / base[r.tasks]:13.2f}" if base.get(r.tasks) else f"{'':>13}"
        lines.append(
            f"{r.system:<16} {r.tasks:>11,} {r.wall_s:8.2f} {r.wall_s / r.tasks * 1e6:8.2f}"
            f" {r.cpu_s / r.tasks * 1e6:11.2f} {r.events / r.tasks:11.2f}"
            f" {r.messages / r.tasks:9.2f} {r.peak_rss_mib:8.0f} {r.makespan_s * 1e3:12.2f}{ratio}"
        )
    return lines


def _default_systems() -> str:
    """Every system, less ``twinray-compiled`` when no compiled build of this source exists."""
    from sim import fast

    names = list(SYSTEMS)
    if fast.find_build() is None:
        names.remove("twinray-compiled")
    return ",".join(names)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the systems at each size, each in its own subprocess, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", type=parse_sizes, default=[100_000], help="sizes, e.g. 100k,1M,10M"
    )
    parser.add_argument(
        "--systems",
        default=None,
        help=f"comma-separated, of {', '.join(SYSTEMS)} (default: all; twinray-compiled only "
        "when a compiled build of this source exists)",
    )
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--in-process", action="store_true", help="no subprocesses (peak RSS is then cumulative)"
    )
    args = parser.parse_args(argv)
    systems = [name.strip() for name in (args.systems or _default_systems()).split(",")]
    systems = [name for name in systems if name]
    unknown = [name for name in systems if name not in SYSTEMS]
    if unknown or not systems:
        parser.error(
            f"--systems: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SYSTEMS)}"
        )
    run = measure if args.in_process else measure_apart
    rows = []
    for tasks in args.tasks:
        for name in systems:
            try:
                rows.append(run(name, tasks, args.nodes, args.slots, args.window, args.seed))
            except NoCompiledBuild as exc:
                print(exc, file=sys.stderr)
                return 2
    print(f"{args.nodes} nodes x {args.slots} slots, window {args.window}, seed {args.seed}")
    for line in table(rows):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
