"""One workload, three engines: the simulator, twinray's real mode and Ray draw the same tasks.

Each engine runs the workload programs of `sim.programs`; a recording engine notes every
intent (task, actor creation, actor call: its function, duration, sizes and which earlier
outputs it reads). For the same scenario and seed, the simulator and twinray's real mode
(and real Ray, when it is installed and ``TWINRAY_COMPAT_RAY=1``, as for the compat tests)
must draw the same durations and sizes in the same order and build the same graph. Where
an engine's timing decides which chain or actor gets the next draw (chains, actors), the
draw sequence must still match and the graph is compared up to that assignment.

The serving workload (`sim.serving_program`) is compared the same way: every engine sends
the same requests (arrival offset, deployment) and costs each deployment's k-th batch
with the same draw; how many batches there are is each engine's timing.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sim.runner
from sim.scenario import Scenario, load_scenario
from sim.sim_engine import SimEngine
from twin.real_mode import fit_to_machine
from twin.real_workloads import RealDriver, run_program

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"

CASES: dict[str, tuple[str, dict[str, str]]] = {
    "independent": ("small_independent.yaml", {"workload.tasks": "30", "workload.window": "4"}),
    "chain": ("chain.yaml", {"workload.chains": "3", "workload.length": "4"}),
    "tree": ("tree.yaml", {"workload.trees": "2", "workload.leaves": "5"}),
    "shuffle": ("shuffle.yaml", {"workload.rounds": "1", "workload.maps": "3"}),
    "graph": ("graph.yaml", {"workload.repeats": "2"}),
    "actors": ("actors.yaml", {"workload.actors": "2", "workload.calls": "4"}),
    "rl": ("rl.yaml", {"workload.iterations": "2", "workload.rollout_actors": "2"}),
    "parameter_server": ("parameter_server.yaml", {"workload.iterations": "2"}),
    "allreduce": (
        "ray_paper/allreduce.yaml",
        {"workload.actors": "2", "workload.bytes": "4096", "workload.chunks": "2"},
    ),
}
"""Workload kind -> a shipped scenario and overrides that make it small."""

ORDER_BY_TIMING = {"chain", "actors"}
"""Kinds whose next draw goes to whichever chain or actor finished first."""

CPUS = 2

Intent = tuple[str, str, float, tuple[int, ...], tuple[tuple[int, int], ...]]
"""(what, function, duration, sizes, (intent index, return index) of each argument)."""


class Recording:
    """What a recording engine noted: intents in order, and each handle's origin."""

    def __init__(self) -> None:
        self.intents: list[Intent] = []
        self.origin: dict[Any, tuple[int, int]] = {}

    def note(
        self, what: str, function: str, duration: float, sizes: tuple, args: tuple, returns: tuple
    ) -> tuple:
        """Note one intent and where its returns came from; pass the returns through."""
        n = len(self.intents)
        self.intents.append(
            (what, function, duration, tuple(sizes), tuple(self.origin[a] for a in args))
        )
        for r, handle in enumerate(returns):
            self.origin[handle] = (n, r)
        return returns


def _recording_class(base: type, recording: Recording) -> type:
    """`base` (an engine) with its submissions and actor calls noted in `recording`."""

    class Recorded(base):  # type: ignore[misc, valid-type]
        def submit(self, tag, function, duration_s, sizes, args, now, out, *rest, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            returns = super().submit(tag, function, duration_s, sizes, args, now, out, *rest, **kw)
            return recording.note("task", function, duration_s, sizes, args, returns)

        def call(self, tag, actor, name, duration_s, sizes, args, now, out, *rest):  # noqa: ANN001, ANN002, ANN202
            returns = super().call(tag, actor, name, duration_s, sizes, args, now, out, *rest)
            return recording.note("call", name, duration_s, sizes, args, returns)

    return Recorded


def small(kind: str) -> Scenario:
    """The kind's small scenario as real mode runs it (scaled down to `CPUS` CPUs, one driver)."""
    file, overrides = CASES[kind]
    scenario = load_scenario(SCENARIOS / file, overrides)
    return fit_to_machine(scenario, scale_down=True, cpus=CPUS).scenario


def simulated(kind: str, monkeypatch: pytest.MonkeyPatch) -> Recording:
    """The intents of the simulated run."""
    recording = Recording()
    monkeypatch.setattr(sim.runner, "SimEngine", _recording_class(SimEngine, recording))
    metrics = sim.runner.run_scenario(small(kind))
    assert metrics["tasks"] == len(recording.intents)
    return recording


def ran(kind: str, ray: ModuleType) -> Recording:
    """The intents of a run on `ray` (twinray's `runtime` or Ray), initialised already."""
    recording = Recording()
    scenario = small(kind)
    driver = _recording_class(RealDriver, recording)(ray, scenario)
    driver.t0 = time.monotonic()
    run_program(driver, scenario.workload)
    assert driver.metrics.summary(1.0, CPUS)["tasks"] == len(recording.intents)
    del driver
    gc.collect()  # the program's actors (bound methods make cycles) go before the next run
    return recording


def canonical(kind: str, recording: Recording) -> Any:
    """What must agree between engines: everything, or the draws and the graph's shape."""
    if kind not in ORDER_BY_TIMING:
        return recording.intents
    draws = [(what, fn, d, sizes) for what, fn, d, sizes, _ in recording.intents]
    readers = Counter(origin for *_, args in recording.intents for origin in args)
    shape = sorted(Counter(len(args) for *_, args in recording.intents).items())
    return draws, shape, sorted(readers.values())


@pytest.fixture(scope="module")
def twinray() -> Iterator[ModuleType]:
    """twinray's runtime with `CPUS` CPUs, one for the module."""
    import runtime

    runtime.init(num_cpus=CPUS)
    yield runtime
    runtime.shutdown()


@pytest.fixture(scope="module")
def real_ray() -> Iterator[ModuleType]:
    """A local Ray with `CPUS` CPUs (only with ``TWINRAY_COMPAT_RAY=1`` and Ray installed)."""
    if os.environ.get("TWINRAY_COMPAT_RAY", "0") != "1":
        pytest.skip("real-Ray variant: set TWINRAY_COMPAT_RAY=1 to run it")
    ray = pytest.importorskip("ray", reason="real Ray not installed (the peers extra)")
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_twinray_draws_what_the_simulator_draws(
    kind: str, twinray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = simulated(kind, monkeypatch)
    assert expected.intents, "the scenario ran no task"
    assert canonical(kind, ran(kind, twinray)) == canonical(kind, expected)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_ray_draws_what_the_simulator_draws(
    kind: str, real_ray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = simulated(kind, monkeypatch)
    assert canonical(kind, ran(kind, real_ray)) == canonical(kind, expected)


def test_a_graph_intent_reads_the_outputs_it_was_built_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    intents = simulated("shuffle", monkeypatch).intents
    starts = [i for i, x in enumerate(intents) if x[1] == "map0"]
    intents = intents[: starts[1] if len(starts) > 1 else None]  # the first copy
    maps = [i for i, x in enumerate(intents) if x[1].startswith("map")]
    reduces = [x for x in intents if x[1].startswith("reduce")]
    assert reduces and all(len(x[4]) == len(maps) for x in reduces)
    for j, x in enumerate(reduces):
        assert x[4] == tuple((m, j) for m in maps)  # reducer j reads output j of every map


def test_mode_ray_without_ray_says_how_to_install_it(
    without_ray: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from twin.cli import main

    file = str(SCENARIOS / "small_independent.yaml")
    assert main([file, "--mode", "ray", "--scale-down", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--mode ray needs Ray" in err and "pip install 'twinray[peers]'" in err
    serving = str(SCENARIOS / "serving_small.yaml")
    assert main([serving, "--mode", "ray", "--out", str(tmp_path)]) == 2  # Ray Serve too
    err = capsys.readouterr().err
    assert "--mode ray needs Ray" in err and "pip install 'twinray[peers]'" in err


def test_address_is_for_mode_ray_only(capsys: pytest.CaptureFixture[str]) -> None:
    from twin.cli import main

    with pytest.raises(SystemExit):
        main([str(SCENARIOS / "chain.yaml"), "--mode", "real", "--address", "auto"])
    assert "--address applies to --mode ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # Ray Serve runs on a Ray started for the run
        main([str(SCENARIOS / "serving_small.yaml"), "--mode", "ray", "--address", "auto"])
    assert "--address does not apply to serving scenarios" in capsys.readouterr().err


def test_compare_takes_two_or_three_distinct_known_engines() -> None:
    from twin.compare import CompareError, parse_engines

    assert parse_engines("sim, real,ray") == ["sim", "real", "ray"]
    assert parse_engines("ray,sim") == ["ray", "sim"]
    for bad, why in (("sim", "two or three"), ("sim,sim", "distinct"), ("sim,dask", "dask")):
        with pytest.raises(CompareError, match=why):
            parse_engines(bad)


def test_compare_tables_each_engine_and_its_difference_to_the_last(tmp_path: Path) -> None:
    from twin.compare import rows, table_lines, write_engines_comparison

    def run(tps: float) -> dict[str, Any]:
        return {
            "throughput_tps": tps,
            "latency_s": {"p50": tps / 1e6, "p99": tps / 1e5},
            "throughput_series": {"bin_s": 0.1, "counts": [tps / 10, tps / 10]},
        }

    runs = {"sim": run(110.0), "real": run(90.0), "ray": run(100.0)}
    by_label = {label: (values, diffs) for label, values, diffs in rows(runs)}
    values, diffs = next(v for k, v in by_label.items() if k.startswith("throughput"))
    assert values == [110.0, 90.0, 100.0]
    assert diffs == pytest.approx([0.1, -0.1])
    assert "sim vs ray" in table_lines(runs)[0] and "real vs ray" in table_lines(runs)[0]
    text = write_engines_comparison(runs, tmp_path, "demo").read_text(encoding="utf-8")
    assert "| sim | real | ray | sim vs ray | real vs ray |" in text
    assert "+10.0 %" in text and "-10.0 %" in text
    assert (tmp_path / "compare_throughput.png").exists()


def test_ray_timeline_executions_become_task_spans() -> None:
    from twin.ray_mode import RayDriver, record_timeline

    class FakeRay:
        """Just enough of a ray module for a driver that submits nothing."""

        __name__ = "fake_ray"

        @staticmethod
        def remote(fn: Any) -> Any:
            return fn

    driver = RayDriver(FakeRay, small("independent"))
    driver.t0, wall0 = 100.0, 1000.0  # the driver's clock is the wall clock - 900 s
    driver.submitted_at["t0"] = 100.5
    driver.task_names["ab12"] = "t0"
    run = {"ph": "X", "ts": 1000.75e6, "dur": 0.25e6}  # a task's run, as Ray reports it
    events = [
        {**run, "cat": "task::t0", "args": {"task_id": "ab12"}},
        {**run, "cat": "task::t9", "args": {"task_id": "other"}},  # not this driver's
        {**run, "cat": "task:execute", "args": {}},  # a phase of a run, not the run
    ]
    record_timeline(driver, events, wall0)
    assert driver.metrics.busy_s == pytest.approx(0.25)  # only t0's execution
    assert driver.metrics.started == 1


# --- the serving workload: requests and batch costs ----------------------------------------

SERVING: dict[str, Any] = {
    "name": "serving_engines",
    "seed": 4,
    "cluster": {"nodes": 1, "cpus_per_node": CPUS},
    "workload": {
        "kind": "serving",
        "requests": 24,
        "arrivals": {"process": "poisson", "rate_rps": 150},
        "deployments": [
            {  # several replicas and drawn costs: the replicas share the deployment's draws
                "name": "A",
                "num_replicas": 2,
                "num_cpus": 0,
                "max_batch_size": 4,
                "batch_wait_timeout_s": 0.004,
                "latency_fixed_ms": {"dist": "uniform", "low": 1, "high": 3},
                "latency_per_item_ms": {"dist": "exponential", "mean": 0.5},
                "weight": 2,
            },
            {  # one replica, no @serve.batch: it draws from its own copy of the stream
                "name": "B",
                "num_replicas": 1,
                "num_cpus": 0,
                "max_concurrent_batches": 2,
                "latency_fixed_ms": {"dist": "exponential", "mean": 2},
            },
        ],
    },
}
"""A small serving scenario covering both ways a replica gets its batch costs."""


class ServingIntents:
    """What a serving engine did: requests (offset, deployment) and each deployment's costs."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, int]] = []
        self.costs: dict[int, dict[int, tuple[float, float]]] = {}
        """Deployment -> batch number -> (fixed, per-item) ms."""


def simulated_serving(monkeypatch: pytest.MonkeyPatch) -> ServingIntents:
    """The requests the simulated proxy received and the costs its batches drew."""
    from sim.scenario import validate_scenario
    from sim.serving import ServingDriver

    intents = ServingIntents()

    class Recorded(ServingDriver):
        def _arrive(self) -> None:
            upcoming = self._next
            assert upcoming is not None
            intents.requests.append((upcoming.offset, upcoming.deployment))
            super()._arrive()

        def _launch(self, dep: Any, rep: Any, batches: list[Any], now: float) -> None:
            d = self.deployments.index(dep)
            draw = dep.cost.draw

            def noted() -> tuple[int, float, float]:
                k, fixed, per_item = draw()
                intents.costs.setdefault(d, {})[k] = (fixed, per_item)
                return k, fixed, per_item

            dep.cost.draw = noted
            try:
                super()._launch(dep, rep, batches, now)
            finally:
                dep.cost.draw = draw

    monkeypatch.setattr(sim.runner, "ServingDriver", Recorded)
    metrics = sim.runner.run_scenario(validate_scenario(SERVING))
    assert metrics["serving"]["completed"] == SERVING["workload"]["requests"]
    return intents


def served(ray: ModuleType, serve: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ServingIntents:
    """The requests a real run sent (`ray` initialised) and the costs its replicas drew."""
    import twin.real_serving
    from sim.scenario import validate_scenario

    intents = ServingIntents()
    load = twin.real_serving._load

    async def recorded(urls: list[str], offsets: list[float], pick: list[int]) -> Any:
        intents.requests = list(zip(offsets, pick, strict=True))
        return await load(urls, offsets, pick)

    monkeypatch.setattr(twin.real_serving, "_load", recorded)
    results = twin.real_serving.serve_program(ray, serve, validate_scenario(SERVING))
    assert sorted(r[3] for r in results) == [200] * SERVING["workload"]["requests"]
    for d, _, _, _, body in results:
        assert body is not None
        k, fixed, per_item = body["cost"]
        seen = intents.costs.setdefault(d, {}).setdefault(k, (fixed, per_item))
        assert seen == (fixed, per_item), "two batches took the same draw"
    return intents


def same_serving(real: ServingIntents, sim: ServingIntents) -> None:
    """The same requests; per deployment, batch k cost the same (fixed, per item)."""
    assert real.requests == sim.requests
    assert sorted(real.costs) == sorted(sim.costs) == [0, 1]  # both deployments served
    for d, costs in real.costs.items():
        assert sorted(costs) == list(range(len(costs)))  # every draw once, from the first
        common = min(len(costs), len(sim.costs[d]))
        assert common >= 1
        assert [costs[k] for k in range(common)] == [sim.costs[d][k] for k in range(common)]


def test_twinray_serves_the_requests_and_costs_the_simulator_draws(
    twinray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime import serve

    expected = simulated_serving(monkeypatch)
    assert len(expected.requests) == SERVING["workload"]["requests"]
    assert len({d for _, d in expected.requests}) == 2  # the requests were split
    same_serving(served(twinray, serve, monkeypatch), expected)


def test_ray_serve_serves_the_requests_and_costs_the_simulator_draws(
    real_ray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray import serve

    same_serving(served(real_ray, serve, monkeypatch), simulated_serving(monkeypatch))


# --- streaming generators: the producers' and consumers' draws ---------------------------


def _streamed(monkeypatch: pytest.MonkeyPatch, modules: tuple[Any, ...]) -> list[Any]:
    """Patch `StreamProgram` in `modules` to note each producer and consumer it hands out."""
    from sim.stream_program import StreamProgram

    noted: list[Any] = []

    class Recorded(StreamProgram):
        def next_producer(self) -> Any:
            producer = super().next_producer()
            if producer is not None:
                noted.append(("producer", producer.duration_s, producer.item_sizes))
            return producer

        def consumer_duration(self) -> float:
            duration = super().consumer_duration()
            noted.append(("consumer", duration))
            return duration

    for module in modules:
        monkeypatch.setattr(module, "StreamProgram", Recorded)
    return noted


STREAM = ("stream.yaml", {"workload.producers": "3", "workload.items": "3"})


def _small_stream() -> Scenario:
    scenario = load_scenario(SCENARIOS / STREAM[0], STREAM[1])
    return fit_to_machine(scenario, scale_down=True, cpus=CPUS).scenario


def _stream_run(ray: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import twin.real_workloads
    from twin.real_workloads import run_stream

    noted = _streamed(monkeypatch, (twin.real_workloads,))
    scenario = _small_stream()
    driver = RealDriver(ray, scenario)
    driver.t0 = time.monotonic()
    run_stream(driver, scenario.workload)
    return noted


def _stream_simulated(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import sim.streams

    noted = _streamed(monkeypatch, (sim.streams,))
    metrics = sim.runner.run_scenario(_small_stream())
    assert metrics["tasks"] == 3 * (1 + 3)  # producers and one consumer per item
    return noted


def _stream_canonical(noted: list[Any]) -> tuple[list[Any], list[Any]]:
    """The producers in order; the consumers' durations (items arrive in each engine's order)."""
    return [x for x in noted if x[0] == "producer"], sorted(x for x in noted if x[0] == "consumer")


def test_twinray_streams_what_the_simulator_draws(
    twinray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    producers, consumers = expected = _stream_canonical(_stream_simulated(monkeypatch))
    assert len(producers) == 3 and len(consumers) == 9
    assert _stream_canonical(_stream_run(twinray, monkeypatch)) == expected


def test_ray_streams_what_the_simulator_draws(
    real_ray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _stream_canonical(_stream_simulated(monkeypatch))
    assert _stream_canonical(_stream_run(real_ray, monkeypatch)) == expected


# --- puts: what each driver puts ------------------------------------------------------------


def _puts_noted(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """Patch `PutsProgram` in `module` to note the size of every object it hands out."""
    from sim.puts_program import PutsProgram

    noted: list[int] = []

    class Recorded(PutsProgram):
        def next_put(self) -> int | None:
            size = super().next_put()
            if size is not None:
                noted.append(size)
            return size

    monkeypatch.setattr(module, "PutsProgram", Recorded)
    return noted


def _small_puts() -> Scenario:
    overrides = {
        "workload.puts": "12",
        "workload.object_bytes": "2048",
        "workload.drivers": "2",  # scaled down: one driver putting both drivers' objects
        "cluster.nodes": "2",
    }
    scenario = load_scenario(SCENARIOS / "ray_paper" / "object_store.yaml", overrides)
    return fit_to_machine(scenario, scale_down=True, cpus=CPUS).scenario


def _puts_both(ray: ModuleType, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """The sizes the simulator put and those a run on `ray` put, for the small scenario."""
    import sim.store
    import twin.real_workloads

    simulated_sizes = _puts_noted(monkeypatch, sim.store)
    scenario = _small_puts()
    assert scenario.workload.drivers == 1 and scenario.workload.puts == 24  # both drivers' puts
    assert sim.runner.run_scenario(scenario)["tasks"] == 24
    real_sizes = _puts_noted(monkeypatch, twin.real_workloads)
    driver = RealDriver(ray, scenario)
    driver.t0 = time.monotonic()
    twin.real_workloads.run_puts(driver, scenario.workload)
    assert driver.metrics.summary(1.0, CPUS)["tasks"] == 24
    return real_sizes, simulated_sizes


def test_twinray_puts_what_the_simulator_puts(
    twinray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sizes, simulated_sizes = _puts_both(twinray, monkeypatch)
    assert real_sizes == simulated_sizes == [2048] * 24


def test_ray_puts_what_the_simulator_puts(
    real_ray: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sizes, simulated_sizes = _puts_both(real_ray, monkeypatch)
    assert real_sizes == simulated_sizes == [2048] * 24
