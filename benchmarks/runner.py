"""Running the microbenchmark: one system's rows in this process, or each system in its own subprocess.

`run_system` runs every row group on one system here (the child's job); `_run_child` runs
``python -m benchmarks.microbenchmark --system NAME`` in a subprocess of its own (killed on
timeout) and reads back its JSON; `_merge` takes the median over rounds; `init_probe`
times ``init()`` in a fresh process.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.rowkit import Unsupported
from benchmarks.rows import ROW_GROUPS, ROW_KEYS, Params
from benchmarks.systems import SYSTEMS

__all__ = ["init_probe", "run_system"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _short(e: BaseException) -> str:
    """`error: <type>: <first line of the message>`, at most about 100 characters."""
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return "error: " + (text if len(text) <= 90 else text[:87] + "...")


def _cell(samples: list[Any], note: str) -> dict[str, Any]:
    """A row's JSON entry: the median of numeric samples, else the first n/a or error string."""
    numbers = [x for x in samples if isinstance(x, (int, float))]
    if numbers:
        failed = sum(1 for x in samples if isinstance(x, str) and x.startswith("error"))
        entry = {"value": statistics.median(numbers), "samples": samples, "note": note}
        return {**entry, "failed": failed} if failed else entry
    return {"value": samples[0] if samples else "error: not run", "samples": samples, "note": note}


def init_probe(name: str, num_cpus: int) -> float:
    """Milliseconds for `name`'s init in this (fresh) process, imports excluded; then stop."""
    system = SYSTEMS[name]()
    importlib.import_module(system.module)
    if name == "twinray":
        importlib.import_module("runtime.real.node")
    start = time.perf_counter()
    system.start(num_cpus)
    elapsed = time.perf_counter() - start
    system.stop()
    return elapsed * 1e3


def _run_init_probe(name: str, num_cpus: int, timeout: float) -> float:
    """Run `init_probe` in a fresh subprocess and return its milliseconds."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.microbenchmark", "--init-probe", name]
        + ["--num-cpus", str(num_cpus)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=_child_env(),
    )
    for line in out.stdout.splitlines():
        if line.startswith("INIT_MS "):
            return float(line.split()[1])
    tail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    raise RuntimeError(f"init probe failed: {tail}")


def run_system(name: str, num_cpus: int, p: Params, repeat: int = 1) -> dict[str, Any]:
    """Run every row on system `name` in this process, `repeat` times each; return the JSON dict."""
    system = SYSTEMS[name]()
    samples: dict[str, list[Any]] = {key: [] for key in ROW_KEYS}
    notes: dict[str, str] = {key: "" for key in ROW_KEYS}
    meta: dict[str, Any] = {"system": name, "num_cpus": num_cpus, "params": asdict(p)}
    try:
        meta["version"] = system.version()
    except Exception as e:
        meta["version"] = _short(e)
    try:
        system.start(num_cpus)
    except Exception as e:
        for key in ROW_KEYS:
            samples[key].append(_short(e))
        try:
            system.stop()
        except Exception:
            pass
        return {**meta, "rows": {key: _cell(samples[key], "") for key in ROW_KEYS}}
    try:
        for group, keys in ROW_GROUPS:
            for _ in range(repeat):
                try:
                    result = group(system, p, num_cpus)
                except Unsupported as e:
                    for key in keys:
                        samples[key].append(f"n/a ({e})" if str(e) else "n/a")
                    break
                except Exception as e:
                    for key in keys:
                        samples[key].append(_short(e))
                    continue
                for key, (value, note) in result.items():
                    samples[key].append(value)
                    notes[key] = note or notes[key]
    finally:
        system.stop()
    for _ in range(repeat):
        try:
            samples["init_ms"].append(_run_init_probe(name, num_cpus, 120.0))
        except Exception as e:
            samples["init_ms"].append(_short(e))
    return {**meta, "rows": {key: _cell(samples[key], notes[key]) for key in ROW_KEYS}}


# --- the parent: every system in its own subprocess, one table ----------------------------------


def _child_env() -> dict[str, str]:
    """The environment of a child: the repo root importable (Ray workers inherit it too)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def _all_rows(value: str, name: str, num_cpus: int, p: Params) -> dict[str, Any]:
    """A system's JSON dict with the same string in every row."""
    rows = {key: {"value": value, "samples": [value], "note": ""} for key in ROW_KEYS}
    return {"system": name, "num_cpus": num_cpus, "params": asdict(p), "rows": rows}


def _run_child(name: str, num_cpus: int, p: Params) -> dict[str, Any]:
    """Run `--system name` in a subprocess (its own session, killed on timeout); its JSON."""
    with tempfile.TemporaryDirectory(prefix="twinray-bench-") as tmp:
        out_path = Path(tmp) / "result.json"
        log_path = Path(tmp) / "stderr.log"
        cmd = [sys.executable, "-m", "benchmarks.microbenchmark", "--system", name]
        cmd += ["--num-cpus", str(num_cpus), "--mode", p.mode, "--json", str(out_path)]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=_child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=p.child_timeout)
            except BaseException as e:  # a timeout, or Ctrl-C in the parent: end the child
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if not isinstance(e, subprocess.TimeoutExpired):
                    raise
                return _all_rows(
                    f"error: timed out after {p.child_timeout:.0f} s", name, num_cpus, p
                )
        if proc.returncode != 0 or not out_path.exists():
            lines = log_path.read_text(errors="replace").strip().splitlines()
            tail = lines[-1][:80] if lines else ""
            return _all_rows(f"error: exit {proc.returncode}: {tail}", name, num_cpus, p)
        return json.loads(out_path.read_text())


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge one system's per-round JSON dicts: the median of every row's samples."""
    merged = dict(rounds[-1])
    rows: dict[str, Any] = {}
    for key in ROW_KEYS:
        entries = [r["rows"].get(key, {"value": "error: missing", "samples": []}) for r in rounds]
        samples = [x for e in entries for x in (e.get("samples") or [e["value"]])]
        note = next((e["note"] for e in reversed(entries) if e.get("note")), "")
        rows[key] = _cell(samples, note)
    merged["rows"] = rows
    return merged
