"""Run a scenario's workload on real Ray (`run-scenario --mode ray`), in the sim's metrics schema.

The third engine of the workload programs (`sim.programs`): `twin.real_workloads.RealDriver`
drives them through Ray's public API only (remote functions and actors, `ray.wait`,
`ray.get`, placement groups, `ray.timeline`), on a local Ray started for the run
(``address="local"``: an outside cluster is never picked up by accident) or on an existing
cluster (`address`). Execution spans come from Ray's timeline, so queueing and busy time
are measured as in twinray's real mode; Ray exposes no per-cause wait clock, so the wait
breakdown is empty. Ray is optional (the ``peers`` extra): without it `RayUnavailable`
says how to install it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from sim.scenario import RLWorkload, Scenario
from twin.real_workloads import RUNNERS, RealDriver, work

RAY_INSTALL = "pip install 'twinray[peers]' (or pip install ray)"
"""How to get Ray, for `RayUnavailable`."""

STORE_CAP_BYTES = 1 << 30
"""Ray's object store: the scenario's, capped at 1 GiB (as in twinray's real mode)..."""

STORE_MIN_BYTES = 80 * 2**20
"""...and at least Ray's minimum (75 MiB)."""

WARMUP_TASKS = 8


class RayUnavailable(RuntimeError):
    """`--mode ray` was asked for, but Ray cannot be imported here."""


class RayModeRefused(ValueError):
    """The scenario's workload has no Ray engine (the message says which and why)."""


def import_ray() -> ModuleType:
    """The `ray` module, or `RayUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            f"--mode ray needs Ray, which is not installed: {RAY_INSTALL}"
        ) from exc
    return ray


def _init(
    ray: ModuleType, cpus: int, store: int, resources: dict[str, float], address: str | None
) -> None:
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        ray.init(
            address="local",
            num_cpus=cpus,
            object_store_memory=store,
            resources=dict(resources),
            **quiet,
        )
    else:
        ray.init(address=address, **quiet)


def cluster_cpus(address: str) -> int:
    """The CPUs of the Ray cluster at `address` (connects, reads, disconnects)."""
    ray = import_ray()
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        return int(ray.cluster_resources().get("CPU", 0))
    finally:
        ray.shutdown()


def run_ray(
    scenario: Scenario,
    cpus: int,
    trace: str | Path | None = None,
    resources: dict[str, float] | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Run the (fitting) scenario's workload on Ray; return the metrics dict (``world: ray``).

    Starts a local Ray of `cpus` CPUs (and `resources`) unless `address` names a running
    cluster, and shuts the connection down after the run.
    """
    _runner(scenario)  # refuses before Ray is started
    with RaySession(cpus, _store_bytes(scenario), resources, address) as session:
        return session.run(scenario, trace)


def _runner(scenario: Scenario) -> Any:
    """The workload's runner (`twin.real_workloads.RUNNERS`), or `RayModeRefused`."""
    workload = scenario.workload
    if isinstance(workload, RLWorkload) and workload.from_rllib is not None:
        raise RayModeRefused(
            "rl workloads with from_rllib train twinray's runtime.rllib; on Ray run the same "
            "config with ray.rllib directly (--mode ray runs the task-level rl workloads)"
        )
    run = RUNNERS.get(workload.kind)
    if run is None:
        raise RayModeRefused(f"--mode ray does not support workload {workload.kind!r}")
    return run


def _store_bytes(scenario: Scenario) -> int:
    """The object store Ray gets for `scenario`: its own, within Ray's bounds."""
    store = int(scenario.cluster.object_store_mb * 2**20)
    return max(STORE_MIN_BYTES, min(store, STORE_CAP_BYTES))


class RaySession:
    """One Ray, started (or connected to) once, for one or several runs of workloads.

    `run_ray` uses one per run; calibration (`twin.calibrate`) runs all its probes and
    scenarios in one, since starting a local Ray takes seconds. A context manager: Ray
    is shut down (the connection closed) on exit.
    """

    def __init__(
        self,
        cpus: int,
        store: int = STORE_MIN_BYTES,
        resources: dict[str, float] | None = None,
        address: str | None = None,
    ) -> None:
        """A session of `cpus` CPUs and a `store`-byte object store (not started yet)."""
        self.cpus = cpus
        self.store = store
        self.resources = dict(resources or {})
        self.address = address
        self.ray: Any = None

    def __enter__(self) -> RaySession:
        """Start the local Ray (or connect); `RayUnavailable` where Ray is not installed."""
        ray = import_ray()
        if ray.is_initialized():
            raise RuntimeError("run_ray starts its own Ray: call ray.shutdown() first")
        _init(ray, self.cpus, self.store, self.resources, self.address)
        self.ray = ray
        return self

    def __exit__(self, *exc: object) -> None:
        """Shut Ray down."""
        self.ray.shutdown()

    def run(
        self, scenario: Scenario, trace: str | Path | None = None, spans: bool = True
    ) -> dict[str, Any]:
        """Run the (fitting) scenario's workload; its metrics dict (``world: ray``).

        `spans=False` skips reading Ray's timeline (a second or more per run): the
        metrics then have throughput and latency but no queueing or busy time.
        """
        from twin.real_mode import engine_metrics

        ray, cpus = self.ray, self.cpus
        workload = scenario.workload
        run = _runner(scenario)
        warm = ray.remote(work)
        ray.get([warm.remote(0.0, 0) for _ in range(max(WARMUP_TASKS, 2 * cpus))])
        driver = RayDriver(ray, scenario)  # after the warm-up: its groups reserve CPUs
        driver.t0 = time.monotonic()
        wall0 = time.time()
        run(driver, workload)
        if spans or trace is not None:
            events = _timeline(ray, driver)
            record_timeline(driver, events, wall0)
            if trace is not None:
                Path(trace).parent.mkdir(parents=True, exist_ok=True)
                Path(trace).write_text(json.dumps(events), encoding="utf-8")
        groups = ray_placement_groups(ray) if driver.strategies else None
        metrics = engine_metrics(driver, cpus, "ray", groups)
        metrics["wait_breakdown"] = {}
        return metrics


TIMELINE_WAIT_S = 30.0
"""Seconds to wait for Ray's task events of the run to reach its timeline."""


def _timeline(ray: ModuleType, driver: RayDriver) -> list[dict[str, Any]]:
    """Ray's timeline once it shows every task of the run, or stops growing.

    Task events reach the timeline in batches, so it is read until it has an execution
    per task, no new executions came since the last read, or `TIMELINE_WAIT_S` passed.
    """
    expected = len(driver.task_names)
    deadline = time.monotonic() + TIMELINE_WAIT_S
    seen = -1
    while True:
        events = ray.timeline()  # waits a second itself for events in flight
        found = len(_executions(events))
        if found >= expected or found == seen or time.monotonic() > deadline:
            return events
        seen = found


def _executions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline's task runs: ``task::<name>`` events (argument fetch, body, outputs)."""
    return [
        e
        for e in events
        if str(e.get("cat", "")).startswith("task::")
        and isinstance(e.get("args"), dict)
        and e["args"].get("task_id")
    ]


class RayDriver(RealDriver):
    """`RealDriver` noting each task's Ray task id, to find its execution in the timeline."""

    def __init__(self, ray: Any, scenario: Scenario) -> None:
        """As `RealDriver`."""
        super().__init__(ray, scenario)
        self.task_names: dict[str, str] = {}
        """Ray task id (hex) -> the driver's name of the task."""

    def _returns(self, name: str, tag: Any, refs: Any, sizes: tuple[int, ...]) -> list[Any]:
        out = super()._returns(name, tag, refs, sizes)
        self.task_names[out[0].task_id().hex()] = name
        return out


def record_timeline(driver: RayDriver, events: list[dict[str, Any]], wall0: float) -> None:
    """Execution start/end of each task from Ray's timeline (queueing, busy time).

    `wall0` is `time.time()` at ``driver.t0``: timeline times are wall-clock microseconds.
    """
    offset = driver.t0 - wall0  # wall clock -> the driver's monotonic clock
    for e in _executions(events):
        name = driver.task_names.get(str(e["args"]["task_id"]))
        if name is not None:
            start = e["ts"] * 1e-6 + offset
            driver._span(name, start, start + e.get("dur", 0) * 1e-6)


def ray_placement_groups(ray: ModuleType) -> list[dict[str, Any]]:
    """Ray's placement-group table in the simulator's metrics shape (nodes by index)."""
    index = {n["NodeID"]: i for i, n in enumerate(ray.nodes())}
    rows = []
    for row in ray.util.placement_group_table().values():
        nodes = [index.get(n, -1) for _, n in sorted(row["bundles_to_node_id"].items())]
        rows.append(
            {
                "id": row["placement_group_id"],
                "strategy": row["strategy"],
                "state": row["state"],
                "bundle_nodes": nodes,
                "reason": (row.get("stats") or {}).get("scheduling_state", ""),
            }
        )
    return rows
