"""The microbenchmark's table: rows x systems, with a twinray/peer ratio after each peer."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from benchmarks.rowkit import HIGHER, LOWER, Row
from benchmarks.rows import ROWS, Params
from benchmarks.systems import DISPLAY_NAMES

__all__ = ["render_table"]


def _fmt(value: Any) -> str:
    """A figure with a sensible number of digits, or the string itself."""
    if not isinstance(value, (int, float)):
        return str(value)
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(row: Row, ours: Any, peer: Any) -> str:
    """twinray/peer for rate-like rows and peer/twinray for time-like ones (>1: twinray better)."""
    if not isinstance(ours, (int, float)) or not isinstance(peer, (int, float)):
        return "-"
    if ours <= 0 or peer <= 0:
        return "-"
    ratio = ours / peer if row.better == HIGHER else peer / ours
    return f"{ratio:.2f}x" if ratio < 100 else f"{ratio:,.0f}x"


def render_table(results: dict[str, dict[str, Any]], p: Params, num_cpus: int, repeat: int) -> str:
    """The table: rows x systems, with a twinray/peer ratio column after each peer."""
    names = list(results)
    header = ["metric", "unit"]
    for name in names:
        header.append(DISPLAY_NAMES.get(name, name))
        if name != "twinray" and "twinray" in results:
            header.append(f"vs {DISPLAY_NAMES.get(name, name)}")
    lines: list[list[str]] = []
    failures = False
    for row in ROWS:
        unit = row.unit + (" (lower=better)" if row.better == LOWER else "")
        line = [row.label.format(**asdict(p)), unit]
        ours = results.get("twinray", {}).get("rows", {}).get(row.key, {}).get("value")
        for name in names:
            entry = results[name]["rows"].get(row.key, {"value": "error: missing", "note": ""})
            cell = _fmt(entry["value"])
            if entry.get("note") and isinstance(entry["value"], (int, float)):
                cell += f" ({entry['note']})"
            if entry.get("failed"):
                cell += f" [{entry['failed']} failed]"
                failures = True
            line.append(cell)
            if name != "twinray" and "twinray" in results:
                line.append(_ratio(row, ours, entry["value"]))
        lines.append(line)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt_line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [
            c.rjust(w) if i != 0 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells[1:], widths[1:]))
        ]
        return " | ".join([first, *rest])

    versions = ", ".join(f"{n} {results[n].get('version', '?')}" for n in names)
    title = [
        f"twinray microbenchmark: num_cpus={num_cpus}, mode={p.mode}, median of {repeat} round(s)",
        f"systems: {versions}",
        "'vs <peer>' = how many times better twinray is: twinray/peer for rates, "
        "peer/twinray for time-like rows (lower=better); >1 always means twinray is better.",
    ]
    rule = "-+-".join("-" * w for w in widths)
    footer = (
        ["", "[k failed]: k samples of that cell were errors (see the JSON)"] if failures else []
    )
    return "\n".join(title + ["", fmt_line(header), rule] + [fmt_line(r) for r in lines] + footer)
