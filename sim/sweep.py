"""Parameter sweeps: run one scenario at several values of fields, in parallel, into one table.

``run-scenario FILE --sweep cluster.nodes=10,20,50`` runs one simulation per point (the
cartesian product of several ``--sweep`` options), each in its own process (at most
``os.cpu_count()`` at a time), and writes ``reports/<name>/sweep.md`` and ``sweep.csv``
with one row per point: the swept values, then the headline metrics.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sim.scenario import ScenarioError, load_scenario

COLUMNS: tuple[tuple[str, str], ...] = (
    ("tasks", "tasks"),
    ("makespan_s", "makespan_s"),
    ("throughput_tps", "throughput_tps"),
    ("latency_p50_s", "latency_s.p50"),
    ("latency_p99_s", "latency_s.p99"),
    ("queue_mean_s", "queue_s.mean"),
    ("cpu_utilization", "cpu_utilization"),
    ("spilled_tasks", "spilled_tasks"),
    ("messages", "messages"),
    ("gcs_backlog_max", "queues.gcs"),
    ("scheduler_backlog_max", "queues.global_scheduler"),
    ("bytes_transferred", "bytes_transferred"),
    ("recovery_s", "recovery.recovery_s"),
)
"""(column name, dotted path in metrics.json) of the sweep table (a series: its maximum)."""

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "scenarios" / "scenario.schema.json"
"""Where `run-scenario --schema` writes the JSON Schema of scenario files."""


def parse_sweeps(items: Sequence[str], source: str) -> dict[str, list[str]]:
    """`PATH=V1,V2,...` options -> {path: [values]}; raise ScenarioError when malformed."""
    sweeps: dict[str, list[str]] = {}
    for item in items:
        path, sep, values = item.partition("=")
        points = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not path.strip() or not points:
            raise ScenarioError([f"{source}: --sweep {item}: expected PATH=V1,V2,..."])
        sweeps[path.strip()] = points
    return sweeps


def points(sweeps: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """The cartesian product of the swept values, in the order given."""
    keys = list(sweeps)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweeps[k] for k in keys))]


def _get(metrics: Mapping[str, Any], dotted: str) -> Any:
    node: Any = metrics
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _run_point(args: tuple[str, dict[str, str], dict[str, str]]) -> dict[str, Any]:
    """Run one point in a worker process; return its row (metrics paths flattened)."""
    from sim.runner import SimulationStalled, run_scenario

    file, overrides, point = args
    scenario = load_scenario(file, {**overrides, **point, "output.progress": "false"})
    row: dict[str, Any] = dict(point)
    try:
        metrics = run_scenario(scenario)
    except SimulationStalled as exc:
        row["error"] = str(exc)
        return row
    for column, dotted in COLUMNS:
        value = _get(metrics, dotted)
        row[column] = max(value, default=0) if isinstance(value, list) else value
    return row


def run_sweep(
    file: str | Path,
    overrides: Mapping[str, str],
    sweeps: Mapping[str, list[str]],
    processes: int | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Validate every point first, run them in parallel; write sweep.md/.csv; return rows, dir.

    A bad value fails before anything runs, naming the point, the field and what was
    expected.
    """
    grid = points(sweeps)
    scenario = None
    for point in grid:
        scenario = load_scenario(file, {**overrides, **point})
    assert scenario is not None
    workers = max(1, min(processes or os.cpu_count() or 1, len(grid)))
    jobs = [(str(file), dict(overrides), point) for point in grid]
    if workers == 1:
        rows = [_run_point(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_run_point, jobs))
    out_dir = Path(scenario.output.report_dir) / scenario.name
    write_table(rows, list(sweeps), out_dir)
    return rows, out_dir


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_table(rows: list[dict[str, Any]], keys: list[str], out_dir: Path) -> None:
    """Write `sweep.md` (table + scaling plots) and `sweep.csv` (keys, COLUMNS, `error`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = keys + [c for c, _ in COLUMNS]
    if any("error" in r for r in rows):
        header.append("error")
    with open(out_dir / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row.get(h)) for h in header])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row.get(h)) for h in header) + " |" for row in rows]
    from sim.report import plot_sweep  # matplotlib only once the sweep has run

    plots = plot_sweep([r for r in rows if "error" not in r], keys, out_dir)
    if plots:
        lines += ["", "## Scaling plots", "", *plots]
    (out_dir / "sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def schema_text() -> str:
    """The JSON Schema of scenario files, as written to SCHEMA_PATH (stable text)."""
    from sim.scenario import scenario_json_schema

    return json.dumps(scenario_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write the scenario JSON Schema to `path`; return it."""
    path.write_text(schema_text(), encoding="utf-8")
    return path
