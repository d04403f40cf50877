"""Real mode of an `rl` workload shaped `from_rllib`: its RLlib config trained by runtime.rllib.

`run_rllib` builds the workload's algorithm config (Ray's setting names, the algorithm's
defaults for the rest), trains `iterations` iterations on this machine and reports them in
the simulator's metrics schema: one "task" per env-runner sample call and one per learner
update (as the simulated loop counts its rollout and learner calls), their latencies and
busy time from the algorithm's timers, and an ``rl`` section beside the simulator's:
iteration, sampling (weights broadcast and sampling) and learner seconds (means over the
iterations after the first, which compiles the learner's gradient), and the bytes an
iteration moves (every runner reads the weights and returns its fragment).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from sim.metrics import MetricsRecorder, round_sig, wait_summary
from sim.scenario import Scenario

STORE_BYTES = 256 << 20
"""The object store of a real RLlib run (weights and fragments are small)."""


def algorithm_config(from_rllib: Any) -> Any:
    """The runtime.rllib config of a scenario's `from_rllib` block (`RLlibSpec`)."""
    from runtime.rllib.algorithms.pg import PGConfig
    from runtime.rllib.algorithms.ppo import PPOConfig

    config = {"PPO": PPOConfig, "PG": PGConfig}[from_rllib.algo]()
    return config.update_from_dict(from_rllib.settings())


def steady(values: list[float]) -> float:
    """The mean of `values` after the first (the only one when there is one)."""
    rest = values[1:] or values
    return round_sig(statistics.fmean(rest))


def run_rllib(scenario: Scenario, cpus: int, trace: str | Path | None = None) -> dict[str, Any]:
    """Train the scenario's `from_rllib` config for its iterations; the metrics dict."""
    import runtime as ray

    workload = scenario.workload
    config = algorithm_config(workload.from_rllib)
    metrics = MetricsRecorder()
    timers: dict[str, list[float]] = {"iteration": [], "sampling": [], "learner": []}
    returns: list[float] = []
    ray.init(num_cpus=cpus, object_store_memory=STORE_BYTES)
    try:
        algo = config.build_algo()
        try:
            shape = algo.iteration_shape()
            t0 = time.monotonic()
            for _ in range(workload.iterations):
                result = algo.train()
                now = time.monotonic() - t0
                t = result["timers"]
                sampling = t["synch_weights"] + t["env_runner_sampling_timer"]
                learner = t["learner_update_timer"]
                timers["iteration"].append(t["training_iteration"])
                timers["sampling"].append(sampling)
                timers["learner"].append(learner)
                returns.append(result["env_runners"]["episode_return_mean"])
                for _ in range(shape.sampling_runners):
                    _task(metrics, sampling, now - learner)
                _task(metrics, learner, now)
            makespan = time.monotonic() - t0
        finally:
            algo.stop()
        if trace is not None:
            Path(trace).parent.mkdir(parents=True, exist_ok=True)
            ray.timeline(str(trace))
    finally:
        ray.shutdown()
    summary = metrics.summary(makespan, cpus)
    cpu = summary["cpu_utilization"]
    summary.update(
        messages=None,
        message_bytes=None,
        utilization={"CPU": cpu},
        node_utilization={"CPU": [cpu]},
        faults=[],
        warnings=[],
        world="real",
        wait_breakdown=wait_summary({}, summary["tasks"]),
        rl={
            "iterations": len(timers["iteration"]),
            "iteration_s": steady(timers["iteration"]),
            "sampling_s": steady(timers["sampling"]),
            "learner_s": steady(timers["learner"]),
            "bytes_per_iteration": float(shape.bytes_per_iteration),
            "env_steps_per_iteration": shape.env_steps_per_iteration,
            "episode_return_mean": [None if r != r else round_sig(r) for r in returns],
        },
    )
    return summary


def _task(metrics: MetricsRecorder, run_s: float, done_at: float) -> None:
    """Count one sample call or update that ran `run_s` and ended at `done_at`."""
    metrics.task_started(0, max(0.0, done_at - run_s))
    metrics.task_finished(run_s, 0.0, 0, done_at)
    metrics.task_done(run_s, done_at)


__all__ = ["algorithm_config", "run_rllib", "steady"]
