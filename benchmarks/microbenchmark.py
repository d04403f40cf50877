"""Microbenchmark twinray's real mode against Ray, Dask and multiprocessing, like `ray microbenchmark`.

Run `python -m benchmarks.microbenchmark` (flags: `--systems`, `--quick`, `--smoke`,
`--repeat K`, `--num-cpus N`, `--json PATH`). The parent process runs each system in its own
subprocess (`--system NAME --json PATH`), one after another, `--repeat` rounds of them, and
prints one table of medians with `twinray/peer` ratios (>1 always means twinray is better).

The work is split by job: `benchmarks.systems` (one adapter per system), `benchmarks.rows`
(what each row measures, the run sizes), `benchmarks.runner` (a system in this process or
in a subprocess, rounds merged) and `benchmarks.table` (the printed table). This module is
the command line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.rowkit import Row
from benchmarks.rows import MODES, ROW_KEYS, ROWS, Params
from benchmarks.runner import _all_rows, _merge, _run_child, init_probe, run_system
from benchmarks.systems import PEER_MODULES, SYSTEMS
from benchmarks.table import render_table

__all__ = ["ROWS", "ROW_KEYS", "SYSTEMS", "Params", "Row", "main", "run_system"]


def _default_systems() -> list[str]:
    """twinray and multiprocessing, plus each peer that is importable."""
    peers = [n for n, m in PEER_MODULES.items() if importlib.util.find_spec(m) is not None]
    return ["twinray", *peers, "multiprocessing"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="twinray-microbenchmark",
        description="Microbenchmark twinray's real mode against Ray, Dask and multiprocessing.",
    )
    parser.add_argument("--systems", help="comma-separated: twinray,ray,dask,multiprocessing")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a run < 60 s)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: a correctness check")
    parser.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write all results (no PATH: stdout)"
    )
    parser.add_argument("--system", choices=sorted(SYSTEMS), help="run one system in-process")
    parser.add_argument("--init-probe", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.num_cpus < 1:
        parser.error("--repeat and --num-cpus must be at least 1")
    return args


def _write_json(path: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.microbenchmark` / `twinray-microbenchmark`."""
    args = _parse(argv)
    mode = args.mode or ("smoke" if args.smoke else "quick" if args.quick else "full")
    p = MODES[mode]
    if args.init_probe:
        print(f"INIT_MS {init_probe(args.init_probe, args.num_cpus)}", flush=True)
        return 0
    if args.system:
        result = run_system(args.system, args.num_cpus, p, args.repeat)
        if args.json:
            _write_json(args.json, result)
        else:
            print(render_table({args.system: result}, p, args.num_cpus, args.repeat))
        return 0

    names = args.systems.split(",") if args.systems else _default_systems()
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        print(f"unknown system(s): {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
        return 2
    load_before = os.getloadavg()
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(args.repeat):
        for name in names:
            module = PEER_MODULES.get(name)
            if module and importlib.util.find_spec(module) is None:
                rounds[name].append(_all_rows("n/a (not installed)", name, args.num_cpus, p))
                continue
            print(f"[{i + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            rounds[name].append(_run_child(name, args.num_cpus, p))
    results = {name: _merge(r) for name, r in rounds.items()}
    load_after = os.getloadavg()
    print(render_table(results, p, args.num_cpus, args.repeat))
    print(
        f"\nload average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}"
    )
    if args.json:
        _write_json(
            args.json,
            {
                "num_cpus": args.num_cpus,
                "mode": mode,
                "repeat": args.repeat,
                "params": asdict(p),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "systems": results,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
