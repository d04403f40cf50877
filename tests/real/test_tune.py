"""runtime.tune on the real runtime: scheduler decisions, pausing, resources, budgets, restore, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

import runtime as ray
from runtime import tune
from runtime.core.tune.schedulers import CONTINUE, PAUSE, STOP, FIFOScheduler
from runtime.tune.progress import render_html, render_text


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


def _rc(tmp_path: Any, name: str, **kwargs: Any) -> tune.RunConfig:
    return tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0, **kwargs)


def _curve(config: dict[str, Any], step: int) -> float:
    return config["quality"] * (1 - 0.5 ** (step + 1))


def _curved(config: dict[str, Any]) -> None:
    for step in range(9):
        tune.report({"acc": _curve(config, step)})


def test_asha_real_run_takes_the_replayed_decisions(cluster, tmp_path):
    qualities = [0.3, 0.9, 0.1, 0.5, 0.8, 0.2, 0.95, 0.4]

    def scheduler() -> tune.schedulers.ASHAScheduler:
        return tune.schedulers.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)

    grid = tune.Tuner(
        _curved,
        param_space={"quality": tune.grid_search(qualities)},
        tune_config=tune.TuneConfig(
            metric="acc", mode="max", scheduler=scheduler(), max_concurrent_trials=1
        ),
        run_config=_rc(tmp_path, "asha"),
    ).fit()
    real = {r.config["quality"]: r.metrics["training_iteration"] for r in grid}
    # the same curves, in the same (sequential) order, fed to the core scheduler directly
    replay = scheduler()
    replay.set_search_properties("acc", "max")
    expected = {}
    for i, quality in enumerate(qualities):
        replay.on_trial_add(str(i))
        for step in range(9):
            result = {"acc": _curve({"quality": quality}, step), "training_iteration": step + 1}
            if replay.on_trial_result(str(i), result) == STOP:
                replay.on_trial_complete(str(i), result)
                break
        expected[quality] = step + 1
    assert real == expected
    assert min(real.values()) < 9 and max(real.values()) == 9
    assert grid.get_best_result().config["quality"] == 0.95


class _Counter(tune.Trainable):
    def setup(self, config):
        self.count = 0
        self.restored = 0

    def step(self):
        self.count += 1
        return {"count": self.count, "restored": self.restored}

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]
        self.restored += 1


class _PauseFirstTrialOnce(FIFOScheduler):
    def __init__(self):
        super().__init__()
        self.paused: set[str] = set()

    def on_trial_result(self, trial_id, result, trials_waiting=False):
        if result["training_iteration"] == 2 and not self.paused:
            self.paused.add(trial_id)
            return PAUSE
        return CONTINUE


def test_pause_checkpoints_and_resumes(cluster, tmp_path):
    grid = tune.Tuner(
        _Counter,
        param_space={"i": tune.grid_search([0, 1])},
        tune_config=tune.TuneConfig(scheduler=_PauseFirstTrialOnce(), max_concurrent_trials=1),
        run_config=_rc(tmp_path, "pause", stop={"training_iteration": 4}),
    ).fit()
    by_i = {r.config["i"]: r for r in grid}
    assert all(r.metrics["count"] == 4 and r.metrics["training_iteration"] == 4 for r in grid)
    assert by_i[0].metrics["restored"] == 1 and by_i[1].metrics["restored"] == 0
    with open(os.path.join(by_i[0].path, "result.json")) as f:
        assert [json.loads(x)["training_iteration"] for x in f] == [1, 2, 3, 4]


def _intervals(config):
    start = time.time()
    tune.report({"x": 1})
    with open(os.path.join(config["dir"], f"{tune.get_context().get_trial_id()}.json"), "w") as f:
        json.dump([start, time.time()], f)


def _overlaps(directory: str) -> bool:
    spans = []
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                spans.append(json.load(f))
    spans.sort()
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_with_resources_runs_two_cpu_trials_one_at_a_time(cluster, tmp_path):
    spans = tmp_path / "spans"
    spans.mkdir()
    grid = tune.Tuner(
        tune.with_resources(_intervals, {"cpu": 2}),
        param_space={"dir": str(spans), "k": tune.grid_search([1, 2, 3])},
        run_config=_rc(tmp_path, "res"),
    ).fit()
    assert grid.num_terminated == 3
    assert not _overlaps(str(spans))


def test_infeasible_resources_raise_before_running(cluster, tmp_path):
    with pytest.raises(tune.InfeasibleTrialError, match="could never start"):
        tune.Tuner(
            tune.with_resources(_intervals, {"cpu": 3}),
            param_space={"dir": str(tmp_path)},
            run_config=_rc(tmp_path, "infeasible"),
        ).fit()
    with pytest.raises(tune.InfeasibleTrialError):
        tune.run(
            _intervals,
            config={"dir": str(tmp_path)},
            resources_per_trial={"gpu": 1},
            storage_path=str(tmp_path),
            name="infeasible2",
            verbose=0,
        )


def _forever(config):
    while True:
        tune.report({"t": time.time()})
        time.sleep(0.05)


def test_time_budget_stops_running_trials(cluster, tmp_path):
    began = time.monotonic()
    grid = tune.Tuner(
        _forever,
        tune_config=tune.TuneConfig(time_budget_s=1.5),
        run_config=_rc(tmp_path, "budget"),
    ).fit()
    # The trial never ends by itself: only the budget stops it. (On a loaded machine it may
    # not have reported before the budget ran out, so its metrics may be empty.)
    assert time.monotonic() - began < 60
    assert grid.num_terminated == 1 and grid.num_errors == 0
    assert grid[0].metrics.get("training_iteration", 1) >= 1


def _interruptible(config):
    checkpoint = tune.get_checkpoint()
    start = 0
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "i")) as f:
            start = int(f.read()) + 1
    for i in range(start, 4):
        ckpt_dir = os.path.join(config["dir"], f"{config['k']}_{i}")
        os.makedirs(ckpt_dir, exist_ok=True)
        with open(os.path.join(ckpt_dir, "i"), "w") as f:
            f.write(str(i))
        tune.report({"i": i, "start": start}, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))


INTERRUPT = {"armed": True}


def _interrupt_at_k1_i2(trial_id, result):
    if INTERRUPT["armed"] and result["config"]["k"] == 1 and result["i"] == 2:
        INTERRUPT["armed"] = False
        raise KeyboardInterrupt
    return False


def test_restore_resumes_unfinished_trials(cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    tuner = tune.Tuner(
        _interruptible,
        param_space={"k": tune.grid_search([0, 1, 2]), "dir": str(work)},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=_rc(tmp_path, "restore", stop=_interrupt_at_k1_i2),
    )
    with pytest.raises(KeyboardInterrupt):
        tuner.fit()
    path = str(tmp_path / "restore")
    assert tune.Tuner.can_restore(path)
    grid = tune.Tuner.restore(path, _interruptible).fit()
    by_k = {r.config["k"]: r for r in grid}
    assert sorted(by_k) == [0, 1, 2]
    assert all(r.metrics["i"] == 3 and r.error is None for r in grid)
    assert by_k[0].metrics["start"] == 0  # finished before: kept, not rerun
    assert by_k[1].metrics["start"] == 3  # resumed after its checkpoint of i=2
    assert by_k[2].metrics["start"] == 0
    with open(os.path.join(by_k[0].path, "result.json")) as f:
        assert len(f.readlines()) == 4


def test_bad_search_space_and_settings(cluster, tmp_path):
    with pytest.raises(tune.SearchSpaceError):
        tune.Tuner(_curved, param_space={"q": {"grid_search": 3}}).fit()
    with pytest.raises(tune.TuneError, match="num_samples"):
        tune.TuneConfig(num_samples=0)
    with pytest.raises(tune.TuneError, match="stop"):
        tune.Tuner(_curved, run_config=_rc(tmp_path, "badstop", stop=3)).fit()
    with pytest.raises(tune.TuneError, match="Trainable"):
        tune.Tuner(dict)
    with pytest.raises(tune.TuneError, match="not in the result"):
        tune.Tuner(
            _curved,
            param_space={"quality": 1.0},
            run_config=_rc(tmp_path, "badkey", stop={"acuracy": 1}),
        ).fit()
    with pytest.raises(tune.TuneError, match="already instantiated"):
        tune.Tuner(
            _curved,
            tune_config=tune.TuneConfig(
                metric="acc",
                mode="max",
                scheduler=tune.schedulers.ASHAScheduler(metric="a", mode="min"),
            ),
        ).fit()


def test_metric_missing_names_reported_keys(cluster, tmp_path):
    with pytest.raises(tune.MetricNotReportedError) as info:
        tune.Tuner(
            _curved,
            param_space={"quality": 1.0},
            tune_config=tune.TuneConfig(metric="accuracy", mode="max"),
            run_config=_rc(tmp_path, "missing"),
        ).fit()
    assert "accuracy" in str(info.value) and "'acc'" in str(info.value)


def test_report_outside_a_trial():
    with pytest.raises(tune.TuneSessionError, match="outside a Tune trial"):
        tune.report({"x": 1})
    with pytest.raises(tune.TuneSessionError):
        tune.get_checkpoint()


def _tracked(config):
    for i in range(2):
        tune.track.log(score=i * config["m"])


def test_track_log_and_num_to_keep(cluster, tmp_path):
    analysis = tune.run(
        _tracked,
        config={"m": tune.choice([5])},
        num_samples=2,
        metric="score",
        mode="max",
        storage_path=str(tmp_path),
        name="track",
        verbose=0,
    )
    assert len(analysis.trials) == 2
    assert analysis.best_result["score"] == 5

    grid = tune.Tuner(
        _Counter,
        run_config=_rc(
            tmp_path,
            "keep",
            stop={"training_iteration": 5},
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_frequency=1),
        ),
    ).fit()
    kept = sorted(n for n in os.listdir(grid[0].path) if n.startswith("checkpoint_"))
    assert kept == ["checkpoint_000003", "checkpoint_000004"]
    assert grid[0].checkpoint.path.endswith("checkpoint_000004")


def test_failing_tune_run_raises_after_finishing(cluster, tmp_path):
    def bad(config):
        raise ZeroDivisionError("nope")

    with pytest.raises(tune.TuneError, match="Trials did not complete"):
        tune.run(bad, storage_path=str(tmp_path), name="bad", verbose=0)
    analysis = tune.run(
        bad, storage_path=str(tmp_path), name="bad2", verbose=0, raise_on_failed_trial=False
    )
    assert "ZeroDivisionError" in next(iter(analysis.errors.values()))


def test_status_table_text_and_html(cluster, tmp_path, capsys):
    grid = tune.Tuner(
        _curved,
        param_space={"quality": tune.grid_search([0.1, 0.2])},
        tune_config=tune.TuneConfig(metric="acc", mode="max"),
        run_config=tune.RunConfig(name="table", storage_path=str(tmp_path), verbose=1),
    ).fit()
    out = capsys.readouterr().out
    assert "Trial status: 2 TERMINATED" in out
    assert "quality" in out and "acc" in out
    trials = grid._trials
    text = render_text(trials, "acc")
    assert text.count("TERMINATED") == 3  # the summary line and the two rows
    assert "<table>" in render_html(trials, "acc") and "_curved_" in render_html(trials, "acc")


def test_importing_tune_stays_light():
    code = (
        "import sys, runtime; assert 'runtime.tune' not in sys.modules; "
        "from runtime import tune; assert 'pandas' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_readme_tune_example_runs_and_prints_what_it_says():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "tune.Tuner" in b)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "{'x': 3} 0.0"


def _pbt_trainable(config):
    import tempfile

    checkpoint = tune.get_checkpoint()
    value = 0.0
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "value")) as f:
            value = float(f.read())
    while True:
        value += config["lr"]
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "value"), "w") as f:
                f.write(repr(value))
            tune.report(
                {"value": value, "lr": config["lr"]}, checkpoint=tune.Checkpoint.from_directory(tmp)
            )


def test_pbt_exploits_top_trials_checkpoints(cluster, tmp_path):
    pbt = tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [0.1, 0.5, 1.0, 2.0]},
        rng=__import__("random").Random(0),
    )
    grid = tune.Tuner(
        _pbt_trainable,
        param_space={"lr": tune.grid_search([0.1, 0.5, 1.0, 2.0])},
        tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
        run_config=_rc(tmp_path, "pbt", stop={"training_iteration": 8}),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 4
    assert pbt.num_perturbations > 0
    assert all(r.metrics["training_iteration"] == 8 for r in grid)
    # an exploited trial resumed from a better trial's value: the weakest start did better
    # than its own lr alone would give (8 * 0.1)
    weakest = next(r for r in grid if r.metrics["experiment_tag"] == "0")
    assert weakest.metrics["value"] > 8 * 0.1 + 1e-9


def _no_checkpoints(config):
    # lockstep: report i+1 only once the other trial's report i was taken by the runner, so
    # the low trial always reports while the high one has a score (PBT then tries to clone)
    other = 1.0 if config["lr"] == 0.1 else 0.1
    for i in range(1, 4):
        if i > 1:
            marker = os.path.join(config["dir"], f"{other}_{i - 1}")
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.01)
        tune.report({"value": config["lr"]})
        open(os.path.join(config["dir"], f"{config['lr']}_{i}"), "w").close()


def test_pbt_warns_when_trials_never_checkpoint(cluster, tmp_path):
    pbt = tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=1,
        hyperparam_mutations={"lr": [0.1, 1.0]},
    )
    with pytest.warns(UserWarning, match="no checkpoint for trial"):
        grid = tune.Tuner(
            _no_checkpoints,
            param_space={"lr": tune.grid_search([0.1, 1.0]), "dir": str(tmp_path)},
            tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
            run_config=_rc(tmp_path, "pbt_nockpt", stop={"training_iteration": 3}),
        ).fit()
    assert grid.num_terminated == 2 and pbt.num_perturbations == 0


class _Curve(tune.Trainable):
    def setup(self, config):
        self.quality = config["quality"]
        self.t = 0

    def step(self):
        self.t += 1
        return {"acc": self.quality * (1 - 0.7**self.t)}

    def save_checkpoint(self, checkpoint_dir):
        return {"t": self.t}

    def load_checkpoint(self, checkpoint):
        self.t = checkpoint["t"]


def test_hyperband_pauses_halves_and_stops(cluster, tmp_path):
    qualities = [0.1, 0.9, 0.4, 0.7, 0.2, 0.6, 0.3, 0.8, 0.5]
    hb = tune.schedulers.HyperBandScheduler(max_t=9, reduction_factor=3)
    grid = tune.Tuner(
        _Curve,
        param_space={"quality": tune.grid_search(qualities)},
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=hb),
        run_config=_rc(tmp_path, "hyperband"),
    ).fit()
    assert grid.num_errors == 0 and grid.num_terminated == len(qualities)
    iters = {r.config["quality"]: r.metrics["training_iteration"] for r in grid}
    assert hb.num_stopped > 0 and min(iters.values()) < 9
    assert iters[0.9] == 9  # the best survives every halving
    for result in grid:  # paused trials resumed from their checkpoints: no iteration repeats
        with open(os.path.join(result.path, "result.json")) as f:
            seen = [json.loads(x)["training_iteration"] for x in f]
        assert seen == list(range(1, len(seen) + 1))


def _with_data(config, data):
    tune.report({"total": sum(data) * config["k"]})


def test_with_parameters_and_best_result_errors(cluster, tmp_path):
    grid = tune.Tuner(
        tune.with_parameters(_with_data, data=list(range(10))),
        param_space={"k": tune.grid_search([1, 2])},
        run_config=_rc(tmp_path, "withparams"),
    ).fit()
    assert sorted(r.metrics["total"] for r in grid) == [45, 90]
    with pytest.raises(tune.TuneError, match="No metric is provided"):
        grid.get_best_result()
    with pytest.raises(tune.TuneError, match="No best trial found"):
        grid.get_best_result(metric="nope", mode="max")
    with pytest.raises(tune.TuneError, match="scope"):
        grid.get_best_result(metric="total", mode="max", scope="median")
    assert grid.get_best_result(metric="total", mode="max", scope="avg").config["k"] == 2
