"""The serving workload's section of a run report: its figures and two plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

from sim.units import fmt_s, num

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FIGSIZE = (7.0, 3.8)
DPI = 90


def _save(fig: Figure, path: Path) -> None:
    """Write `fig` as a compact PNG and release it (as sim.report does)."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def serving_lines(metrics: Mapping[str, Any], out: Path) -> list[str]:
    """Markdown (and PNGs in `out`) for `metrics["serving"]`; nothing when it is absent."""
    serving = metrics.get("serving")
    if not isinstance(serving, Mapping):
        return []
    lat = serving.get("latency_s") or {}
    lines = [
        "## Serving",
        "",
        "| metric | value |",
        "|---|---|",
        f"| requests (completed / rejected 503 / failed) | {serving.get('requests')} "
        f"({serving.get('completed')} / {serving.get('rejected')} / {serving.get('failed')}) |",
        f"| throughput | {num(serving.get('throughput_rps')) or 0:,.1f} requests/s |",
        "| latency p50 / p95 / p99 | "
        + " / ".join(fmt_s(lat.get(p)) for p in ("p50", "p95", "p99"))
        + " |",
        "",
        "| deployment | replicas | mean batch size | replica utilisation | p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    deployments = serving.get("deployments") or {}
    for name, dep in deployments.items():
        dl = dep.get("latency_s") or {}
        util = ", ".join(f"{(num(u) or 0) * 100:.0f} %" for u in dep.get("replica_utilization", []))
        lines.append(
            f"| {name} | {dep.get('replicas')} | {num(dep.get('mean_batch_size')) or 0:.2f} | "
            f"{util} | {fmt_s(dl.get('p50'))} / {fmt_s(dl.get('p99'))} |"
        )
    lines.append("")
    hist = serving.get("batch_size_histogram") or {}
    if hist:
        fig, ax = plt.subplots(figsize=FIGSIZE)
        ax.bar([int(k) for k in hist], list(hist.values()))
        ax.set(title="Batch sizes", xlabel="requests in a batch", ylabel="batches")
        _save(fig, out / "serving_batches.png")
        lines += ["![Batch sizes](serving_batches.png)", ""]
    bars = [
        (f"{name}#{i}", (num(u) or 0) * 100)
        for name, dep in deployments.items()
        for i, u in enumerate(dep.get("replica_utilization", []))
    ]
    if bars:
        fig, ax = plt.subplots(figsize=FIGSIZE)
        ax.bar([b[0] for b in bars], [b[1] for b in bars])
        ax.set(title="Replica utilisation", xlabel="replica", ylabel="busy time (%)")
        ax.set_ylim(0, 100)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        _save(fig, out / "serving_utilization.png")
        lines += ["![Replica utilisation](serving_utilization.png)", ""]
    return lines
