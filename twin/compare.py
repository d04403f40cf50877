"""`run-scenario --compare sim,real,ray`: one scenario on two or three engines, side by side.

Generalises ``--mode both``: the scenario is fitted to this machine once (as real mode
does), run on each engine named (the simulator, twinray's real mode, real Ray), and
reported per engine under ``reports/<name>/<engine>/`` plus one ``comparison.md`` (and
``report.md``) with a table of each metric per engine and the relative differences of
every engine to the last one named, and one set of plots with a line or bar per engine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sim.metrics import write_json
from sim.report import (
    COMPARED,
    RL_COMPARED,
    metric_at,
    plot_engines,
    relative_difference,
    write_report,
)
from sim.scenario import Scenario

ENGINES = ("sim", "real", "ray")
"""The engines `--compare` knows."""


class CompareError(ValueError):
    """A `--compare` list that does not name two or three distinct known engines."""


def parse_engines(text: str) -> list[str]:
    """`sim,real,ray` (any two or three, any order) as a list; `CompareError` otherwise."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in ENGINES]
    if unknown:
        raise CompareError(
            f"--compare: unknown engine(s) {', '.join(unknown)}; known: sim, real, ray"
        )
    if len(set(names)) != len(names) or not 2 <= len(names) <= 3:
        raise CompareError(f"--compare: expected two or three distinct engines, got {text!r}")
    return names


def rows(
    runs: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, list[float | None], list[float | None]]]:
    """(label, value per engine, relative difference of each engine but the last to the last)."""
    out = []
    reference = list(runs.values())[-1]
    for path, label in (*COMPARED, *RL_COMPARED):
        values = [metric_at(m, path) for m in runs.values()]
        if (path, label) in RL_COMPARED and all(v is None for v in values):
            continue
        ref = metric_at(reference, path)
        diffs = [relative_difference(v, ref) for v in values[:-1]]
        out.append((label, values, diffs))
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def table_lines(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A plain-text table: each metric per engine, then each engine's difference to the last."""
    names = list(runs)
    ref = names[-1]
    head = [
        f"{'metric':<22}",
        *(f"{n:>14}" for n in names),
        *(f"{n + ' vs ' + ref:>14}" for n in names[:-1]),
    ]
    lines = [" ".join(head)]
    for label, values, diffs in rows(runs):
        cells = [
            f"{label:<22}",
            *(f"{_fmt(v):>14}" for v in values),
            *(f"{_pct(d):>14}" for d in diffs),
        ]
        lines.append(" ".join(cells))
    return lines


def write_engines_comparison(
    runs: Mapping[str, Mapping[str, Any]], out_dir: Path, title: str
) -> Path:
    """Write `out_dir/comparison.md`: the table and the plots of every engine; its path."""
    names = list(runs)
    ref = names[-1]
    pictures = plot_engines(runs, out_dir)
    header = ["metric", *names, *(f"{n} vs {ref}" for n in names[:-1])]
    lines = [
        f"# {title}: {' beside '.join(names)}",
        "",
        f"Relative difference is (engine - {ref}) / {ref}: positive means the engine's value is higher.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for label, values, diffs in rows(runs):
        lines.append("| " + " | ".join([label, *map(_fmt, values), *map(_pct, diffs)]) + " |")
    lines.append("")
    for name in pictures:
        lines += [f"![{name[:-4].replace('_', ' ')}]({name})", ""]
    path = out_dir / "comparison.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def run_compare(
    scenario: Scenario,
    engines: Sequence[str],
    scale_down: bool = False,
    *,
    cpus: int | None = None,
    simulate: Callable[[Scenario], dict[str, Any]] | None = None,
    address: str | None = None,
) -> int:
    """Run `scenario` on each of `engines`, print and write the comparison; the exit code."""
    from twin.real_mode import RealModeRefused, _print, _sim, fit_to_machine, run_real

    try:
        if "ray" in engines:
            from twin.ray_mode import cluster_cpus, import_ray

            import_ray()
            if address is not None:
                cpus = cluster_cpus(address)
        fit = fit_to_machine(scenario, scale_down, cpus)
    except (RealModeRefused, RuntimeError) as exc:
        print(f"run-scenario: cannot compare: {exc}", file=sys.stderr)
        return 2
    if fit.note:
        _print(f"note                {fit.note}")
    base = Path(scenario.output.report_dir) / scenario.name
    intro = " ".join(x for x in (scenario.description, fit.note and f"Real mode: {fit.note}.") if x)
    runs: dict[str, dict[str, Any]] = {}
    for engine in engines:
        trace = base / engine / "trace.json"
        if engine == "sim":
            metrics = (simulate or _sim)(fit.scenario)
        elif engine == "real":
            metrics = run_real(fit.scenario, fit.cpus, trace, fit.resources)
        else:
            from twin.ray_mode import RayModeRefused, run_ray

            try:
                metrics = run_ray(fit.scenario, fit.cpus, trace, fit.resources, address)
            except RayModeRefused as exc:
                print(f"run-scenario: cannot compare: {exc}", file=sys.stderr)
                return 2
        runs[engine] = metrics
        write_json(base / engine / "metrics.json", metrics)
        write_report(metrics, base / engine, f"{scenario.name} ({engine})", intro=intro)
    for line in table_lines(runs):
        _print(line)
    comparison = write_engines_comparison(runs, base, scenario.name)
    links = ", ".join(f"[{e}]({e}/report.md)" for e in engines)
    text = comparison.read_text(encoding="utf-8").rstrip()
    (base / "report.md").write_text(
        text + ("\n\n" + intro if intro else "") + f"\n\nPer-engine reports: {links}.\n",
        encoding="utf-8",
    )
    _print(f"comparison          {comparison}")
    return 0
