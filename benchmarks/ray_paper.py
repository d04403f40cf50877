"""Reproduce two Ray paper (OSDI 2018) results in the simulator and write reports/ray_paper/.

1. End-to-end scalability (Fig. 8a): tasks per second vs nodes, 10..100 nodes, fixed
   per-node load (`scenarios/ray_paper/scalability.yaml`).
2. Fault tolerance (Fig. 10a): throughput of chained tasks while nodes are removed, with
   lineage re-execution of lost objects (`scenarios/ray_paper/fault_tolerance.yaml`).

Run: `python -m benchmarks.ray_paper [--nodes 10 20 ...] [--tasks-per-node N] [--out DIR]`
(about a minute on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.metrics import write_json  # noqa: E402
from sim.report import plot_scaling, write_report  # noqa: E402
from sim.runner import run_scenario  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios" / "ray_paper"

PAPER_TPS: dict[int, float] = {60: 1.0e6, 100: 1.8e6}
"""Throughputs the paper states in its text (section 5.1, Fig. 8a): 1M tasks/s at 60 nodes,
"beyond 1.8 million tasks per second" at 100 nodes. Intermediate points are not given
numerically; the paper describes the curve as linear."""

PAPER_FAULTS_S = (25.0, 50.0, 100.0)
PAPER_READD_S = 210.0
"""Fig. 10a of the paper: nodes removed at 25, 50 and 100 s, added back at 210 s."""

DEFAULT_NODES = (10, 20, 30, 40, 50, 60, 80, 100)


def scalability(
    nodes: Sequence[int], tasks_per_node: int, policy: str = "bottom_up"
) -> list[dict[str, Any]]:
    """Run the scalability scenario at each cluster size; return one metrics dict each."""
    results = []
    for n in nodes:
        scenario = load_scenario(
            SCENARIOS / "scalability.yaml",
            {
                "cluster.nodes": str(n),
                "workload.drivers": str(n),
                "workload.tasks": str(tasks_per_node * n),
                "scheduler.policy": policy,
            },
        )
        started = time.perf_counter()
        metrics = run_scenario(scenario)
        metrics["nodes"] = n
        metrics["wall_s"] = round(time.perf_counter() - started, 2)
        print(
            f"{policy:11s} {n:4d} nodes: {metrics['throughput_tps']:12,.0f} tasks/s"
            f" ({metrics['wall_s']} s)"
        )
        results.append(metrics)
    return results


def fault_tolerance() -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """The chained workload with and without node removals: (faulty, baseline, event times).

    Event times are the removals and, when nodes come back, the return times.
    """
    path = SCENARIOS / "fault_tolerance.yaml"
    scenario = load_scenario(path)
    faulty = run_scenario(scenario)
    baseline = run_scenario(scenario.model_copy(update={"faults": []}))
    events = [f.at_s for f in scenario.faults]
    events += [f.at_s + f.restart_after_s for f in scenario.faults if f.restart_after_s]
    return faulty, baseline, events


def _rate_series(metrics: dict[str, Any], width_s: float) -> tuple[list[float], list[float]]:
    """Throughput (tasks/s) in bins of about `width_s` seconds from `throughput_series`."""
    series = metrics["throughput_series"]
    bin_s, counts = series["bin_s"], series["counts"]
    factor = max(1, round(width_s / bin_s))
    merged = [sum(counts[i : i + factor]) for i in range(0, len(counts), factor)]
    width = bin_s * factor
    return [(i + 0.5) * width for i in range(len(merged))], [c / width for c in merged]


def plot_fault_tolerance(
    faulty: dict[str, Any], baseline: dict[str, Any], faults: list[float], path: Path
) -> Path:
    """Throughput over time with and without node removals, removals marked."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for label, metrics, style in (("no faults", baseline, "--"), ("nodes removed", faulty, "-")):
        xs, ys = _rate_series(metrics, 0.5)
        ax.plot(xs, ys, style, drawstyle="steps-mid", lw=1.3, label=f"sim: {label}")
    for i, at in enumerate(sorted(set(faults))):
        label = "node removed / back (sim)" if i == 0 else None
        ax.axvline(at, color="C3", lw=1, ls=":", label=label)
    for i, at in enumerate((*PAPER_FAULTS_S, PAPER_READD_S)):
        label = "paper's removals and re-addition / 10" if i == 0 else None
        ax.axvline(at / 10, color="0.5", lw=3, alpha=0.3, label=label)
    ax.set(
        title="Chained 100 ms tasks while nodes are removed and added back",
        xlabel="time since start (s)",
        ylabel="throughput (tasks/s)",
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def interval_throughput(metrics: dict[str, Any], edges: Sequence[float]) -> list[float]:
    """Mean throughput (tasks/s) between consecutive `edges` (seconds), from the series."""
    series = metrics["throughput_series"]
    bin_s, counts = series["bin_s"], series["counts"]
    rates = []
    for lo, hi in zip(edges, edges[1:]):
        first, last = int(lo / bin_s), min(len(counts), int(hi / bin_s))
        span = (last - first) * bin_s
        rates.append(sum(counts[first:last]) / span if span > 0 else 0.0)
    return rates


def _interval_table(
    faulty: dict[str, Any], baseline: dict[str, Any], faults: list[float]
) -> list[str]:
    """Markdown rows: throughput per interval between removals, with and without faults."""
    end = min(faulty["makespan_s"], baseline["makespan_s"]) - 1.0
    edges = [0.0, *sorted(set(faults)), end]
    names = [f"{lo:.3g}-{hi:.3g} s" for lo, hi in zip(edges, edges[1:])]
    lines = ["| run | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, metrics in (("no faults", baseline), ("nodes removed", faulty)):
        rates = interval_throughput(metrics, edges)
        lines.append(f"| {label} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    return lines


def _scaling_section(
    results: list[dict[str, Any]], central: list[dict[str, Any]], out: Path
) -> list[str]:
    nodes = [r["nodes"] for r in results]
    per_node = PAPER_TPS[100] / 100
    by_nodes = {r["nodes"]: r["throughput_tps"] / 1e6 for r in central}
    plot_scaling(
        nodes,
        {
            "sim: bottom-up (the paper's scheduler)": [r["throughput_tps"] / 1e6 for r in results],
            "sim: centralized (every task via the global scheduler)": [
                by_nodes.get(n) for n in nodes
            ],
            "paper, linear fit (1.8M at 100 nodes)": [per_node * n / 1e6 for n in nodes],
            "paper, stated in text": [
                PAPER_TPS[n] / 1e6 if n in PAPER_TPS else None for n in nodes
            ],
        },
        out / "scalability.png",
        title="End-to-end scalability (Ray OSDI 2018 Fig. 8a)",
        xlabel="nodes",
        ylabel="throughput (million tasks/s)",
        styles={
            "paper, linear fit (1.8M at 100 nodes)": {"marker": "", "ls": "--"},
            "paper, stated in text": {"marker": "X", "ls": "none", "markersize": 10},
        },
    )
    lines = [
        "| nodes | sim bottom-up (tasks/s) | paper (tasks/s) | sim vs paper "
        "| spilled tasks | sim centralized (tasks/s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n = r["nodes"]
        paper = PAPER_TPS.get(n, per_node * n)
        mark = "" if n in PAPER_TPS else " (linear)"
        diff = (r["throughput_tps"] - paper) / paper * 100
        c = by_nodes.get(n)
        lines.append(
            f"| {n} | {r['throughput_tps']:,.0f} | {paper:,.0f}{mark} | {diff:+.1f} % "
            f"| {r['spilled_tasks']:,} | {'n/a' if c is None else f'{c * 1e6:,.0f}'} |"
        )
    return lines


def _busy_s(metrics: dict[str, Any]) -> float:
    """Busy CPU-slot seconds of a run (task bodies), from utilisation x makespan x slots."""
    slots = 20 * 4  # fault_tolerance.yaml: 20 nodes x 4 CPUs
    return metrics["cpu_utilization"] * metrics["makespan_s"] * slots


def _mean_duration_s(metrics: dict[str, Any]) -> float:
    """The task duration of fault_tolerance.yaml (constant 100 ms)."""
    return 0.1


HEADLINE = (
    "nodes",
    "tasks",
    "makespan_s",
    "throughput_tps",
    "latency_s",
    "queue_s",
    "spilled_tasks",
    "messages",
    "cpu_utilization",
    "wall_s",
)


def _headline(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline metrics of each run (the per-node series stay out of the JSON)."""
    return [{k: r[k] for k in HEADLINE if k in r} for r in runs]


def write_ray_paper_report(
    results: list[dict[str, Any]],
    central: list[dict[str, Any]],
    faulty: dict[str, Any],
    baseline: dict[str, Any],
    faults: list[float],
    out: Path,
) -> Path:
    """Write `out/report.md` with the scaling plot, the fault plot and the discussion."""
    out.mkdir(parents=True, exist_ok=True)
    table = _scaling_section(results, central, out)
    plot_fault_tolerance(faulty, baseline, faults, out / "fault_tolerance.png")
    write_report(
        faulty,
        out / "fault_tolerance",
        "Ray paper fault tolerance run (sim)",
        intro="The node-removal run of `scenarios/ray_paper/fault_tolerance.yaml`.",
    )
    write_json(
        out / "scalability.json",
        {
            "bottom_up": _headline(results),
            "centralized": _headline(central),
            "paper_tps": PAPER_TPS,
        },
    )
    write_json(out / "fault_tolerance.json", {"faulty": faulty, "baseline": baseline})
    last = results[-1]
    slowdown = faulty["makespan_s"] / baseline["makespan_s"] - 1
    extra_runs = round((_busy_s(faulty) - _busy_s(baseline)) / (_mean_duration_s(faulty) or 1.0))
    text = f"""# The Ray paper, reproduced in the simulator

Generated by `python -m benchmarks.ray_paper` from `scenarios/ray_paper/`. Reference:
P. Moritz, R. Nishihara et al., *Ray: A Distributed Framework for Emerging AI
Applications*, OSDI 2018, section 5.1. The paper's numbers below are the ones its text
states (1 million tasks/s at 60 nodes, "beyond 1.8 million tasks per second" at 100
nodes, removals at 25/50/100 s and re-addition at 210 s in Fig. 10a); other paper
points are the linear fit the text describes, not values read off the figure.

## End-to-end scalability (Fig. 8a)

Empty tasks, one driver per node submitting with 64 tasks in flight, bottom-up
scheduling with a spillback threshold of 16, {results[0]["tasks"] // results[0]["nodes"]:,}
tasks per node, 32 CPUs per node, a star network with 25 us links.

![Throughput vs nodes, sim and paper](scalability.png)

{chr(10).join(table)}

**Discussion.** The simulated control plane scales linearly from {results[0]["nodes"]} to
{last["nodes"]} nodes and reaches {last["throughput_tps"] / 1e6:.2f} million tasks/s at
{last["nodes"]} nodes, against the paper's 1.8 million. Agreement in the slope is by
construction: the one parameter tuned to the paper is the driver's per-message cost
(`owner_us: 27`), chosen so that one node's Python driver submits about the paper's
~18k tasks/s; every other cost is the repository default. What the simulator *predicts*
is the shape: with bottom-up scheduling each node keeps its own driver's tasks
({sum(r["spilled_tasks"] for r in results):,} spills in all runs together), and the GCS is
off the per-task path (task events off), so no shared component saturates and throughput
stays linear, as the paper found. The second simulated curve is the counterfactual the
paper argues against: with the `centralized` policy every task goes through the one
global scheduler, which saturates at about
{max(r["throughput_tps"] for r in central) / 1e3:,.0f}k tasks/s whatever the cluster size
(its {10} us per message bounds it). The paper's rightmost point ran 100 million tasks in
54 s; we simulate {last["tasks"]:,} tasks at {last["nodes"]} nodes (the steady state is
reached within milliseconds) because simulating 10^8 tasks would take hours on this
machine. Differences to expect: the paper's nodes ran several workers each and a C++
raylet whose per-task costs we model only as per-message service times; with this
repository's default driver cost (`--set control_plane.owner_us=3`) one node submits
about 100k tasks/s, 5x the paper's rate, so the driver is what limits the paper's setup
in the model, and the simulated scheduler would not be the limit before ~5x the load.

## Fault tolerance: task reconstruction (Fig. 10a)

Chains of 100 ms tasks, each consuming its predecessor's 1 MiB object, 80 chains on
20 nodes x 4 CPUs from 4 drivers; node 19 is killed at 2.5 s, nodes 18 and 17 at 5 s,
nodes 16 and 15 at 10 s, and all five come back (empty) at 21 s: the paper's times
(25/50/100 s, re-added at 210 s) scaled down 10x. Lost objects are recomputed from
lineage by their owners, chains continue on the surviving nodes, and the returning
nodes register with the GCS and take work again.

![Throughput over time while nodes are removed](fault_tolerance.png)

| run | makespan | mean throughput | latency p50 / p99 |
|---|---:|---:|---:|
| no faults | {baseline["makespan_s"]:.2f} s | {baseline["throughput_tps"]:,.0f} tasks/s | {baseline["latency_s"]["p50"] * 1e3:.0f} / {baseline["latency_s"]["p99"] * 1e3:.0f} ms |
| nodes removed | {faulty["makespan_s"]:.2f} s | {faulty["throughput_tps"]:,.0f} tasks/s | {faulty["latency_s"]["p50"] * 1e3:.0f} / {faulty["latency_s"]["p99"] * 1e3:.0f} ms |

Mean throughput between removals and re-addition (tasks/s):

{chr(10).join(_interval_table(faulty, baseline, faults))}

All {faulty["tasks"]:,} chain tasks finish; the run takes {slowdown * 100:+.1f} % longer
than without faults.

**Discussion.** As in the paper, every chain survives the removals: owners notice the
lost objects and tasks and resubmit the producing tasks, recursively recomputing lost
inputs first. Throughput after each removal settles lower, because 80 chains compete
for fewer CPUs (80 -> 76 -> 68 -> 60), and climbs back once the nodes return, as in the
paper (returning nodes start empty: they hold no objects, so they first take new chain
links whose inputs they pull). One difference shows: the long
low tail at the end: a chain whose newest object was lost must recompute it, and its
inputs may already be freed (only their lineage is kept), so it re-executes the missing
part of its history, one 100 ms task at a time. The busy CPU time shows about
{extra_runs:,} task executions more than without faults, and they are serial within the
few chains concerned: those finish seconds after the rest, which is most of the
{slowdown * 100:.0f} % longer makespan. The paper's figure
separates original and re-executed tasks; our metrics count each chain task once, so
re-executions show only as lost throughput. The full per-run report (queues,
utilisation per node, bytes moved) is in [fault_tolerance/report.md](fault_tolerance/report.md).
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run both experiments and write the report; print where it is."""
    parser = argparse.ArgumentParser(prog="ray_paper", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=list(DEFAULT_NODES))
    parser.add_argument("--tasks-per-node", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "ray_paper")
    args = parser.parse_args(argv)
    results = scalability(args.nodes, args.tasks_per_node)
    central = scalability(args.nodes[::2], args.tasks_per_node, "centralized")
    faulty, baseline, faults = fault_tolerance()
    path = write_ray_paper_report(results, central, faulty, baseline, faults, args.out)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
