"""Render a run's metrics dict (the schema both worlds share) as report.md plus matplotlib PNGs.

Every plot has a title, labelled axes and units. Fields that a run did not record
(older metrics, or a world that does not measure them) are listed as absent in the
report instead of failing, so the same code renders sim runs, real runs and sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

from sim.serving_report import serving_lines
from sim.units import fmt_bytes as _fmt_bytes
from sim.units import fmt_s as _fmt_s
from sim.units import num as _num

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FIGSIZE = (7.0, 3.8)
DPI = 90
PERCENTILES = ("p50", "p90", "p99", "max")

PlotFn = Callable[[Mapping[str, Any], Axes], bool]


# --- small helpers -------------------------------------------------------------------------


def _save(fig: Figure, path: Path) -> None:
    """Write `fig` as a compact PNG and release it."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _series(value: Any) -> list[float] | None:
    """A flat list of numbers (None when `value` is not one)."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return None
    nums = [_num(v) for v in value]
    if any(v is None for v in nums):
        return None
    return [float(v) for v in nums]  # type: ignore[arg-type]


def _rebin(counts: list[float], bin_s: float, max_bins: int = 80) -> tuple[list[float], float]:
    """Sum neighbouring bins until at most `max_bins` remain (readable step plots)."""
    factor = max(1, math.ceil(len(counts) / max_bins))
    if factor == 1:
        return counts, bin_s
    merged = [sum(counts[i : i + factor]) for i in range(0, len(counts), factor)]
    return merged, bin_s * factor


def _per_node_series(value: Any) -> list[float] | None:
    """A time series, from a flat list or a list of per-node lists (summed over nodes)."""
    flat = _series(value)
    if flat is not None:
        return flat
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, Sequence) and value and all(_series(v) for v in value):
        rows = [_series(v) or [] for v in value]
        width = max(len(r) for r in rows)
        return [sum(r[i] for r in rows if i < len(r)) for i in range(width)]
    return None


# --- plots of one run ----------------------------------------------------------------------


def plot_throughput(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Completed tasks per second over time, from `throughput_series`."""
    ts = metrics.get("throughput_series")
    if not isinstance(ts, Mapping):
        return False
    counts, bin_s = _series(ts.get("counts")), _num(ts.get("bin_s"))
    if not counts or not bin_s:
        return False
    counts, bin_s = _rebin(counts, bin_s)
    xs = [(i + 0.5) * bin_s for i in range(len(counts))]
    ax.plot(xs, [c / bin_s for c in counts], drawstyle="steps-mid", lw=1.2)
    mean = _num(metrics.get("throughput_tps"))
    if mean:
        ax.axhline(mean, color="C3", ls="--", lw=1, label=f"mean {mean:,.0f} tasks/s")
    for i, fault in enumerate(metrics.get("faults") or []):
        at = _num(fault.get("time_s")) if isinstance(fault, Mapping) else None
        if at is not None:
            label = f"fault: {fault.get('kind')} {fault.get('target')}"
            ax.axvline(at, color="C1", ls=":", lw=1.5, label=label if i < 4 else None)
    if mean or metrics.get("faults"):
        ax.legend(loc="lower right", fontsize=8)
    ax.set(title="Throughput over time", xlabel="time since start (s)", ylabel="tasks/s")
    ax.set_ylim(bottom=0)
    return True


def plot_latency(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Task latency (submit to result) and queueing percentiles, in milliseconds."""
    groups = [
        (key, label)
        for key, label in (("latency_s", "latency"), ("queue_s", "queueing"))
        if isinstance(metrics.get(key), Mapping)
    ]
    if not groups:
        return False
    width = 0.8 / len(groups)
    for i, (key, label) in enumerate(groups):
        summary = metrics[key]
        vals = [(_num(summary.get(p)) or 0.0) * 1e3 for p in PERCENTILES]
        xs = [j + i * width for j in range(len(PERCENTILES))]
        ax.bar(xs, vals, width=width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(PERCENTILES))], list(PERCENTILES))
    ax.set(title="Task latency distribution", xlabel="percentile", ylabel="time (ms)")
    ax.legend(fontsize=8)
    return True


def _cluster_utilization(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Resource -> cluster-wide busy fraction, from `utilization` or `cpu_utilization`."""
    util = metrics.get("utilization")
    if isinstance(util, Mapping):
        return {str(k): float(v) for k, v in sorted(util.items()) if _num(v) is not None}
    cpu = _num(metrics.get("cpu_utilization"))
    return {"CPU": cpu} if cpu is not None else {}


def _node_utilization(metrics: Mapping[str, Any]) -> dict[str, list[float]]:
    """Resource -> busy fraction per node, from `node_utilization`.

    Accepts `{resource: [per node]}` (the sim's layout), `[{resource: x}, ...]` per node,
    or `[x, ...]` per node (CPU).
    """
    nodes = metrics.get("node_utilization")
    out: dict[str, list[float]] = {}
    if isinstance(nodes, Mapping):
        for res, values in sorted(nodes.items()):
            series = _series(values)
            if series:
                out[str(res)] = series
    elif isinstance(nodes, Sequence) and not isinstance(nodes, str) and nodes:
        if all(isinstance(v, Mapping) for v in nodes):
            names = sorted({str(k) for v in nodes for k in v})
            out = {n: [_num(v.get(n)) or 0.0 for v in nodes] for n in names}
        elif _series(nodes):
            out = {"CPU": _series(nodes) or []}
    return out


def plot_utilization(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Busy fraction per node for each resource, with the cluster-wide value as a line."""
    cluster, per_node = _cluster_utilization(metrics), _node_utilization(metrics)
    if not cluster and not per_node:
        return False
    if per_node:
        width = 0.8 / len(per_node)
        for i, (res, values) in enumerate(per_node.items()):
            xs = [n + i * width - 0.4 + width / 2 for n in range(len(values))]
            ax.bar(
                xs, [v * 100 for v in values], width=width, label=f"{res} per node", color=f"C{i}"
            )
        for i, (res, value) in enumerate(cluster.items()):
            ax.axhline(value * 100, ls="--", lw=1, color=f"C{i}", label=f"{res} cluster-wide")
        ax.set(xlabel="node")
        ax.legend(fontsize=7, loc="lower right")
    else:
        labels = list(cluster)
        ax.bar(labels, [cluster[k] * 100 for k in labels], color="C2")
        ax.set(xlabel="resource (cluster-wide)")
    ax.set(title="Utilisation per node and resource", ylabel="busy (%)")
    ax.set_ylim(0, 105)
    return True


def plot_queues(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Scheduler, GCS and raylet queue lengths over time, from `queues`."""
    queues = metrics.get("queues")
    if not isinstance(queues, Mapping):
        return False
    bin_s = _num(queues.get("bin_s"))
    drawn = False
    for key, label in (
        ("global_scheduler", "global scheduler"),
        ("gcs", "GCS"),
        ("raylet_tasks", "raylets (sum over nodes)"),
    ):
        ys = _per_node_series(queues.get(key))
        if not ys:
            continue
        xs = [i * bin_s for i in range(len(ys))] if bin_s else list(range(len(ys)))
        ax.plot(xs, ys, label=label, lw=1.2)
        drawn = True
    if not drawn:
        return False
    ax.set(
        title="Control-plane queue lengths",
        xlabel="time since start (s)" if bin_s else "sample",
        ylabel="queued messages / tasks",
    )
    ax.legend(fontsize=8)
    return True


def plot_bytes(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Bytes moved over the network per second over time (`bytes_series`), else totals."""
    series = metrics.get("bytes_series")
    if isinstance(series, Mapping):
        ys, bin_s = _series(series.get("bytes")), _num(series.get("bin_s"))
        if ys and bin_s:
            ys, bin_s = _rebin(ys, bin_s)
            xs = [(i + 0.5) * bin_s for i in range(len(ys))]
            ax.plot(xs, [y / bin_s / 2**20 for y in ys], drawstyle="steps-mid", lw=1.2)
            ax.set(
                title="Bytes moved over the network (object transfers)",
                xlabel="time since start (s)",
                ylabel="transfer rate (MiB/s)",
            )
            ax.set_ylim(bottom=0)
            return True
    totals = {
        "object transfers": _num(metrics.get("bytes_transferred")),
        "control messages": _num(metrics.get("message_bytes")),
    }
    totals = {k: v for k, v in totals.items() if v is not None}
    if not totals:
        return False
    ax.bar(list(totals), [v / 2**20 for v in totals.values()], color=["C0", "C1"][: len(totals)])
    ax.set(title="Bytes moved over the network (whole run)", xlabel="kind", ylabel="MiB")
    return True


WAIT_LABELS = {
    "arguments": "arguments (held at the owner)",
    "global_scheduler": "spilled (global scheduler)",
    "transfers": "fetching arguments",
    "resources": "queued for resources",
    "actor_queue": "actor queue",
}
"""Wait cause (`wait_breakdown` key) -> readable label."""


def _waits(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    waits = metrics.get("wait_breakdown")
    if not isinstance(waits, Mapping):
        return {}
    order = [k for k in WAIT_LABELS if k in waits] + sorted(set(waits) - set(WAIT_LABELS))
    return {k: waits[k] for k in order if isinstance(waits[k], Mapping)}


def plot_waits(metrics: Mapping[str, Any], ax: Axes) -> bool:
    """Where tasks waited, in simulated seconds per cause (`wait_breakdown`)."""
    waits = _waits(metrics)
    values = {k: _num(v.get("seconds")) or 0.0 for k, v in waits.items()}
    if not values or not any(values.values()):
        return False
    labels = [WAIT_LABELS.get(k, k) for k in values]
    ax.barh(labels, list(values.values()), color=[f"C{i}" for i in range(len(values))])
    ax.invert_yaxis()
    ax.set(
        title="Why tasks waited (summed over tasks)",
        xlabel="waiting time (simulated s)",
        ylabel="cause",
    )
    return True


def wait_table(metrics: Mapping[str, Any]) -> list[str]:
    """The wait breakdown as a markdown table (empty when the run has none)."""
    waits = _waits(metrics)
    if not waits:
        return []
    lines = ["| cause | waiting (s, summed) | share | mean per task |", "|---|---|---|---|"]
    for key, row in waits.items():
        share = (_num(row.get("share")) or 0.0) * 100
        lines.append(
            f"| {WAIT_LABELS.get(key, key)} | {_num(row.get('seconds')) or 0.0:.6g} "
            f"| {share:.1f} % | {_fmt_s(row.get('per_task_s'))} |"
        )
    return lines


PLOTS: tuple[tuple[str, str, PlotFn], ...] = (
    ("throughput.png", "Throughput over time", plot_throughput),
    ("latency.png", "Task latency distribution", plot_latency),
    ("utilization.png", "Utilisation per node and resource", plot_utilization),
    ("queues.png", "Scheduler and GCS queue lengths", plot_queues),
    ("bytes.png", "Bytes moved over the network", plot_bytes),
    ("waits.png", "Why tasks waited", plot_waits),
)
"""(file name, section heading, plot function) of every per-run plot."""


# --- markdown ------------------------------------------------------------------------------


def summary_table(metrics: Mapping[str, Any]) -> list[str]:
    """The headline metrics as a markdown table."""
    lat = metrics.get("latency_s") or {}
    que = metrics.get("queue_s") or {}
    rows = [
        ("tasks", f"{metrics.get('tasks', 'n/a'):,}" if _num(metrics.get("tasks")) else "n/a"),
        ("makespan", _fmt_s(metrics.get("makespan_s"))),
        ("throughput", f"{_num(metrics.get('throughput_tps')) or 0:,.0f} tasks/s"),
        ("latency p50 / p90 / p99", " / ".join(_fmt_s(lat.get(p)) for p in ("p50", "p90", "p99"))),
        ("queueing p50 / p99", " / ".join(_fmt_s(que.get(p)) for p in ("p50", "p99"))),
        ("CPU utilisation", f"{(_num(metrics.get('cpu_utilization')) or 0) * 100:.1f} %"),
        ("spilled tasks", str(metrics.get("spilled_tasks", "n/a"))),
        (
            "control messages",
            f"{metrics.get('messages', 'n/a')} ({_fmt_bytes(metrics.get('message_bytes'))})",
        ),
        (
            "object transfers",
            f"{metrics.get('transfers', 'n/a')} ({_fmt_bytes(metrics.get('bytes_transferred'))})",
        ),
    ]
    faults = [f for f in metrics.get("faults") or [] if isinstance(f, Mapping)]
    if faults:
        text = ", ".join(
            f"{f.get('kind')} {f.get('target')} at {_fmt_s(f.get('time_s'))}" for f in faults
        )
        rows.append(("faults", text))
    recovery = metrics.get("recovery")
    if isinstance(recovery, Mapping):
        back = recovery.get("recovery_s")
        rows.append(
            (
                "throughput dip / recovery",
                f"{_num(recovery.get('dip_throughput_tps')) or 0:,.0f} tasks/s at the lowest "
                f"(baseline {_num(recovery.get('baseline_tps')) or 0:,.0f} tasks/s); back to 90 % "
                + (f"after {_fmt_s(back)}" if back is not None else "not before the run ended"),
            )
        )
    rl = metrics.get("rl")
    if isinstance(rl, Mapping) and rl.get("iterations"):
        parts = " / ".join(_fmt_s(rl.get(k)) for k in ("iteration_s", "sampling_s", "learner_s"))
        rows.append(
            (
                "RL iteration / sampling / learner",
                f"{parts} (mean after the first of {rl['iterations']}; "
                f"{_fmt_bytes(rl.get('bytes_per_iteration'))} moved per iteration)",
            )
        )
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return lines


def write_report(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    title: str,
    *,
    intro: str = "",
    extra: Sequence[str] = (),
) -> Path:
    """Write `out_dir/report.md` and one PNG per plot the metrics allow; return report.md.

    `intro` is a paragraph under the title; `extra` are markdown lines appended at the end
    (e.g. a comparison section). Plots whose inputs are absent are listed, not drawn.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["## Summary", "", *summary_table(metrics), ""]
    warnings = [str(w) for w in metrics.get("warnings") or ()]
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    waits = wait_table(metrics)
    if waits:
        lines += [
            "## Waiting time by cause",
            "",
            "Simulated time tasks spent before they ran, summed over tasks, by where they "
            "waited (measured in the core's own transitions).",
            "",
            *waits,
            "",
        ]
    absent: list[str] = []
    for name, heading, plot in PLOTS:
        fig, ax = plt.subplots(figsize=FIGSIZE)
        if plot(metrics, ax):
            _save(fig, out / name)
            lines += [f"## {heading}", "", f"![{heading}]({name})", ""]
        else:
            plt.close(fig)
            (out / name).unlink(missing_ok=True)
            absent.append(heading.lower())
    if absent:
        lines += [
            "## Not recorded in this run",
            "",
            "The metrics of this run hold no data for: " + "; ".join(absent) + ".",
            "",
        ]
    lines += serving_lines(metrics, out)
    lines += list(extra)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


# --- comparisons and sweeps ----------------------------------------------------------------


COMPARED: tuple[tuple[str, str], ...] = (
    ("throughput_tps", "throughput (tasks/s)"),
    ("makespan_s", "makespan (s)"),
    ("latency_s.p50", "latency p50 (s)"),
    ("latency_s.p90", "latency p90 (s)"),
    ("latency_s.p99", "latency p99 (s)"),
    ("queue_s.p50", "queueing p50 (s)"),
    ("cpu_utilization", "CPU utilisation"),
    ("spilled_tasks", "spilled tasks"),
    ("bytes_transferred", "bytes transferred"),
)
"""(dotted metric path, label) of the metrics put side by side."""

RL_COMPARED: tuple[tuple[str, str], ...] = (
    ("rl.iteration_s", "RL iteration (s)"),
    ("rl.sampling_s", "RL sampling (s)"),
    ("rl.learner_s", "RL learner (s)"),
    ("rl.bytes_per_iteration", "RL bytes / iteration"),
)
"""RL training loops' rows (means over iterations after the first), shown when either has them."""


def metric_at(metrics: Mapping[str, Any], dotted: str) -> float | None:
    """The number at a dotted path of a metrics dict, or None."""
    node: Any = metrics
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return _num(node)


def relative_difference(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured, None when undefined."""
    if predicted is None or measured is None or measured == 0:
        return None
    return (predicted - measured) / abs(measured)


def comparison_rows(
    sim: Mapping[str, Any], real: Mapping[str, Any]
) -> list[tuple[str, float | None, float | None, float | None]]:
    """(label, sim value, real value, relative difference of sim to real) per metric."""
    rows = []
    for path, label in COMPARED:
        s, r = metric_at(sim, path), metric_at(real, path)
        rows.append((label, s, r, relative_difference(s, r)))
    for path, label in RL_COMPARED:
        s, r = metric_at(sim, path), metric_at(real, path)
        if s is not None or r is not None:
            rows.append((label, s, r, relative_difference(s, r)))
    return rows


def _fmt_num(x: float | None) -> str:
    """A number for tables."""
    if x is None:
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:,.4g}"
    return f"{x:.3e}"


def comparison_table(sim: Mapping[str, Any], real: Mapping[str, Any]) -> list[str]:
    """Markdown table: metric, sim, real, relative difference (sim vs real)."""
    lines = ["| metric | sim | real | sim vs real |", "|---|---:|---:|---:|"]
    for label, s, r, d in comparison_rows(sim, real):
        diff = "n/a" if d is None else f"{d * 100:+.1f} %"
        lines.append(f"| {label} | {_fmt_num(s)} | {_fmt_num(r)} | {diff} |")
    return lines


def plot_comparison(
    sim: Mapping[str, Any], real: Mapping[str, Any], out_dir: str | Path
) -> list[str]:
    """Sim-vs-real PNGs (throughput over time, latency percentiles); return their names."""
    return plot_engines({"sim": sim, "real": real}, out_dir)


def plot_engines(runs: Mapping[str, Mapping[str, Any]], out_dir: str | Path) -> list[str]:
    """PNGs of several runs side by side (throughput over time, latency percentiles).

    `runs` maps each engine's label to its metrics; returns the PNGs' names.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    versus = " vs ".join(runs)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    drawn = False
    for label, metrics in runs.items():
        ts = metrics.get("throughput_series") or {}
        counts, bin_s = _series(ts.get("counts")), _num(ts.get("bin_s"))
        if counts and bin_s:
            counts, bin_s = _rebin(counts, bin_s)
            xs = [(i + 0.5) * bin_s for i in range(len(counts))]
            ax.plot(xs, [c / bin_s for c in counts], drawstyle="steps-mid", lw=1.2, label=label)
            drawn = True
    if drawn:
        ax.set(title=f"Throughput over time: {versus}", xlabel="time since start (s)")
        ax.set(ylabel="tasks/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        _save(fig, out / "compare_throughput.png")
        names.append("compare_throughput.png")
    else:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    width = 0.8 / len(runs)
    for i, (label, metrics) in enumerate(runs.items()):
        lat = metrics.get("latency_s") or {}
        vals = [(_num(lat.get(p)) or 0.0) * 1e3 for p in PERCENTILES]
        ax.bar([j + i * width for j in range(len(PERCENTILES))], vals, width=width, label=label)
    ticks = [j + width * (len(runs) - 1) / 2 for j in range(len(PERCENTILES))]
    ax.set_xticks(ticks, list(PERCENTILES))
    ax.set(title=f"Task latency: {versus}", xlabel="percentile", ylabel="latency (ms)")
    ax.legend(fontsize=8)
    _save(fig, out / "compare_latency.png")
    names.append("compare_latency.png")
    return names


def write_comparison(
    sim: Mapping[str, Any], real: Mapping[str, Any], out_dir: str | Path, title: str
) -> Path:
    """Write `out_dir/comparison.md` with the side-by-side table and sim-vs-real plots."""
    out = Path(out_dir)
    names = plot_comparison(sim, real, out)
    lines = [
        f"# {title}: sim beside real",
        "",
        "Relative difference is (sim - real) / real: positive means the simulator "
        "over-predicts the real run.",
        "",
        *comparison_table(sim, real),
        "",
    ]
    for name in names:
        lines += [f"![{name[:-4].replace('_', ' ')}]({name})", ""]
    path = out / "comparison.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def plot_scaling(
    xs: Sequence[float],
    curves: Mapping[str, Sequence[float | None]],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """A metric-vs-swept-parameter plot with one line per curve; returns the PNG path.

    `styles` maps a curve's label to extra `Axes.plot` keyword arguments (marker, ls, ...).
    """
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for i, (label, ys) in enumerate(curves.items()):
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            style = {"marker": "o", "color": f"C{i}", **(styles or {}).get(label, {})}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    return path


# --- Chrome trace / Perfetto JSON ----------------------------------------------------------


class TaskTracer:
    """Collects simulated task executions and writes them as Chrome trace / Perfetto JSON.

    The event format is the one `runtime.timeline()` writes in real mode ("X" events in
    microseconds), with one process per node and one thread per concurrently busy slot,
    so traces of both worlds open side by side in https://ui.perfetto.dev.
    """

    def __init__(self, limit: int = 200_000) -> None:
        """Keep at most `limit` executions (the first ones); later ones are counted only."""
        self.limit = limit
        self.spans: list[tuple[str, int, float, float]] = []
        self.dropped = 0

    def record(self, name: str, node: int, start_s: float, end_s: float) -> None:
        """One task body ran on `node` from `start_s` to `end_s` (seconds)."""
        if len(self.spans) < self.limit:
            self.spans.append((name, node, start_s, end_s))
        else:
            self.dropped += 1

    def attach(self, sim: Any) -> TaskTracer:
        """Observe task ends of a built `sim.runner.Simulation` (before `run`); return self.

        Uses the host's task-end callback list; raises RuntimeError if this host has none.
        """
        host = sim.host
        callbacks = getattr(host, "_task_end_cbs", None)
        if not isinstance(callbacks, list) or not callbacks:
            raise RuntimeError("this simulator host exposes no task-end hook to trace")
        inner = callbacks[0]
        origin = sim

        def on_end(event: Any) -> None:
            _, _, node, spec, started = event  # the host's task-end entry
            now = host.now
            t0 = origin.started_at
            self.record(spec.function, node, started - t0, now - t0)
            inner(event)

        callbacks[0] = on_end
        return self

    def events(self) -> list[dict[str, Any]]:
        """The spans as Chrome trace "X" events, slots assigned greedily per node."""
        lanes: dict[int, list[float]] = {}
        out = []
        for name, node, start, end in sorted(self.spans, key=lambda s: (s[2], s[1])):
            ends = lanes.setdefault(node, [])
            lane = next((i for i, free in enumerate(ends) if free <= start), len(ends))
            if lane == len(ends):
                ends.append(end)
            else:
                ends[lane] = end
            out.append(
                {
                    "name": name,
                    "cat": "task",
                    "ph": "X",
                    "pid": f"node {node}",
                    "tid": lane,
                    "ts": round(start * 1e6, 3),
                    "dur": round(max(0.0, end - start) * 1e6, 3),
                }
            )
        return out

    def write(self, path: str | Path) -> Path:
        """Write the trace JSON to `path`; return it."""
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "traceEvents": self.events(),
            "displayTimeUnit": "ms",
            "otherData": {"world": "sim", "dropped_spans": self.dropped},
        }
        path.write_text(json.dumps(data), encoding="utf-8")
        return path


# --- sweeps --------------------------------------------------------------------------------

SWEPT: tuple[tuple[str, str, float, str], ...] = (
    ("throughput_tps", "Throughput", 1.0, "tasks/s"),
    ("latency_p50_s", "Median task latency", 1e3, "ms"),
    ("latency_p99_s", "p99 task latency", 1e3, "ms"),
    ("cpu_utilization", "CPU utilisation", 100.0, "%"),
)
"""(column of a sweep row, title, scale, unit) of the scaling plots a sweep draws."""


def _as_number(text: Any) -> float | None:
    """A swept value as a number (None when it is not one, e.g. a policy name)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def plot_sweep(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], out_dir: str | Path
) -> list[str]:
    """Scaling plots (metric vs the first swept key) from `sim.sweep` rows; markdown lines.

    Rows hold the swept values under `keys` and metrics under the SWEPT columns. With a
    second swept key, each of its values is one line. Non-numeric values (policy names)
    are placed at 0, 1, 2, ... in their order. Returns image links for sweep.md.
    """
    if not rows or not keys:
        return []
    out = Path(out_dir)
    param, series_key = keys[0], (keys[1] if len(keys) > 1 else None)
    values = list(dict.fromkeys(str(r.get(param)) for r in rows))
    numeric = all(_as_number(v) is not None for v in values)
    xs = [_as_number(v) if numeric else i for i, v in enumerate(values)]
    groups = list(dict.fromkeys(str(r.get(series_key)) for r in rows)) if series_key else [""]
    lines: list[str] = []
    for column, name, scale, unit in SWEPT:
        curves: dict[str, list[float | None]] = {}
        for group in groups:
            label = f"{series_key}={group}" if series_key else name
            by_x = {
                str(r.get(param)): _num(r.get(column))
                for r in rows
                if not series_key or str(r.get(series_key)) == group
            }
            curves[label] = [
                None if by_x.get(v) is None else by_x[v] * scale  # type: ignore[operator]
                for v in values
            ]
        if all(y is None for ys in curves.values() for y in ys):
            continue
        file = f"sweep_{column}.png"
        plot_scaling(
            [float(x) for x in xs if x is not None],
            curves,
            out / file,
            title=f"{name} vs {param}",
            xlabel=param if numeric else f"{param} ({', '.join(values)})",
            ylabel=f"{name.lower()} ({unit})",
        )
        lines += [f"![{name} vs {param}]({file})", ""]
    return lines
