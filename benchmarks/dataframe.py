"""Dataframes on a CSV of about 1 GB: read_csv, groupby-aggregate, merge, sort by pandas, twinray, Modin, Dask.

Each system runs in its own subprocess on the same file, with the same CPU count, and
reports seconds per step plus a checksum of each result (the parent checks they agree):

    python3 -m benchmarks.dataframe                       # ~1 GB file, every system installed
    python3 -m benchmarks.dataframe --size-mb 50 --systems pandas,twinray   # a smoke run

Modin 0.37.1 needs pandas < 2.4 and this project runs pandas 3, so Modin usually lives in
its own environment: `--python modin=/path/to/venv/bin/python` (same for `dask=`); a system
whose packages are missing is skipped with a message. Runtime start-up (twinray's and Ray's
workers) is outside the timings; each step's result is materialised (Modin's and twinray's
`execute`, Dask's `persist`) before its clock stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SYSTEMS = ("pandas", "twinray", "modin", "dask")
ROWS_PER_MB = 26_000  # rows of the generated schema per MB of CSV (measured)


def generate(path: Path, size_mb: int, seed: int = 0) -> None:
    """Write a CSV of about `size_mb` MB: id, key (1000 values), cat (100 strings), x, y, z."""
    import numpy as np
    import pandas

    rng = np.random.default_rng(seed)
    rows = max(1000, size_mb * ROWS_PER_MB)
    chunk = 500_000
    tmp = path.with_suffix(".part")
    with open(tmp, "w") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            frame = pandas.DataFrame(
                {
                    "id": np.arange(start, start + n),
                    "key": rng.integers(0, 1000, n),
                    "cat": np.char.add("c", rng.integers(0, 100, n).astype(str)),
                    "x": rng.normal(size=n).round(6),
                    "y": rng.random(n).round(6),
                    "z": rng.integers(0, 10_000, n),
                }
            )
            frame.to_csv(f, index=False, header=start == 0)
    tmp.rename(path)


def _dimension(pandas: Any) -> Any:
    """The small side of the merge: one row per key."""
    import numpy as np

    keys = np.arange(1000)
    return pandas.DataFrame({"key": keys, "weight": keys * 0.5, "label": [f"k{k}" for k in keys]})


def _steps(system: str, csv: str, cpus: int) -> dict[str, Any]:
    """Time each step for one system (run in a fresh process)."""
    if system == "pandas":
        import pandas as pd

        def done(df: Any) -> Any:
            return df

    elif system == "twinray":
        import runtime
        import runtime.dataframe as pd

        runtime.init(
            num_cpus=cpus, object_store_memory=int(os.environ.get("DF_BENCH_STORE", 8 << 30))
        )

        @runtime.remote
        def warm() -> int:
            import pandas  # noqa: F401

            return 0

        runtime.get([warm.remote() for _ in range(cpus * 2)])

        def done(df: Any) -> Any:
            pd.execute(df)
            return df

    elif system == "modin":
        import modin.config
        import modin.pandas as pd
        import ray
        from modin.utils import execute

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        modin.config.Engine.put("ray")
        modin.config.NPartitions.put(cpus)
        pd.DataFrame({"a": [1]}).sum()  # starts Modin's workers

        def done(df: Any) -> Any:
            execute(df)
            return df

    elif system == "dask":
        import dask
        import dask.dataframe as pd

        dask.config.set(scheduler="threads", num_workers=cpus)

        def done(df: Any) -> Any:
            return df.persist()

    else:
        raise SystemExit(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")

    import pandas

    times: dict[str, float] = {}
    checks: dict[str, Any] = {}
    t = time.perf_counter()
    df = done(pd.read_csv(csv))
    times["read_csv"] = time.perf_counter() - t
    checks["rows"] = int(len(df))

    t = time.perf_counter()
    grouped = df.groupby("key").agg({"x": "sum", "y": "mean", "z": "max"})
    grouped = grouped.compute() if system == "dask" else grouped
    grouped = grouped._to_pandas() if hasattr(grouped, "_to_pandas") else grouped
    times["groupby"] = time.perf_counter() - t
    checks["groupby"] = [len(grouped), round(float(grouped["x"].sum()), 3), int(grouped["z"].max())]

    dim = _dimension(pandas)
    t = time.perf_counter()
    merged = done(df.merge(dim if system in ("pandas", "dask") else pd.DataFrame(dim), on="key"))
    times["merge"] = time.perf_counter() - t
    checks["merge"] = int(len(merged))
    del merged

    t = time.perf_counter()
    ordered = done(df.sort_values("x"))
    times["sort"] = time.perf_counter() - t
    head = ordered.head(3)  # dask computes head itself
    checks["sort"] = [
        round(float(v), 6)
        for v in (head._to_pandas() if hasattr(head, "_to_pandas") else head)["x"]
    ]
    return {"times": times, "checks": checks}


def _run_system(system: str, csv: Path, cpus: int, python: str) -> dict[str, Any] | str:
    """The figures of one system from a subprocess, or why it was skipped."""
    probe = {
        "pandas": "pandas",
        "twinray": "runtime.dataframe",
        "modin": "modin.pandas",
        "dask": "dask.dataframe",
    }[system]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    ok = subprocess.run([python, "-c", f"import {probe}"], env=env, capture_output=True, text=True)
    if ok.returncode:
        last = (ok.stderr.strip().splitlines() or ["not importable"])[-1]
        return f"skipped: `import {probe}` fails with {python} ({last})"
    cmd = [
        python,
        "-m",
        "benchmarks.dataframe",
        "--worker",
        system,
        "--csv",
        str(csv),
        "--cpus",
        str(cpus),
    ]
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    if done.returncode:
        return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) the CSV, run each system, print times and ratios to pandas."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="CSV size (default 1024 MB)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--csv", help="use this CSV instead of generating one")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="SYSTEM=PATH",
        help="interpreter for a system (e.g. modin=/venv/bin/python)",
    )
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_steps(args.worker, args.csv, args.cpus)))
        return 0
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    pythons = dict(item.split("=", 1) for item in args.python)
    if args.csv:
        csv = Path(args.csv)
    else:
        csv = Path(tempfile.gettempdir()) / f"twinray_df_bench_{args.size_mb}mb.csv"
        if not csv.exists():
            print(f"generating {csv} ({args.size_mb} MB) ...", flush=True)
            generate(csv, args.size_mb)
    size = csv.stat().st_size / 1e6
    print(f"{csv.name}: {size:.0f} MB, {args.cpus} CPUs")
    results: dict[str, Any] = {}
    for system in systems:
        results[system] = _run_system(system, csv, args.cpus, pythons.get(system, sys.executable))
        if isinstance(results[system], str):
            print(f"{system}: {results[system]}")
    _print_table(results)
    figures = {s: r for s, r in results.items() if isinstance(r, dict)}
    checks = {json.dumps(r["checks"], sort_keys=True) for r in figures.values()}
    agree = len(checks) <= 1
    print(
        "results agree across systems"
        if agree
        else "RESULTS DIFFER: " + "; ".join(f"{s}: {r['checks']}" for s, r in figures.items())
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"csv_mb": size, "cpus": args.cpus, "figures": results, "agree": agree}, indent=2
            )
        )
    return 0 if agree else 1


def _print_table(results: dict[str, Any]) -> None:
    steps = ["read_csv", "groupby", "merge", "sort"]
    base = results.get("pandas")
    print(f"{'system':<10}" + "".join(f"{s:>20}" for s in steps))
    for system, r in results.items():
        if not isinstance(r, dict):
            continue
        cells = []
        for s in steps:
            sec = r["times"][s]
            ratio = f" ({base['times'][s] / sec:.2f}x)" if isinstance(base, dict) else ""
            cells.append(f"{sec:.2f}s{ratio}")
        print(f"{system:<10}" + "".join(f"{c:>20}" for c in cells))
    print("(x: speed-up over pandas alone; above 1 is faster)")


if __name__ == "__main__":
    raise SystemExit(main())
