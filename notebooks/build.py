"""Build the tutorial notebooks (`*.ipynb`) from the cell lists below, and run them.

Run `python notebooks/build.py` after editing a lesson: it writes each notebook, lets ruff
sort imports and format the code cells, then executes it in a fresh python3 kernel (with
this checkout first on the kernel's path) and writes it back with its outputs, plots
included, so the notebooks read on GitHub without running. `--no-execute` writes them
without outputs. The test suite executes every notebook again (in memory). Each lesson is
a list of ("md" | "code", source) cells.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

EXECUTE_TIMEOUT_S = 300
"""Longest a single cell may run while building (the lessons take seconds)."""

SETUP = """\
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SCENARIOS = ROOT / "scenarios\""""

Cell = tuple[str, str]

TASKS_AND_ACTORS: list[Cell] = [
    (
        "md",
        """\
# 1. Tasks and actors (real mode)

twinray speaks Ray's API: `import runtime as ray` and a program written for Ray runs here on
real worker processes of this machine. This lesson covers the three ideas everything else
builds on:

* a **task** is a function call that runs in another process and returns an `ObjectRef`
  (a future) at once;
* `ray.get` turns refs into values, and refs can be passed to other tasks, which wait for
  them: that is how you build task graphs;
* an **actor** is a class instance living in a worker process; its method calls run one at
  a time, in order, and can keep state between calls.""",
    ),
    ("code", SETUP.replace("\nROOT", "\nimport runtime as ray\n\nROOT")),
    ("code", "ray.init(num_cpus=2)\nprint(f\"{ray.cluster_resources()['CPU']:g} CPUs\")"),
    (
        "md",
        """\
## Tasks

`@ray.remote` turns a function into a remote function; `.remote(...)` submits a task and
returns immediately. Four 0.2 s tasks on two CPUs take about 0.4 s, not 0.8 s.""",
    ),
    (
        "code",
        """\
import time


@ray.remote
def slow_square(x):
    time.sleep(0.2)
    return x * x


start = time.perf_counter()
refs = [slow_square.remote(i) for i in range(4)]
print(refs[0])
print(ray.get(refs), f"in {time.perf_counter() - start:.2f} s")""",
    ),
    (
        "md",
        """\
## Task graphs

Passing a ref as an argument makes the new task depend on the old one: its owner holds it
until the argument exists, then ships the value to the worker. No `get` in between.""",
    ),
    (
        "code",
        """\
@ray.remote
def add(a, b):
    return a + b


total = add.remote(slow_square.remote(3), slow_square.remote(4))  # 9 + 16
print(ray.get(total))""",
    ),
    (
        "md",
        """\
## Actors

An actor keeps state in its worker process. Calls from one caller run in submission order.""",
    ),
    (
        "code",
        """\
@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, k=1):
        self.n += k
        return self.n


counter = Counter.remote()
print(ray.get([counter.incr.remote() for _ in range(5)]))""",
    ),
    (
        "md",
        """\
## Where did things run?

`ray.timeline()` returns every execution as a Chrome trace / Perfetto event (open the JSON
at <https://ui.perfetto.dev>). Here we draw it as a Gantt chart: one row per worker.""",
    ),
    (
        "code",
        """\
events = [e for e in ray.timeline() if e["cat"] == "task"]
rows = sorted({e["pid"] for e in events})
fig, ax = plt.subplots(figsize=(7, 2.5))
for e in events:
    ax.barh(rows.index(e["pid"]), e["dur"] / 1e3, left=e["ts"] / 1e3, height=0.6)
ax.set_yticks(range(len(rows)), rows)
ax.set(title="Task executions per worker", xlabel="time since init (ms)", ylabel="worker")
plt.show()""",
    ),
    ("code", "ray.shutdown()  # workers exit, shared memory is released"),
]

OBJECT_STORE: list[Cell] = [
    (
        "md",
        """\
# 2. The object store and zero-copy reads

Large values do not travel inside messages. `ray.put` (and a task's large return value)
writes the value once into the node's shared-memory arena; `ray.get` in any process on the
node maps it back **without copying**: numpy arrays are read straight from shared memory,
which is why a `get` of 64 MiB takes microseconds while the `put` takes milliseconds.
Values read this way are read-only, as in Ray.""",
    ),
    ("code", SETUP.replace("\nROOT", "\nimport numpy as np\n\nimport runtime as ray\n\nROOT")),
    ("code", "ray.init(num_cpus=2, object_store_memory=512 << 20)"),
    (
        "code",
        """\
array = np.arange(8 << 20, dtype=np.int64)  # 64 MiB
ref = ray.put(array)
view = ray.get(ref)
print("equal:", bool((view == array).all()), "| writeable:", view.flags.writeable)""",
    ),
    (
        "md",
        """\
## Put versus get, by size

We time `put` (one copy into shared memory) and `get` (a mapping, no copy) for growing
arrays. The put grows with the size (bandwidth-bound); the get stays flat.""",
    ),
    (
        "code",
        """\
import time

sizes_mib = [1, 4, 16, 64]
put_ms, get_ms = [], []
for mib in sizes_mib:
    data = np.ones(mib << 20, dtype=np.uint8)
    best_put = best_get = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        r = ray.put(data)
        best_put = min(best_put, time.perf_counter() - t)
        t = time.perf_counter()
        ray.get(r)
        best_get = min(best_get, time.perf_counter() - t)
        del r
    put_ms.append(best_put * 1e3)
    get_ms.append(best_get * 1e3)
    print(f"{mib:3d} MiB: put {best_put * 1e3:7.2f} ms ({mib / 1024 / best_put:5.2f} GiB/s),"
          f" get {best_get * 1e3:6.3f} ms")""",
    ),
    (
        "code",
        """\
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sizes_mib, put_ms, "o-", label="put (copy into the store)")
ax.plot(sizes_mib, get_ms, "s-", label="get (zero-copy view)")
ax.set(xscale="log", yscale="log", title="Object store: put vs get",
       xlabel="array size (MiB)", ylabel="time (ms)")
ax.legend()
plt.show()""",
    ),
    (
        "md",
        """\
## Tasks read arguments in place

A task receiving the ref gets the same zero-copy view in its worker process: the array is
not pickled into the message. The task below reports whether its argument is writeable
(it is not: it is shared memory) and sums it.""",
    ),
    (
        "code",
        """\
@ray.remote
def inspect(a):
    return int(a.sum()), bool(a.flags.writeable)


print(ray.get(inspect.remote(ref)))""",
    ),
    ("code", "del ref, view\nray.shutdown()"),
]

SIMULATING: list[Cell] = [
    (
        "md",
        """\
# 3. Simulating a cluster, and a scaling study

The simulator runs the **same control plane** as real mode (GCS, global scheduler,
raylets, owners) inside a SimPy model of a cluster: task bodies are durations, objects are
sizes, and every control-plane message costs simulated CPU time on the process that
handles it. A scenario YAML describes the cluster and the workload; here we load the small
one, run it, and then scale the cluster.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from sim.runner import run_scenario
from sim.scenario import load_scenario

scenario = load_scenario(SCENARIOS / "small_independent.yaml")
print(scenario.description)
metrics = run_scenario(scenario)
print(f"{metrics['tasks']} tasks, {metrics['throughput_tps']:,.0f} tasks/s, "
      f"p50 latency {metrics['latency_s']['p50'] * 1e3:.2f} ms")""",
    ),
    (
        "md",
        """\
## A report in one call

`sim.report.write_report` turns any metrics dict (sim or real) into `report.md` with plots;
`run-scenario` does this on every run.""",
    ),
    (
        "code",
        """\
import tempfile

from IPython.display import Image, display

from sim.report import write_report

out = Path(tempfile.mkdtemp())
report = write_report(metrics, out, "small_independent")
print(report.read_text()[:400])
display(Image(filename=str(out / "throughput.png")))""",
    ),
    (
        "md",
        """\
## Weak scaling: more nodes, proportionally more work

We keep the load per node fixed (one driver and 500 tasks per node) and grow the cluster.
Overrides use the same dotted paths as `run-scenario --set`. With bottom-up scheduling
each node schedules its own driver's tasks, so throughput should grow linearly.""",
    ),
    (
        "code",
        """\
nodes = [2, 4, 8, 16, 32]
throughput = []
for n in nodes:
    s = load_scenario(SCENARIOS / "small_independent.yaml", {
        "cluster.nodes": str(n), "workload.drivers": str(n), "workload.tasks": str(500 * n),
    })
    throughput.append(run_scenario(s)["throughput_tps"])

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(nodes, throughput, "o-", label="simulated")
ax.plot(nodes, [throughput[0] / nodes[0] * n for n in nodes], "--", label="linear")
ax.set(title="Weak scaling (500 tasks per node)", xlabel="nodes", ylabel="throughput (tasks/s)")
ax.legend()
plt.show()""",
    ),
]

POLICIES: list[Cell] = [
    (
        "md",
        """\
# 4. Scheduling policies compared

Placement policies are pluggable and chosen by name (`scheduler.policy` in a scenario,
`scheduling_policy=` in `runtime.init`). Same workload, same seed, one policy at a time:

* `bottom_up`: a node runs what it can and spills the rest to the global scheduler (Ray);
* `centralized`: every task goes through the global scheduler, which scans all nodes;
* `random`, `power_of_two`: random placement, or the less loaded of two sampled nodes
  (`scheduler.sample_size`, 2 by default, also sets how many nodes bottom-up samples);
* `locality`: prefer the node that holds the task's inputs.

The workload has 8 nodes but only 2 drivers, so good placement must move work away from
the drivers' nodes without flooding the global scheduler.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from sim.runner import run_scenario
from sim.scenario import known_policies, load_scenario

results = {}
for policy in known_policies():
    s = load_scenario(SCENARIOS / "small_independent.yaml", {
        "scheduler.policy": policy, "cluster.nodes": "8", "workload.window": "32",
    })
    results[policy] = run_scenario(s)
for policy, m in results.items():
    print(f"{policy:13s} {m['throughput_tps']:8,.0f} tasks/s  "
          f"p99 {m['latency_s']['p99'] * 1e3:6.2f} ms  spilled {m['spilled_tasks']:5d}")""",
    ),
    (
        "code",
        """\
names = list(results)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.bar(names, [results[p]["throughput_tps"] for p in names], color="C0")
left.set(title="Throughput by policy", xlabel="policy", ylabel="tasks/s")
right.bar(names, [results[p]["latency_s"]["p99"] * 1e3 for p in names], color="C1")
right.set(title="p99 task latency by policy", xlabel="policy", ylabel="latency (ms)")
for ax in (left, right):
    ax.tick_params(axis="x", rotation=30)
fig.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """\
## Exercise

Change `spillback_threshold` (how many queued tasks a node keeps before spilling) with
`"scheduler.spillback_threshold": "0"` and rerun: bottom-up then behaves like a
centralized scheduler. Then try `"scheduler.sample_size": "1"` (a random pick) or `"8"`
with `power_of_two`: more samples see more nodes, but every sample reads the same stale
load reports, so they can herd onto one node.""",
    ),
]

SIM_BESIDE_REAL: list[Cell] = [
    (
        "md",
        """\
# 5. Sim beside real on one scenario

One scenario, both worlds: the simulator predicts the run, and real worker processes on
this machine execute it (task bodies sleep for the drawn durations and return outputs of
the drawn sizes through the real object store). The 4-node scenario is larger than this
machine, so real mode refuses it unless we ask to **scale it down** to one node; the
simulator then runs the same scaled scenario, with the same seed and thus the same task
durations. The command-line equivalent is
`run-scenario scenarios/small_independent.yaml --mode both --scale-down`.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from sim.runner import run_scenario
from sim.scenario import load_scenario
from twin.real_mode import RealModeRefused, fit_to_machine, run_real

scenario = load_scenario(SCENARIOS / "small_independent.yaml", {"workload.tasks": "600"})
try:
    fit_to_machine(scenario, scale_down=False)
except RealModeRefused as exc:
    print("refused:", exc)
fit = fit_to_machine(scenario, scale_down=True)
print(fit.note)""",
    ),
    (
        "code",
        """\
real = run_real(fit.scenario, fit.cpus)
sim = run_scenario(fit.scenario)""",
    ),
    (
        "md",
        """\
## Side by side

The relative difference is (sim - real) / real. The gap is the part of the real run the
model does not capture: per-task dispatch in Python, process wake-ups, sleep overshoot.
`run-scenario --calibrate` measures those overheads on this machine and writes a profile
that scenarios can use as their control-plane cost model (see the README).""",
    ),
    (
        "code",
        """\
from IPython.display import Markdown, display

from sim.report import comparison_table, plot_comparison

display(Markdown("\\n".join(comparison_table(sim, real))))""",
    ),
    (
        "code",
        """\
import tempfile

from IPython.display import Image

out = Path(tempfile.mkdtemp())
for name in plot_comparison(sim, real, out):
    display(Image(filename=str(out / name)))""",
    ),
    (
        "md",
        """\
## With this machine's calibration profile

`run-scenario --calibrate` writes `scenarios/calibration/this_machine.yaml`: measured
real-mode overheads, the per-message costs fitted to them, and the CPU time a real task
spends beyond its body (`task_overhead`: dispatch and completion latency, storing a large
output). A scenario uses it with `control_plane: {profile: ...}` (here through an
override); the measured per-task cost becomes `control_plane.task_overhead_us`, CPU-slot
time each simulated task holds beyond its body. Real timings on a busy 2-core machine
vary by 10-30 % from run to run, so expect some scatter.""",
    ),
    (
        "code",
        """\
from sim.runner import run_scenario

profile = SCENARIOS / "calibration" / "this_machine.yaml"
if profile.exists():
    calibrated = load_scenario(
        SCENARIOS / "small_independent.yaml",
        {"workload.tasks": "600", "control_plane.profile": str(profile)},
    )
    calibrated = fit_to_machine(calibrated, scale_down=True).scenario
    overhead = calibrated.control_plane.task_overhead_us
    print(f"per-task overhead from the profile: {overhead:.0f} us")
    sim_calibrated = run_scenario(calibrated)
    display(Markdown("\\n".join(comparison_table(sim_calibrated, real))))
else:
    print("no calibration profile yet: run `run-scenario --calibrate` first")""",
    ),
]

REINFORCEMENT_LEARNING: list[Cell] = [
    (
        "md",
        """\
# 7. Reinforcement learning: rollouts in actors, learning from them (PPO on CartPole)

`runtime.rllib` is RLlib's API on twinray's tasks and actors. One PPO iteration is:

1. the learner's weights are **put in the object store once**;
2. every **env-runner actor** gets that same `ObjectRef`, loads the weights and steps its
   own environments (CartPole here) for a fragment of experience;
3. the driver gathers the fragments and the **learner** computes advantages (GAE) and a few
   epochs of minibatch updates of PPO's loss (clipped surrogate, value loss, entropy bonus,
   KL penalty).

This lesson trains PPO for a short while, draws the learning curve and uses the policy.""",
    ),
    (
        "code",
        SETUP.replace("\nROOT", "\nimport runtime as ray\n\nROOT"),
    ),
    ("code", "info = ray.init(num_cpus=2)"),
    (
        "md",
        """\
## The configuration

`PPOConfig` has Ray's builder methods. Two env runners, one environment each; 1000 steps
per iteration (500 per runner), six epochs of minibatches of 250. The seed makes the run
repeatable.""",
    ),
    (
        "code",
        """\
from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.util.state import list_actors

config = (
    PPOConfig()
    .environment("CartPole-v1")
    .env_runners(num_env_runners=2)
    .training(lr=1e-3, train_batch_size=1000, minibatch_size=250, num_epochs=6, lambda_=0.95,
              clip_param=0.2, vf_loss_coeff=0.5)
    .debugging(seed=1)
)
algo = config.build_algo()
[(a["class_name"], a["state"]) for a in list_actors()]""",
    ),
    (
        "md",
        """\
## Training

Each `train()` returns RLlib's result dict: `env_runners/episode_return_mean` (over the
last 100 episodes), `num_env_steps_sampled_lifetime`, the learner's losses under
`learners/default_policy`, and `timers` (putting the weights, sampling, learning). A
random policy scores about 22 on CartPole.""",
    ),
    (
        "code",
        """\
history = []
for _ in range(12):
    result = algo.train()
    history.append(result)
    print(
        f"iter {result['training_iteration']:2d}  steps {result['num_env_steps_sampled_lifetime']:5.0f}"
        f"  return {result['env_runners']['episode_return_mean']:6.1f}"
    )
timers = history[-1]["timers"]  # seconds of the last iteration, by phase
{k: round(timers[k], 2) for k in ("synch_weights", "env_runner_sampling_timer", "learner_update_timer")}""",
    ),
    (
        "code",
        """\
steps = [r["num_env_steps_sampled_lifetime"] for r in history]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(steps, [r["env_runners"]["episode_return_mean"] for r in history], marker="o")
ax1.axhline(22, color="grey", linestyle="--", label="random policy")
ax1.set_xlabel("env steps")
ax1.set_ylabel("mean episode return")
ax1.legend()
learner = [r["learners"]["default_policy"] for r in history]
ax2.plot(steps, [m["entropy"] for m in learner], label="entropy")
ax2.plot(steps, [m["mean_kl_loss"] * 100 for m in learner], label="KL x 100")
ax2.set_xlabel("env steps")
ax2.legend()
fig.tight_layout()""",
    ),
    (
        "md",
        """\
## Using the policy

`evaluate()` runs fresh greedy episodes; `compute_single_action` answers for one
observation. A pole leaning right (third value > 0, falling right) should make the cart
push right (action 1). `save()` writes a checkpoint; `Algorithm.from_checkpoint` rebuilds
the same policy.""",
    ),
    (
        "code",
        """\
# twinray-only: Ray 2.60's default API stack has no compute_single_action (there: get_module())
from runtime.rllib.algorithms.algorithm import Algorithm

print("evaluation return:", algo.evaluate()["env_runners"]["episode_return_mean"])
print("action for a pole falling right:", algo.compute_single_action([0, 0, 0.15, 0.5], explore=False))
path = algo.save().checkpoint.path
algo.stop()
restored = Algorithm.from_checkpoint(path)
print("restored at iteration", restored.iteration, "->", restored.compute_single_action([0, 0, 0.15, 0.5], explore=False))
restored.stop()
ray.shutdown()""",
    ),
    (
        "md",
        """\
Trained longer (`python -m benchmarks.ppo_cartpole`), the same PPO reaches CartPole's
threshold of 475 in about 250k steps. The same algorithm is a Tune trainable:
`tune.Tuner("PPO", param_space=config)` searches its hyperparameters.""",
    ),
]

TUNE_SEARCH: list[Cell] = [
    (
        "md",
        """\
# 6. Hyperparameter search with Tune: grid, ASHA and PBT, for real and simulated

`runtime.tune` is Ray Tune's API: a `Tuner` runs a trainable once per config of a search
space, each trial on its own actor, and a **trial scheduler** decides after every reported
result whether the trial goes on, pauses or stops. The schedulers are pure decision objects
in `runtime/core/tune/`, so the simulator's `hyperparameter_search` workload uses the very
same ones: a sweep too big for this machine can be simulated on a large cluster and takes
the decisions a real run would. This lesson runs a grid search, ASHA and PBT for real, then
ASHA, HyperBand and PBT on a simulated 64-node GPU cluster.""",
    ),
    ("code", SETUP.replace("\nROOT", "\nimport runtime as ray\nfrom runtime import tune\n\nROOT")),
    ("code", "info = ray.init(num_cpus=2)"),
    (
        "md",
        """\
## Grid search

A function trainable calls `tune.report` once per iteration. Here a trial's "accuracy"
follows a learning curve set by its config: `quality` is what a real model's
hyperparameters would decide. `tune.grid_search` runs every value.""",
    ),
    (
        "code",
        """\
def curve(quality, t):
    return quality * (1 - 0.7**t)


def train(config):
    for t in range(1, 10):
        tune.report({"acc": curve(config["quality"], t)})


grid = tune.Tuner(
    train,
    param_space={"quality": tune.grid_search([0.2, 0.5, 0.9])},
    tune_config=tune.TuneConfig(metric="acc", mode="max"),
    run_config=tune.RunConfig(name="grid", verbose=0),
).fit()
best = grid.get_best_result()
print("best config:", best.config, "acc", round(best.metrics["acc"], 3))
[(r.config["quality"], r.metrics["training_iteration"]) for r in grid]""",
    ),
    (
        "md",
        """\
## ASHA: stop the bad trials early

`ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)` has rungs at 1, 3 and 9
iterations; a trial reaching a rung below the 2/3 quantile of the results recorded there is
stopped. Twelve random trials: the weak ones end after one or three iterations.""",
    ),
    (
        "code",
        """\
asha = tune.Tuner(
    train,
    param_space={"quality": tune.uniform(0.0, 1.0)},
    tune_config=tune.TuneConfig(
        metric="acc",
        mode="max",
        num_samples=12,
        scheduler=tune.schedulers.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3),
    ),
    run_config=tune.RunConfig(name="asha", verbose=0),
).fit()
fig, ax = plt.subplots(figsize=(6, 3.5))
for r in asha:
    df = r.metrics_dataframe
    ax.plot(df["training_iteration"], df["acc"], marker="o", markersize=3)
ax.set_xlabel("training_iteration")
ax.set_ylabel("acc")
ax.set_title("ASHA: each line is a trial; short lines were stopped")
sorted(r.metrics["training_iteration"] for r in asha)""",
    ),
    (
        "md",
        """\
## PBT: copy the leaders, perturb their hyperparameters

Population-based training keeps a population running; every `perturbation_interval`
iterations a trial in the bottom quantile restarts from a top trial's checkpoint with a
mutated config. The trainable saves its state in a checkpoint each iteration and resumes
from one when restarted.""",
    ),
    (
        "code",
        """\
# twinray-only: PopulationBasedTraining(rng=) and .num_perturbations are twinray's additions
import os
import random
import tempfile


def climb(config):
    value = 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "value")) as f:
            value = float(f.read())
    while True:
        value += config["lr"]
        tmp = tempfile.mkdtemp()
        with open(os.path.join(tmp, "value"), "w") as f:
            f.write(repr(value))
        tune.report({"value": value, "lr": config["lr"]}, checkpoint=tune.Checkpoint.from_directory(tmp))


pbt = tune.schedulers.PopulationBasedTraining(
    time_attr="training_iteration",
    perturbation_interval=2,
    hyperparam_mutations={"lr": [0.1, 0.5, 1.0, 2.0]},
    rng=random.Random(0),
)
population = tune.Tuner(
    climb,
    param_space={"lr": tune.grid_search([0.1, 0.5, 1.0, 2.0])},
    tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
    run_config=tune.RunConfig(name="pbt", verbose=0, stop={"training_iteration": 6}),
).fit()
print("perturbations:", pbt.num_perturbations)
[(r.metrics["experiment_tag"], r.config["lr"], round(r.metrics["value"], 2)) for r in population]""",
    ),
    ("code", "ray.shutdown()"),
    (
        "md",
        """\
## The same schedulers on a simulated 64-node cluster

The `hyperparameter_search` workload runs each epoch as a simulated GPU task;
`workload.trial_scheduler` names the scheduler (`asha`, `hyperband`, `median_stopping`,
`fifo`) with Ray's parameter names. Every finished epoch is a result given to the same
scheduler object as above. 400 trials of up to 27 epochs, 128 at a time, on 64 nodes of 4
GPUs: how many epochs does each scheduler spend, and how long does the sweep take?
(`tests/real/test_tune_two_worlds.py` checks that a real run and a simulated one take the
same decisions on the same curves.)""",
    ),
    (
        "code",
        """\
# twinray-only: the simulator (sim.*), not a Ray program
from sim.runner import build
from sim.scenario import validate_scenario


def sweep(trial_scheduler):
    raw = {
        "name": f"sweep_{trial_scheduler}",
        "seed": 1,
        "cluster": {"nodes": 64, "cpus_per_node": 8, "gpus_per_node": 4},
        "scheduler": {"report_interval_ms": 10},
        "workload": {
            "kind": "hyperparameter_search",
            "trial_scheduler": trial_scheduler,
            "trials": 400,
            "epochs": 27,
            "concurrent_trials": 128,
            "grace_period": 1,
            "reduction_factor": 3,
            "num_gpus": 1,
            "duration_ms": {"dist": "normal", "mean": 10, "stddev": 1},
        },
        "output": {"progress": False},
    }
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    (driver,) = sim.drivers
    return metrics, [t.iteration for t in driver.trials]


runs = {name: sweep(name) for name in ("asha", "hyperband")}
for name, (metrics, _) in runs.items():
    print(f"{name:10s} epochs run {metrics['tasks']:5d} of {400 * 27}  makespan {metrics['makespan_s']:.2f} s")
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, (_, epochs) in runs.items():
    ax.hist(epochs, bins=range(1, 29), alpha=0.6, label=name)
ax.set_xlabel("epochs a trial ran")
ax.set_ylabel("trials")
ax.legend()""",
    ),
    (
        "md",
        """\
ASHA never waits: a trial is judged against what its rung has seen so far, so GPUs stay
busy. Synchronous HyperBand pauses trials at a rung until the bracket is full, then keeps
the top third. Change `trials`, the cluster or `trial_scheduler` and rerun: the decisions
are Ray's, only the cluster is simulated.""",
    ),
    (
        "md",
        """\
## PBT on the simulated cluster

`trial_scheduler: {kind: pbt, ...}` takes Ray's PBT parameters. A simulated trial's score
grows each epoch by how close its `lr` and `momentum` are to that epoch's best values,
which drift over the run (`sim/tune_curves.py`), so a fixed config is good only for a
while. An exploit continues from the clone's checkpoint object (`checkpoint_bytes`, moved
to wherever the next epoch runs) with the config perturbed. The same population with
`quantile_fraction: 0` never exploits: compare the final scores.""",
    ),
    (
        "code",
        """\
# twinray-only: the simulator (sim.*), not a Ray program
def pbt_sweep(quantile_fraction):
    raw = {
        "name": "pbt_sweep",
        "seed": 1,
        "cluster": {"nodes": 64, "cpus_per_node": 8, "gpus_per_node": 4},
        "scheduler": {"report_interval_ms": 10},
        "workload": {
            "kind": "hyperparameter_search",
            "trials": 64,
            "epochs": 20,
            "concurrent_trials": 32,
            "metric": "score",
            "mode": "max",
            "trial_scheduler": {
                "kind": "pbt",
                "time_attr": "training_iteration",
                "perturbation_interval": 4,
                "quantile_fraction": quantile_fraction,
                "seed": 3,
                "hyperparam_mutations": {
                    "lr": {"kind": "loguniform", "lower": 1e-4, "upper": 1e-1},
                    "momentum": [0.8, 0.9, 0.95, 0.99],
                },
            },
            "num_gpus": 1,
            "duration_ms": {"dist": "normal", "mean": 10, "stddev": 1},
            "checkpoint_bytes": 20e6,
            "checkpoint_save_ms": 2,
            "checkpoint_restore_ms": 3,
        },
        "output": {"progress": False},
    }
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    (driver,) = sim.drivers
    return metrics, driver


fig, ax = plt.subplots(figsize=(6, 3.5))
for label, fraction in (("PBT", 0.25), ("no exploits", 0.0)):
    metrics, driver = pbt_sweep(fraction)
    scores = [t.score for t in driver.trials]
    print(
        f"{label:12s} exploits {len(driver.exploits):3d}  epochs {metrics['tasks']:5d}  "
        f"moved {metrics['bytes_transferred'] / 1e9:5.1f} GB  best {max(scores):.2f}  "
        f"mean {sum(scores) / len(scores):.2f}"
    )
    ax.hist(scores, bins=20, alpha=0.6, label=label)
ax.set_xlabel("final score of a trial")
ax.set_ylabel("trials")
ax.legend()""",
    ),
    (
        "md",
        """\
Exploiting costs epochs (a trial that clones an older checkpoint runs some again) and
checkpoint transfers, and buys a population that follows the drifting optimum.
`synch: true` gives Ray's synchronous PBT; `tests/real/test_tune_two_worlds.py` checks
that real and simulated PBT, both kinds, take the same exploits on the same curves.""",
    ),
]
DATAFRAMES: list[Cell] = [
    (
        "md",
        """\
# 8. Dataframes on partitions

`import runtime.dataframe as pd` gives pandas' API over **row partitions that live in the
object store**, in the manner of Modin: a `DataFrame` is a list of `ObjectRef`s to pandas
frames plus cached metadata (columns, dtypes, row counts), and its operations are tasks
over the partitions. Methods that are not parallel still work: they run in pandas on the
collected frame, with a one-time warning naming the method.""",
    ),
    (
        "code",
        "# twinray-only notebook: runtime.dataframe is twinray's (on Ray, Modin is that library)\n"
        + SETUP.replace("\nROOT", "\nimport runtime as ray\nimport runtime.dataframe as pd\n\nROOT")
        + "\n\ninfo = ray.init(num_cpus=2)",
    ),
    (
        "md",
        """\
## A file read in byte ranges

We write a small CSV (a few MB). `pd.read_csv` cuts it at line ends into one byte range
per CPU (`pd.NPartitions`), parses each range in its own task with pandas' parser, and keeps
the parsed frames in the store: the driver holds only their refs and metadata.""",
    ),
    (
        "code",
        """\
import tempfile
import time

import numpy as np
import pandas

rng = np.random.default_rng(0)
n = 200_000
local = pandas.DataFrame(
    {
        "key": rng.integers(0, 100, n),
        "city": rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n),
        "x": rng.normal(size=n).round(4),
        "y": rng.integers(0, 1000, n),
    }
)
path = Path(tempfile.mkdtemp()) / "small.csv"
local.to_csv(path, index=False)

df = pd.read_csv(path)
print(f"{path.stat().st_size / 1e6:.1f} MB, {len(df)} rows, {pd.NPartitions.get()} partitions")
pd.partitions(df)""",
    ),
    (
        "code",
        """\
print(df.dtypes.to_dict())  # metadata: no data moved
df.head()""",
    ),
    (
        "md",
        """\
## A groupby's task graph

`groupby(...).agg` runs one *partial* task per partition (pandas' groupby on that
partition), then a *finish* task that combines the partial sums, counts, minima... and
assembles the result pandas would give. `ray.timeline()` shows the tasks on the workers.""",
    ),
    (
        "code",
        """\
before = len(ray.timeline())  # the events so far
result = df.groupby("city").agg({"x": "mean", "y": ["sum", "max"]})
events = [e for e in ray.timeline()[before:] if e["cat"] == "task"]
for e in events:
    print(f"{e['pid']:>9}  {e['name']:<8} {e['dur'] / 1e3:6.1f} ms")
result""",
    ),
    (
        "code",
        """\
t0 = min(e["ts"] for e in events)
workers = sorted({e["pid"] for e in events})
fig, ax = plt.subplots(figsize=(7, 1.8))
for e in events:
    row = workers.index(e["pid"])
    ax.barh(row, e["dur"] / 1e3, left=(e["ts"] - t0) / 1e3, color="C0" if e["name"] == "partial" else "C1")
    ax.text((e["ts"] - t0 + e["dur"] / 2) / 1e3, row, e["name"], ha="center", va="center", color="white")
ax.set_yticks(range(len(workers)), workers)
ax.set_xlabel("ms since the first task")
ax.set_title("groupby: partial aggregation per partition, then the reduce")
plt.show()""",
    ),
    (
        "md",
        """\
The answer is pandas' own, checked with `pandas.testing`:""",
    ),
    (
        "code",
        """\
expected = local.groupby("city").agg({"x": "mean", "y": ["sum", "max"]})
pandas.testing.assert_frame_equal(result.to_pandas(), expected)
filtered = df[(df.x > 0) & (df.city != "Lima")]
pandas.testing.assert_frame_equal(
    filtered.sort_values("y").to_pandas(),
    local[(local.x > 0) & (local.city != "Lima")].sort_values("y", kind="stable"),
)
print("same as pandas")""",
    ),
    (
        "md",
        """\
## Timing beside pandas, on this small file

Each parallel step pays for tasks and for moving partitions through the store; on a file
this small that overhead is a large share, so do not expect a speed-up here. The
benchmark `python3 -m benchmarks.dataframe` measures a 1 GB file against pandas, Modin and
Dask.""",
    ),
    (
        "code",
        """\
def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


steps = {
    "read_csv": (lambda: pandas.read_csv(path), lambda: pd.execute(pd.read_csv(path))),
    "groupby": (lambda: local.groupby("key").y.sum(), lambda: df.groupby("key").y.sum()),
    "filter": (lambda: local[local.x > 0], lambda: pd.execute(df[df.x > 0])),
}
timings = {name: (best(a), best(b)) for name, (a, b) in steps.items()}
for name, (a, b) in timings.items():
    print(f"{name:>8}: pandas {a * 1e3:6.1f} ms, runtime.dataframe {b * 1e3:6.1f} ms")
fig, ax = plt.subplots(figsize=(6, 2.5))
xs = np.arange(len(timings))
ax.bar(xs - 0.2, [a * 1e3 for a, _ in timings.values()], 0.4, label="pandas")
ax.bar(xs + 0.2, [b * 1e3 for _, b in timings.values()], 0.4, label="runtime.dataframe")
ax.set_xticks(xs, list(timings))
ax.set_ylabel("ms (best of 3)")
ax.legend()
plt.show()""",
    ),
    (
        "md",
        """\
## Everything else defaults to pandas

A method that is not parallel collects the frame, runs pandas, and partitions a frame
result again; it warns once per method.""",
    ),
    (
        "code",
        """\
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    df.rank()
    df.rank()
print([str(w.message)[:60] for w in caught])
ray.shutdown()""",
    ),
]


STREAMING: list[Cell] = [
    (
        "md",
        """\
# 9. Streaming pipelines of actors

A stream is processed item by item while it arrives: no stage waits for the whole input.
With actors that takes two pieces of Ray's API, both here: `runtime.util.queue.Queue`, a
FIFO queue that lives in an actor so that any process can put and get, and
`runtime.util.ActorPool`, which spreads calls over a fixed set of actors. The example
`runtime/examples/streaming.py` wires them into a pipeline:

    producer --q_in--> 2 "decode" actors --q_mid--> ActorPool of 2 "classify" actors --> driver

The queues are **bounded** (`Queue(maxsize)`). When a stage is slower than the one before
it, the queue in front of it fills up, and a full queue makes `put` wait: the wait travels
upstream until the producer runs at the pace of the slowest stage. That is
**backpressure**: memory stays bounded however fast the source is.""",
    ),
    (
        "code",
        SETUP.replace(
            "\nROOT",
            "\nimport runtime as ray\nfrom runtime.util.queue import Full, Queue\n\nROOT",
        ),
    ),
    ("code", "info = ray.init(num_cpus=2)"),
    (
        "md",
        """\
## A bounded queue

`put` on a full queue waits for room (or raises `Full` after `timeout`); `put_nowait`
raises `Full` at once. The example counts a put as *blocked* when `put_nowait` finds the
queue full and the writer has to wait: that is how backpressure is measured below, not by
guessing from timings.""",
    ),
    (
        "code",
        """\
q = Queue(maxsize=2)
q.put("a")
q.put("b")
try:
    q.put_nowait("c")
except Full:
    print("full at", q.size(), "items")
print(q.get(), q.get(), "then empty:", q.empty())
q.shutdown()""",
    ),
    (
        "md",
        """\
## The pipeline, end to end

Each frame takes 5 ms to decode and 20 ms to classify (simulated work: `time.sleep`, so
the shape of the pipeline shows on a 2-core machine). Two classifiers manage at most
100 items/s: they are the bottleneck, so both queues should fill up and most of the
producer's puts should wait. A monitor actor samples the depth of both queues every
10 ms; every stage stamps each item it finishes.""",
    ),
    (
        "code",
        """\
# twinray-only: runtime.examples.streaming is twinray's example program
from runtime.examples import streaming

report = streaming.run_pipeline(n_items=150, maxsize=4, decoders=2, classifiers=2)
assert report.results == [streaming.expected_label(i) for i in range(150)]
print(report.summary())""",
    ),
    (
        "md",
        """\
Queue depth over time (left): the queues spend most of the run at their bound, 4, and never
go above it. Items finished per stage (right): decode could run at 400 items/s but is held
to the classifiers' pace, because its puts into the full `q_mid` wait.""",
    ),
    (
        "code",
        """\
# twinray-only: plots the report of runtime.examples.streaming
def plot(report, title):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    for name, samples in report.depth.items():
        t, depth = zip(*samples)
        left.step(t, depth, where="post", label=name)
    left.axhline(report.maxsize, color="grey", linestyle=":", label="maxsize")
    left.set_xlabel("seconds")
    left.set_ylabel("items in the queue")
    left.set_title(f"{title}: queue depth")
    left.legend()
    for stage in report.stages:
        done = report.finish_times(stage)
        right.plot(done, range(1, len(done) + 1), label=f"{stage}: {report.throughput(stage):.0f}/s")
    right.set_xlabel("seconds")
    right.set_ylabel("items finished")
    right.set_title(f"{title}: stage throughput")
    right.legend()
    fig.tight_layout()


plot(report, "2 classifiers")""",
    ),
    (
        "md",
        """\
## Widen the bottleneck

With four classifiers the last stage could do 4 x 50 = 200 items/s, as much as the two
decoders. Same code, one argument changed: the throughput goes up, and the queues show where
the bottleneck moved. They drain if the rest keeps up; they stay full if it does not, and
on a 2-core machine shared by a dozen processes (producer, stages, queue actors, the
driver's own loop feeding the pool) the round trips through the queue actors soon become
the limit. The figures below are this run's.""",
    ),
    (
        "code",
        """\
# twinray-only: runtime.examples.streaming is twinray's example program
wider = streaming.run_pipeline(n_items=150, maxsize=4, decoders=2, classifiers=4)
assert wider.results == report.results
for name, r in (("2 classifiers", report), ("4 classifiers", wider)):
    p = r.producer
    print(
        f"{name}: {r.throughput('classify'):5.0f} items/s, "
        f"{p.blocked_puts}/{p.puts} producer puts waited ({p.wait_s:.2f} s)"
    )
plot(wider, "4 classifiers")""",
    ),
    (
        "md",
        """\
## How it is built

The driver feeds the pool from `q_mid` and takes an item only when a pool actor is free, so
the pool adds no unbounded buffer of its own; while `q_mid` is empty it checks that the
producer and the decoders have not failed (a failed stage never sends its end marker).
Every actor and both queues are shut down in a `finally`, whatever happens.""",
    ),
    (
        "code",
        "# twinray-only: shows the source of runtime.examples.streaming\n"
        "import inspect\n\nprint(inspect.getsource(streaming._drain_into_pool))",
    ),
    ("code", "ray.shutdown()"),
]


INFERENCE_SERVING: list[Cell] = [
    (
        "md",
        """\
# 10. Data-parallel inference and serving with batching, measured and simulated

Two ways to put a model to work on many inputs, both on twinray's real mode, and then the
second one simulated at a scale this machine does not have:

1. **Data-parallel inference** (`runtime.dkeras`, after dKeras): one Keras model, copied
   once into the object store, held by N replica actors; `predict` splits a batch over them.
2. **Online serving with batching** (`runtime.serve`, Ray Serve's API): requests arrive
   over HTTP one by one; `@serve.batch` groups those that arrive close together so the
   model runs once per batch.
3. **The same deployment simulated** (`kind: serving` scenarios): the simulator routes and
   batches with the very objects real Serve uses (`runtime.core.serve`), so it predicts
   p50/p99 for replica counts and batch sizes before you buy the GPUs.""",
    ),
    (
        "code",
        SETUP.replace(
            "\nROOT", "\nimport os\n\nimport numpy as np\n\nimport runtime as ray\n\nROOT"
        )
        + """

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported; replicas follow
ray.init(num_cpus=2)""",
    ),
    (
        "md",
        """\
## 1. dKeras: one model, two replicas

The factory builds a small convolutional net (seeded, so every copy has the same weights).
`dKeras` builds it once here, puts its weights in the object store and starts two replica
actors that load them; `predict` hands each replica chunks of the input and reassembles
the predictions in order, whichever replica computed each chunk.""",
    ),
    (
        "code",
        """\
# twinray-only: runtime.dkeras is twinray's (dKeras itself is another package)
import time

import keras

from runtime.dkeras import dKeras


def tiny_convnet(weights=None):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


images = np.random.default_rng(0).random((128, 32, 32, 3), dtype=np.float32)
model = dKeras(tiny_convnet, n_workers=2, init_ray=False, wait_for_workers=True)
first = model.predict(images[:32])  # warm-up: each replica compiles its predict step once
started = time.perf_counter()
preds = model.predict(images)
took = time.perf_counter() - started
print(f"{preds.shape[0]} predictions of {preds.shape[1]} classes by 2 replicas in {took:.2f} s")
print("softmax rows sum to 1:", np.allclose(preds.sum(axis=1), 1.0, atol=1e-5))
print("same answers as the warm-up for the same images:", np.allclose(preds[:32], first, atol=1e-6))
model.close()""",
    ),
    (
        "md",
        """\
## 2. Serve: a batched deployment hit over HTTP

The deployment's `__call__` hands each request to a `@serve.batch` method; the model takes
5 ms per batch plus 1 ms per item (awaited, as a GPU call would be). A burst of 48
concurrent requests over HTTP is answered in batches of up to 8: each answer says how big
its batch was.""",
    ),
    (
        "code",
        """\
import asyncio

import httpx

from runtime import serve


@serve.deployment(num_replicas=2, max_ongoing_requests=16, ray_actor_options={"num_cpus": 0})
class Model:
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def infer(self, xs):
        await asyncio.sleep(0.005 + 0.001 * len(xs))
        return [{"y": 2 * x, "batch": len(xs)} for x in xs]

    async def __call__(self, request):
        return await self.infer(int(request.query_params["x"]))


serve.start(http_options={"host": "127.0.0.1", "port": 8123})
serve.run(Model.bind(), name="model", route_prefix="/model")


async def burst(n):
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8123", timeout=60) as client:
        answers = await asyncio.gather(*[client.get("/model", params={"x": i}) for i in range(n)])
    return [a.json() for a in answers]


answers = await burst(48)  # noqa: F704 (the notebook's event loop)
assert [a["y"] for a in answers] == [2 * i for i in range(48)]
sizes = [a["batch"] for a in answers]
print("requests per batch size:", {n: sizes.count(n) for n in sorted(set(sizes))})
serve.shutdown()
ray.shutdown()""",
    ),
    (
        "md",
        """\
## 3. The same deployment, simulated at scale

`scenarios/serving_scaling.yaml` puts 8 GPU replicas of a model (4 ms + 0.25 ms per item)
behind one proxy under 3000 Poisson requests per second. Varying the replica count and
`max_batch_size` shows the trade-off: without batching, too few replicas fall behind and
the p99 becomes the length of the proxy's queue (503s once it is full); batching amortises
the fixed cost so fewer replicas keep up. `reports/serving/` has the full grid
(`python -m benchmarks.serving_scaling`), and `run-scenario scenarios/serving_small.yaml
--mode both` measures real Serve beside its simulation and calibrates the costs.""",
    ),
    (
        "code",
        """\
# twinray-only: the simulator (sim.*), not a Ray program
from sim.runner import run_scenario
from sim.scenario import load_scenario


def variant(replicas, batch, requests=1500):
    # serving_scaling.yaml with `replicas` replicas batching up to `batch` requests
    base = load_scenario(SCENARIOS / "serving_scaling.yaml", {"workload.requests": str(requests)})
    wl = base.workload
    dep = wl.deployments[0].model_copy(update={"num_replicas": replicas, "max_batch_size": batch})
    return base.model_copy(update={"workload": wl.model_copy(update={"deployments": [dep]})})


rows = []
for replicas in (2, 8):
    for batch in (1, 4, 16):
        s = run_scenario(variant(replicas, batch))["serving"]
        rows.append((replicas, batch, s["latency_s"]["p99"], s["throughput_rps"], s["rejected"]))
        print(
            f"{replicas} replicas, max_batch_size {batch:>2}: p99 {s['latency_s']['p99'] * 1e3:8.1f} ms,"
            f" {s['throughput_rps']:6.0f} req/s, {s['rejected']} rejected"
        )

fig, ax = plt.subplots(figsize=(6, 3.5))
for replicas in (2, 8):
    mine = [r for r in rows if r[0] == replicas]
    ax.plot([r[1] for r in mine], [r[2] * 1e3 for r in mine], marker="o", label=f"{replicas} replicas")
ax.set(xscale="log", yscale="log", xlabel="max_batch_size", ylabel="p99 latency (ms)")
ax.set_title("Simulated: p99 vs batch size at 3000 req/s")
ax.legend()
plt.show()""",
    ),
]


CLUSTER_ON_ONE_MACHINE: list[Cell] = [
    (
        "md",
        """\
# 11. A cluster on one machine: nodes, spillback, killing a node and watching lineage reconstruction

`runtime.cluster_utils.Cluster` (Ray's `ray.cluster_utils.Cluster`) starts real node
processes on this machine: a head (GCS, global scheduler, its own raylet, workers and
object store) and worker nodes that join it over an authenticated TCP channel, each with
its own raylet, workers and shared-memory object store. This notebook is their driver
(`runtime.init(address=...)`). The same core code that the simulator runs decides where
every task goes, so what lesson 4 showed in simulation happens here on real processes:

* tasks that do not fit the head **spill** to other nodes (bottom-up scheduling), and
  `SPREAD` spreads them;
* a node **SIGKILLed** in the middle of a run: its tasks are retried on the survivors;
* an object whose node died is rebuilt from its **lineage** (the task that made it runs
  again), or read from a copy that survived.""",
    ),
    ("code", SETUP.replace("\nROOT", "\nimport runtime as ray\n\nROOT")),
    (
        "code",
        """\
import time

from runtime.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1})
node_b = cluster.add_node(num_cpus=1)
node_c = cluster.add_node(num_cpus=1)
for n in ray.nodes():
    print(f"node …{n['NodeID'][-4:]}  alive={n['Alive']}  CPU={n['Resources']['CPU']:g}")""",
    ),
    (
        "md",
        """\
What a task prints, on any node, reaches the driver prefixed with its worker, process,
node and address (as Ray prints `(pid=..., ip=...)`); `init(log_to_driver=False)` turns
that off.""",
    ),
    (
        "code",
        """\
@ray.remote(scheduling_strategy="SPREAD")
def hello(i):
    print(f"hello {i}")


ray.get([hello.remote(i) for i in range(3)])
time.sleep(1.0)  # the lines travel on their own, after the results""",
    ),
    (
        "md",
        """\
## Spillback: where 40 tasks ran

The driver submits to the head's raylet. With one CPU it runs what it can and, once its
queue is long, spills the rest to the global scheduler, which places them on the other
nodes. Each task returns the node it ran on.""",
    ),
    (
        "code",
        """\
from collections import Counter


@ray.remote
def where(i):
    time.sleep(0.05)
    return ray.get_runtime_context().get_node_id()[-4:]


ran = Counter(ray.get([where.remote(i) for i in range(40)]))
nodes = sorted(ran)
print({f"node …{n}": ran[n] for n in nodes})

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar([f"node …{n}" + (" (head)" if n == nodes[0] else "") for n in nodes], [ran[n] for n in nodes])
ax.set(ylabel="tasks run")
ax.set_title("Where 40 tasks submitted to the head ran")
plt.show()""",
    ),
    (
        "md",
        """\
## Killing a node in the middle of a run

Twelve one-second tasks, placed on the three nodes in turn (soft node affinity: a
preference, so a retry may go anywhere); half a second after C starts its first, C is
SIGKILLed (`remove_node(..., allow_graceful=False)`: a crash, not a goodbye). Its
connection closes, the GCS declares it dead, and the owner (the driver's, on the head)
retries the tasks that were running there on the nodes that are left. A small actor on
the head records when each attempt started and ended, so the plot shows every attempt:
those cut short on C and their retries.""",
    ),
    (
        "code",
        """\
from runtime.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)
class Attempts:
    def __init__(self):
        self.rows, self.t0 = [], time.time()

    def started(self, task, node):
        self.rows.append([task, node, time.time() - self.t0, None])
        return len(self.rows) - 1

    def ended(self, row):
        self.rows[row][3] = time.time() - self.t0

    def now(self):
        return time.time() - self.t0

    def all(self):
        return self.rows


head_id = ray.get_runtime_context().get_node_id()
attempts = Attempts.options(
    scheduling_strategy=NodeAffinitySchedulingStrategy(head_id, soft=False)
).remote()


@ray.remote(max_retries=3)
def work(i, log):
    row = ray.get(log.started.remote(i, ray.get_runtime_context().get_node_id()[-4:]))
    time.sleep(1.0)
    log.ended.remote(row)
    return i * i


ids = [n["NodeID"] for n in ray.nodes()]  # head, B, C


def on(i):
    return NodeAffinitySchedulingStrategy(ids[i % 3], soft=True)


refs = [work.options(scheduling_strategy=on(i)).remote(i, attempts) for i in range(12)]
c_id = ids[2][-4:]
deadline = time.monotonic() + 60
while not any(r[1] == c_id for r in ray.get(attempts.all.remote())) and time.monotonic() < deadline:
    time.sleep(0.05)  # until a task runs on C
time.sleep(0.5)
killed_at = ray.get(attempts.now.remote())
cluster.remove_node(node_c, allow_graceful=False)
assert ray.get(refs, timeout=120) == [i * i for i in range(12)]  # every result right
rows = ray.get(attempts.all.remote())
print(f"{len(rows)} attempts for 12 tasks; alive: {[n['Alive'] for n in ray.nodes()]}")""",
    ),
    (
        "code",
        """\
from matplotlib.patches import Patch

dead = next(n["NodeID"][-4:] for n in ray.nodes() if not n["Alive"])
palette = iter(["tab:blue", "tab:green"])
colors = {n: "tab:red" if n == dead else next(palette) for n in sorted({r[1] for r in rows})}
fig, ax = plt.subplots(figsize=(7, 3.5))
for task, node, start, end in rows:
    cut = end is None  # never ended: it was running on the killed node
    ax.barh(task, (end if not cut else killed_at) - start, left=start, color=colors[node],
            hatch="//" if cut else None, edgecolor="black", linewidth=0.3)
ax.axvline(killed_at, color="black", linestyle="--", linewidth=1)
ax.text(killed_at, -1.2, " node C killed", fontsize=8)
handles = [Patch(color=c, label=f"node …{n}" + (" (killed)" if n == dead else "")) for n, c in colors.items()]
handles.append(Patch(facecolor="white", hatch="//", edgecolor="black", label="cut short, retried"))
ax.set(xlabel="seconds since the first attempt", ylabel="task", ylim=(12, -2))
ax.set_title("Every attempt: the killed node's tasks ran again elsewhere")
ax.legend(handles=handles, fontsize=8, loc="upper right")
plt.show()""",
    ),
    (
        "md",
        """\
## An object whose node died: lineage reconstruction

Now a fresh node D joins, and a task makes a 8 MiB array there (soft affinity: D if it
can). Once the array is ready, D is killed, and the driver `get`s it. Ray keeps no copy
of an object by default: the owner re-runs the task that made it (its *lineage*) on a
live node. twinray pulls a value only when a `get` needs it, as Ray does, so the only
copy is on D: the attempts log shows `make` ran twice, the second time on a live node.""",
    ),
    (
        "code",
        """\
import numpy as np

known = {n["NodeID"] for n in ray.nodes()}
node_d = cluster.add_node(num_cpus=1)
d_id = next(n["NodeID"] for n in ray.nodes() if n["NodeID"] not in known)


@ray.remote(max_retries=3)
def make(log):
    ray.get(log.started.remote("make", ray.get_runtime_context().get_node_id()[-4:]))
    return np.arange(1 << 20, dtype=np.float64)


ref = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(d_id, soft=True)).remote(attempts)
ray.wait([ref], timeout=60)
cluster.remove_node(node_d, allow_graceful=False)
value = ray.get(ref, timeout=120)
runs = [r for r in ray.get(attempts.all.remote()) if r[0] == "make"]
print(f"sum {value.sum():.0f}; make ran {len(runs)} time(s), on node(s) {[r[1] for r in runs]}")""",
    ),
    (
        "code",
        "ray.shutdown()  # disconnect first: Ray's Cluster refuses to remove the head it is on\n"
        "cluster.shutdown()  # every node process stops",
    ),
]

THREE_ENGINES: list[Cell] = [
    (
        "md",
        """\
# 12. Three engines: one scenario simulated, run on twinray and run on Ray

A workload is written once (`sim/programs.py`: generator programs that say "submit a task
of this duration and output size", "wait for one to finish"), with every random draw made
from the scenario's seed. Three interpreters run it: the **simulator** (`sim`), twinray's
**real mode** (worker processes on this machine) and **Ray** itself, through its public API
only. The same durations, sizes and graph reach all three (`tests/test_engines.py` checks
it), so what differs is the engine. The command-line equivalent is
`run-scenario scenarios/small_independent.yaml --compare sim,real,ray --scale-down`.

The scenario: 600 exponential 2 ms tasks, 16 in flight, scaled down from 4 nodes to one
node of 2 CPUs (this machine's size, and where the stored Ray run below was made).""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from twin.stored_run import notebook_fit

fit = notebook_fit()
print(fit.note)
print(fit.scenario.workload)""",
    ),
    (
        "md",
        """\
## The simulator, twice

With its default control-plane costs the simulator models an idealised Ray. With the
profile `run-scenario --calibrate --engine ray` wrote
(`scenarios/calibration/ray_this_machine.yaml`: Ray's overheads measured on this machine by
micro-workloads, the simulator's costs fitted to them) it predicts Ray's runs here;
`reports/calibration/ray/report.md` has its prediction error on the shipped small
scenarios.""",
    ),
    (
        "code",
        """\
from sim.runner import run_scenario
from sim.scenario import load_scenario
from twin.real_mode import fit_to_machine
from twin.stored_run import OVERRIDES, SCENARIO

sim = run_scenario(fit.scenario)
profile = SCENARIOS / "calibration" / "ray_this_machine.yaml"
calibrated = load_scenario(SCENARIO, {**OVERRIDES, "control_plane.profile": str(profile)})
sim_ray = run_scenario(fit_to_machine(calibrated, scale_down=True, cpus=fit.cpus).scenario)
print(f"sim: {sim['throughput_tps']:,.0f} tasks/s; calibrated to Ray: {sim_ray['throughput_tps']:,.0f}")""",
    ),
    (
        "md",
        """\
## twinray's real mode

Task bodies sleep for their drawn durations and return outputs of the drawn sizes through
the real object store.""",
    ),
    (
        "code",
        """\
from twin.real_mode import run_real

real = run_real(fit.scenario, fit.cpus)
print(f"twinray: {real['throughput_tps']:,.0f} tasks/s")""",
    ),
    (
        "md",
        """\
## Ray

Where Ray is installed (the `peers` extra) this starts a local Ray (`address="local"`, so an
outside cluster is never used), runs the same program on it and shuts it down. Where it is
not (as on CI), it shows a stored run of this scenario on Ray, made on a machine with Ray
by `python -m twin.stored_run` (`reports/three_engines/ray_run.json`), and says so.""",
    ),
    (
        "code",
        """\
from twin.stored_run import ray_or_stored

ray_run = ray_or_stored(fit)
print(ray_run.label)
print(f"ray: {ray_run.metrics['throughput_tps']:,.0f} tasks/s")""",
    ),
    (
        "md",
        """\
## Side by side

One table and one set of plots (`twin.compare`, as `--compare` writes them): each metric
per engine, and each engine's relative difference to Ray, the last one. The idealised
simulator is far from Ray on a small, busy machine; calibrated to Ray, it lands near it.
Ray's tail latency on a loaded machine is longer than the model's: the calibration fits
the mean costs, not the scatter.""",
    ),
    (
        "code",
        """\
import tempfile

from IPython.display import Image, Markdown, display

from twin.compare import write_engines_comparison

runs = {"sim": sim, "sim (Ray-calibrated)": sim_ray, "twinray": real, "ray": ray_run.metrics}
out = Path(tempfile.mkdtemp())
text = write_engines_comparison(runs, out, "small_independent").read_text()
display(Markdown("\\n".join(line for line in text.splitlines() if not line.startswith("!["))))
for png in sorted(out.glob("*.png")):
    display(Image(filename=str(png)))""",
    ),
]


LESSONS: dict[str, list[Cell]] = {
    "01_tasks_and_actors.ipynb": TASKS_AND_ACTORS,
    "02_object_store.ipynb": OBJECT_STORE,
    "03_simulating_a_cluster.ipynb": SIMULATING,
    "04_scheduling_policies.ipynb": POLICIES,
    "05_sim_beside_real.ipynb": SIM_BESIDE_REAL,
    "06_tune_search.ipynb": TUNE_SEARCH,
    "07_reinforcement_learning.ipynb": REINFORCEMENT_LEARNING,
    "08_dataframes.ipynb": DATAFRAMES,
    "09_streaming_pipelines.ipynb": STREAMING,
    "10_inference_and_serving.ipynb": INFERENCE_SERVING,
    "11_cluster_on_one_machine.ipynb": CLUSTER_ON_ONE_MACHINE,
    "12_three_engines.ipynb": THREE_ENGINES,
}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook (python3 kernel, no outputs) from (kind, source) cells."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"c{i:02d}"
        nb.cells.append(cell)
    return nb


def kernel_env() -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH: the kernel imports its code."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def execute(path: Path) -> float:
    """Run the notebook at `path` in a fresh python3 kernel, write it back with its outputs.

    Returns the seconds it took; a failing cell raises nbclient's CellExecutionError.
    """
    import nbclient

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=EXECUTE_TIMEOUT_S,
        record_timing=False,  # no timestamps: a rebuild changes only what the lessons print
        resources={"metadata": {"path": str(HERE)}},
    )
    started = time.perf_counter()
    client.execute(env=kernel_env())
    nbformat.write(nb, path)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    """Write every lesson next to this file, let ruff sort and format the code, run each."""
    parser = argparse.ArgumentParser(prog="python notebooks/build.py", description=__doc__)
    parser.add_argument(
        "--no-execute", action="store_true", help="write the notebooks without running them"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=sorted(LESSONS), help="these lessons only"
    )
    args = parser.parse_args(argv)
    paths = []
    for name, cells in LESSONS.items():
        if args.only and name not in args.only:
            continue
        nbformat.write(build(cells), HERE / name)
        paths.append(str(HERE / name))
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "check", "--fix", "--quiet", *paths], check=False)
    subprocess.run([*ruff, "format", "--quiet", *paths], check=False)
    for path in paths:
        took = "" if args.no_execute else f"  (executed in {execute(Path(path)):.1f} s)"
        print(f"{path}{took}", flush=True)


if __name__ == "__main__":
    main()
