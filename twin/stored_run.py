"""A Ray run kept as a small labelled JSON, shown where Ray is not installed (the three-engines notebook).

`ray_or_stored` runs the scenario on a local Ray when Ray can be imported, and otherwise
reads the run stored at `STORED_RAY_RUN` (made on a machine with Ray by
``python -m twin.stored_run``), with a label saying which it is: when and where the
stored run was made, and with which Ray.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.scenario import Scenario, load_scenario
from twin.real_mode import Fit, fit_to_machine

ROOT = Path(__file__).resolve().parents[1]

STORED_RAY_RUN = ROOT / "reports" / "three_engines" / "ray_run.json"
"""The stored Ray run of `SCENARIO` with `OVERRIDES` (scaled down to 2 CPUs)."""

SCENARIO = ROOT / "scenarios" / "small_independent.yaml"
OVERRIDES = {"workload.tasks": "600"}
"""The three-engines notebook's scenario: 600 exponential 2 ms tasks, in seconds."""

CPUS = 2
"""The CPUs the scenario is scaled down to, here and where the stored run was made."""

SERIES_KEYS = (
    "throughput_tps",
    "makespan_s",
    "tasks",
    "latency_s",
    "queueing_s",
    "cpu_utilization",
    "throughput_series",
    "spilled_tasks",
    "bytes_transferred",
    "world",
)
"""What a stored run keeps of the metrics: what `twin.compare` tables and plots."""


class StoredRunError(ValueError):
    """The stored run is missing, unreadable or of another scenario (the text says which)."""


@dataclass
class RayRun:
    """A Ray run's metrics and the label that says where they come from."""

    metrics: dict[str, Any]
    label: str
    live: bool
    """True: run now on this machine's Ray; False: read from the stored JSON."""


def notebook_fit(cpus: int = CPUS) -> Fit:
    """The notebook's scenario scaled down to `cpus` CPUs of one node (as `--scale-down`)."""
    return fit_to_machine(load_scenario(SCENARIO, OVERRIDES), scale_down=True, cpus=cpus)


def ray_installed() -> bool:
    """Whether Ray can be imported here."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def ray_or_stored(fit: Fit, stored: str | Path = STORED_RAY_RUN) -> RayRun:
    """Run `fit`'s scenario on a local Ray if Ray is installed, else read the stored run."""
    if ray_installed():
        from twin.ray_mode import run_ray

        metrics = run_ray(fit.scenario, fit.cpus, resources=fit.resources)
        version = _ray_version()
        return RayRun(metrics, f"ray {version}, run live on this machine just now", True)
    record = load_stored(stored, fit.scenario)
    label = (
        f"Ray is not installed here (pip install 'twinray[peers]' to run it live): showing "
        f"the stored run of {record['ray_version']} made {record['date']} on "
        f"{record['machine']}"
    )
    return RayRun(record["metrics"], label, False)


def load_stored(path: str | Path, scenario: Scenario) -> dict[str, Any]:
    """The stored record at `path`, checked to be a run of `scenario` (`StoredRunError`)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StoredRunError(f"no stored Ray run at {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise StoredRunError(f"stored Ray run {path} is not valid JSON: {exc}") from None
    missing = [
        k for k in ("date", "machine", "ray_version", "scenario", "metrics") if k not in record
    ]
    if missing:
        raise StoredRunError(f"stored Ray run {path}: missing {', '.join(missing)}")
    if record["scenario"] != _describe(scenario):
        raise StoredRunError(
            f"stored Ray run {path} is of {record['scenario']!r}, not of "
            f"{_describe(scenario)!r}: make it again with python -m twin.stored_run"
        )
    return record


def store(metrics: dict[str, Any], scenario: Scenario, path: str | Path = STORED_RAY_RUN) -> Path:
    """Write a Ray run of `scenario` as a labelled record (date, machine, Ray version)."""
    record = {
        "what": "a run of the three-engines notebook's scenario on a local Ray "
        "(python -m twin.stored_run), shown where Ray is not installed",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "ray_version": f"ray {_ray_version()}",
        "scenario": _describe(scenario),
        "metrics": {k: metrics[k] for k in SERIES_KEYS if k in metrics},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return out


def _describe(scenario: Scenario) -> str:
    workload = scenario.workload
    return (
        f"{scenario.name} (seed {scenario.seed}): {workload.kind}, "
        f"{getattr(workload, 'tasks', '?')} tasks, "
        f"{scenario.cluster.nodes} node x {scenario.cluster.cpus_per_node} CPUs"
    )


def _machine() -> str:
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    return (
        f"{platform.node() or 'this machine'}: {cores} cores, {platform.platform(terse=True)}, "
        f"Python {platform.python_version()}, load average {load:.1f}"
        + (" (shared with other jobs)" if load > 0.5 * cores else "")
    )


def _ray_version() -> str:
    import ray

    return str(ray.__version__)


if __name__ == "__main__":
    from twin.ray_mode import run_ray

    fitted = notebook_fit()
    print(store(run_ray(fitted.scenario, fitted.cpus, resources=fitted.resources), fitted.scenario))
