"""Benchmark: the twinray simulator against raw SimPy models of the same cluster and workload.

The flagship's shape (independent tasks with exponential 1 ms durations, nodes x slots,
one driver per node submitting through a window) is run three ways in one process:

* ``simpy-idiomatic``: a SimPy Process per task, a ``simpy.Resource`` per node;
* ``simpy-lean``: bare events with callbacks, slot counters and FIFO queues per node;
* ``twinray``: the real control plane (owners, raylets, global scheduler, GCS) on the
  simulator's host, with network delays and per-message service costs.

The raw models schedule locally and model no control plane, so the ratio is the price of
simulating the real scheduler rather than an idealised one. Prints a table; not a test.

    python -m benchmarks.sim_engine --tasks 200000
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import simpy

from sim.runner import run_scenario
from sim.scenario import load_scenario

FLAGSHIP = Path(__file__).resolve().parents[1] / "scenarios" / "millions_tasks.yaml"


def simpy_idiomatic(tasks: int, nodes: int, slots: int, window: int, seed: int) -> float:
    """A Process per driver and per task, a Resource per node; returns the makespan (s)."""
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
    return env.now


def simpy_lean(tasks: int, nodes: int, slots: int, window: int, seed: int) -> float:
    """Callbacks on bare events, free-slot counters and FIFO queues; returns the makespan."""
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
    return env.now


def twinray(tasks: int, nodes: int, slots: int, window: int, seed: int) -> float:
    """The flagship scenario scaled to ``tasks``, through the real control plane."""
    overrides = {
        "workload.tasks": str(tasks),
        "workload.drivers": str(nodes),
        "workload.window": str(window),
        "cluster.nodes": str(nodes),
        "cluster.cpus_per_node": str(slots),
        "seed": str(seed),
        "output.progress": "false",
    }
    metrics = run_scenario(load_scenario(FLAGSHIP, overrides))
    return float(metrics["makespan_s"])


SYSTEMS: dict[str, Callable[[int, int, int, int, int], float]] = {
    "simpy-idiomatic": simpy_idiomatic,
    "simpy-lean": simpy_lean,
    "twinray": twinray,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run every system on the same workload and print wall times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    rows = []
    for name, run in SYSTEMS.items():
        start = time.perf_counter()
        makespan = run(args.tasks, args.nodes, args.slots, args.window, args.seed)
        wall = time.perf_counter() - start
        rows.append((name, wall, makespan))
    base = dict((name, wall) for name, wall, _ in rows)["twinray"]
    print(f"{args.tasks:,} tasks, {args.nodes} nodes x {args.slots} slots, window {args.window}")
    print(
        f"{'system':<16} {'wall s':>8} {'tasks/wall-s':>13} {'makespan ms':>12} {'wall / twinray':>15}"
    )
    for name, wall, makespan in rows:
        rate = args.tasks / wall
        print(f"{name:<16} {wall:8.2f} {rate:13,.0f} {makespan * 1e3:12.2f} {wall / base:15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
