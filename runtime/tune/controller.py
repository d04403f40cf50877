"""The trial runner: Tune's controller loop on twinray's public API (the only host-side part).

It asks the searcher for configs, starts each trial as an actor when its resources are
free, feeds every reported result to the core scheduler and searcher objects and carries
out their decisions (CONTINUE: ask for the next result; PAUSE: checkpoint, free the
actor; STOP: finish the trial). Failed trials are retried from their last checkpoint up
to ``max_failures`` times, then marked ERROR while the others go on. Results are written
as Ray writes them, and the experiment's state after every change, so
``Tuner.restore`` can resume it.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import runtime
from runtime.core.tune.pbt import PopulationBasedTraining
from runtime.core.tune.schedulers import (
    CONTINUE,
    DEFAULT_METRIC,
    ERROR,
    NOOP,
    PAUSE,
    PAUSED,
    PENDING,
    RUNNING,
    STOP,
    TERMINATED,
    ExploitRequest,
    Notice,
    SaveRequest,
    StopRequest,
    TrialScheduler,
    TrialView,
)
from runtime.core.tune.searcher import FINISHED, Searcher
from runtime.tune.callback import Callback, CallbackList
from runtime.tune.checkpoint import Checkpoint
from runtime.tune.config import CheckpointConfig, FailureConfig
from runtime.tune.errors import InfeasibleTrialError, MetricNotReportedError, TuneError
from runtime.tune.progress import ProgressReporter
from runtime.tune.results_io import ResultLog, flatten, write_params
from runtime.tune.session import TrialStart
from runtime.tune.stopper import Stopper
from runtime.tune.trainable import TrialActor

STATE_FILE = "experiment_state.pkl"

#: Result keys that every result has; a result with only these reported no metric yet.
AUTO_KEYS = frozenset(
    {
        "done",
        "timestamp",
        "checkpoint_dir_name",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "time_since_restore",
        "iterations_since_restore",
        "experiment_tag",
    }
)


@dataclass
class Trial:
    """One trial: its config, status, results so far, checkpoints and failures."""

    trial_id: str
    index: int
    trainable_name: str
    config: dict[str, Any]
    path: str
    resources: dict[str, float]
    status: str = PENDING
    last_result: dict[str, Any] = field(default_factory=dict)
    metric_history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    num_failures: int = 0
    placement: Any = None
    """The trial's tune.PlacementGroupFactory (None: plain actor resources)."""
    placement_group: Any = None
    error: BaseException | None = None
    error_msg: str | None = None
    next_checkpoint_index: int = 0
    actor: Any = None
    log: ResultLog | None = None

    @property
    def trial_name(self) -> str:
        """Ray's trial name: ``<trainable>_<trial_id>``."""
        return f"{self.trainable_name}_{self.trial_id}"

    @property
    def local_path(self) -> str:
        """The trial's results directory (Ray's name)."""
        return self.path

    @property
    def latest_checkpoint(self) -> tuple[str, dict[str, Any]] | None:
        """(directory, result) of the newest checkpoint kept, or None."""
        return self.checkpoints[-1] if self.checkpoints else None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["actor"] = None
        state["log"] = None
        state["placement_group"] = None
        state["error"] = None  # a remote error's class may not pickle; error_msg stays
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.error_msg is not None and self.status == ERROR:
            self.error = TuneError(self.error_msg)

    def __repr__(self) -> str:
        return self.trial_name


@dataclass
class ExperimentState:
    """What ``experiment_state.pkl`` holds: the trials and how far the searcher got."""

    trials: list[Trial]
    created: int
    searcher_finished: bool
    experiment_id: str


class TuneController:
    """Runs an experiment's trials to the end (see the module docstring)."""

    def __init__(
        self,
        *,
        trainable: Any,
        trainable_name: str,
        is_class: bool,
        resources: dict[str, float],
        searcher: Searcher,
        max_trials: int | None,
        scheduler: TrialScheduler,
        stopper: Stopper,
        experiment_dir: str,
        experiment_name: str,
        metric: str | None,
        time_budget_s: float | None,
        checkpoint_config: CheckpointConfig,
        failure_config: FailureConfig,
        verbose: int,
        state: ExperimentState | None = None,
        callbacks: list[Callback] | None = None,
        num_samples: int | None = None,
        placement: Any = None,
        reuse_actors: bool = False,
    ) -> None:
        self.trainable_name = trainable_name
        self.is_class = is_class
        self.resources = resources
        self.searcher = searcher
        self.max_trials = max_trials
        self.scheduler = scheduler
        self.stopper = stopper
        self.experiment_dir = experiment_dir
        self.experiment_name = experiment_name
        self.metric = metric
        self.time_budget_s = time_budget_s
        self.checkpoint_config = checkpoint_config
        self.failure_config = failure_config
        self.reporter = ProgressReporter(verbose, metric)
        self.trials: list[Trial] = []
        self.created = 0
        self.searcher_finished = False
        self.experiment_id = uuid.uuid4().hex[:5]
        if state is not None:
            self.trials = state.trials
            self.created = state.created
            self.searcher_finished = state.searcher_finished
            self.experiment_id = state.experiment_id
        self._trainable = trainable
        self._trainable_ref: Any = None
        self._actor_class: Any = None
        self._futures: dict[Any, tuple[Trial, str]] = {}
        self._used: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._state_written = 0.0
        self._fatal: BaseException | None = None
        self._notices: set[str] = set()
        self.callbacks = CallbackList(callbacks or [])
        self.placement = placement
        self.reuse_actors = reuse_actors
        # actors of finished or paused trials kept for the next trial (reuse_actors), with
        # their placement groups; they keep holding their resources
        self._cached: list[tuple[Any, Any]] = []
        self.num_samples = num_samples
        self.iteration = 0

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> list[Trial]:
        """Run every trial to TERMINATED or ERROR (or the budget's end); the trials."""
        os.makedirs(self.experiment_dir, exist_ok=True)
        self._total = {k: float(v) for k, v in runtime.cluster_resources().items()}
        self._check_feasible(self.resources)
        if self.placement is not None:
            self._check_placeable(self.placement)
        self._trainable_ref = runtime.put(self._trainable)
        self._actor_class = runtime.remote(TrialActor)
        for trial in self.trials:
            if trial.status in (PENDING, PAUSED):
                self._scheduler_add(trial)
        self.callbacks.setup(
            stop=self.stopper, num_samples=self.num_samples, total_num_samples=self.max_trials
        )
        started = time.monotonic()
        try:
            while True:
                self.callbacks.on_step_begin(iteration=self.iteration, trials=self.trials)
                self._start_trials()
                if not self._futures:
                    break  # nothing runs and nothing more could start
                timeout = 1.0 if self.reporter.live else None
                if self.time_budget_s is not None:
                    left = max(0.0, self.time_budget_s - (time.monotonic() - started))
                    timeout = left if timeout is None else min(timeout, left)
                if self._futures:
                    ready, _ = runtime.wait(list(self._futures), num_returns=1, timeout=timeout)
                    for ref in ready:
                        self._handle(ref)
                if self._fatal is not None:
                    raise self._fatal
                over_budget = (
                    self.time_budget_s is not None
                    and time.monotonic() - started >= self.time_budget_s
                )
                if over_budget or self.stopper.stop_all():
                    self._stop_all()
                    break
                self.reporter.maybe_report(self.trials)
                self._write_state(force=False)
                self.iteration += 1
                self.callbacks.on_step_end(iteration=self.iteration, trials=self.trials)
        finally:
            self._shutdown_actors()
            self._write_state(force=True)
        self.callbacks.on_experiment_end(trials=self.trials)
        self.reporter.report_final(self.trials)
        return self.trials

    def _waiting(self) -> list[Trial]:
        return [t for t in self.trials if t.status in (PENDING, PAUSED)]

    def _can_add_trial(self) -> bool:
        if self.searcher_finished:
            return False
        return self.max_trials is None or self.created < self.max_trials

    # ---- starting trials --------------------------------------------------------------------

    def _check_feasible(self, resources: dict[str, float]) -> None:
        for name, amount in resources.items():
            if amount > self._total.get(name, 0.0):
                raise InfeasibleTrialError(
                    f"a trial asks for {resources!r} but the cluster has only "
                    f"{ {k: v for k, v in self._total.items() if k in resources}!r}: "
                    f"it could never start. Lower resources_per_trial / tune.with_resources "
                    f"or start runtime with more resources (runtime.init(num_cpus=...))."
                )

    def _check_placeable(self, placement: Any) -> None:
        """InfeasibleTrialError when no node set could ever hold the trials' bundles."""
        nodes = [n["Resources"] for n in runtime.nodes() if n.get("Alive")]

        def fits(bundle: dict[str, float], node: dict[str, float]) -> bool:
            return all(node.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items())

        bundles = placement.bundles
        problem = None
        if not all(any(fits(b, n) for n in nodes) for b in bundles):
            problem = "a bundle fits on no node"
        elif placement.strategy == "STRICT_PACK" and not any(
            fits(placement.required_resources, n) for n in nodes
        ):
            problem = "STRICT_PACK needs all bundles on one node, and none has room for them"
        elif placement.strategy == "STRICT_SPREAD" and len(bundles) > len(nodes):
            problem = f"STRICT_SPREAD needs {len(bundles)} nodes, the cluster has {len(nodes)}"
        if problem:
            raise InfeasibleTrialError(
                f"a trial asks for the placement group {placement!r} but {problem}: it could "
                "never start. Change the bundles or start runtime with more resources."
            )

    def _fits(self, resources: dict[str, float]) -> bool:
        return all(
            self._used.get(k, 0.0) + v <= self._total.get(k, 0.0) + 1e-9
            for k, v in resources.items()
        )

    def _add_trial(self) -> bool:
        """Ask the searcher for one more trial; whether one was added."""
        if not self._can_add_trial():
            return False
        trial_id = f"{self.experiment_id}_{self.created:05d}"
        suggestion = self.searcher.suggest(trial_id)
        if suggestion == FINISHED:
            self.searcher_finished = True
            return False
        if suggestion is None:
            return False
        if not isinstance(suggestion, dict):
            raise TuneError(f"the searcher suggested {suggestion!r}, not a config dict")
        index = self.created
        self.created += 1
        date = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        dirname = f"{self.trainable_name}_{trial_id}_{index}_{date}"
        trial = Trial(
            trial_id=trial_id,
            index=index,
            trainable_name=self.trainable_name,
            config=suggestion,
            path=os.path.join(self.experiment_dir, dirname),
            resources=dict(self.resources),
            placement=self.placement,
        )
        self._scheduler_add(trial)
        write_params(trial.path, trial.config)
        self.trials.append(trial)
        return True

    def _scheduler_add(self, trial: Trial) -> None:
        if isinstance(self.scheduler, PopulationBasedTraining):
            self.scheduler.on_trial_add(trial.trial_id, trial.config)  # fills mutated keys
        else:
            self.scheduler.on_trial_add(trial.trial_id)

    def _start_trials(self) -> None:
        while True:
            waiting = self._waiting()
            if not any(t.status == PENDING for t in waiting) and self._add_trial():
                waiting = self._waiting()
            if not waiting:
                if self._cached and not self._can_add_trial():
                    self._drop_cached()  # no trial will ever take them
                return
            views = [TrialView(t.trial_id, t.status) for t in waiting]
            chosen = self.scheduler.choose_trial_to_run(views)
            if chosen is None:
                return
            trial = next(t for t in waiting if t.trial_id == chosen)
            if not self._cached and not self._fits(trial.resources):
                return
            self._launch(trial)

    def _drop_cached(self) -> None:
        """Kill the cached actors once no trial can take them (reuse_actors)."""
        cached, self._cached = self._cached, []
        for actor, group in cached:
            try:
                runtime.kill(actor)
            except Exception:  # the runtime may already be shut down
                pass
            if group is not None:
                from runtime.util.placement_group import remove_placement_group

                try:
                    remove_placement_group(group)
                except Exception:
                    pass
            for name, amount in self.resources.items():
                self._used[name] = self._used.get(name, 0.0) - amount

    def _launch(self, trial: Trial) -> None:
        latest = trial.latest_checkpoint
        start = TrialStart(
            trial_id=trial.trial_id,
            trial_name=trial.trial_name,
            trial_dir=trial.path,
            experiment_name=self.experiment_name,
            experiment_tag=str(trial.index),
            checkpoint_path=os.path.join(trial.path, latest[0]) if latest else None,
            start_iteration=int(latest[1].get("training_iteration", 0)) if latest else 0,
            start_time_total=float(latest[1].get("time_total_s", 0.0)) if latest else 0.0,
            next_checkpoint_index=trial.next_checkpoint_index,
            checkpoint_frequency=self.checkpoint_config.checkpoint_frequency
            if self.is_class
            else 0,
        )
        if self._cached:  # reuse_actors: the actor of a finished trial runs this one
            trial.actor, trial.placement_group = self._cached.pop()
            if trial.log is None:
                trial.log = ResultLog(trial.path)
            self.callbacks.on_trial_start(iteration=self.iteration, trials=self.trials, trial=trial)
            trial.status = RUNNING
            ref = trial.actor.reset.remote(trial.config, start)
            self._futures[ref] = (trial, "reset")
            return
        if trial.placement is not None:
            # Ray's rule: the trainable runs in bundle 0; the group captures its children
            trial.placement_group = trial.placement.to_placement_group()
            options = trial.placement.actor_options(trial.placement_group)
        else:
            options = {"num_cpus": trial.resources.get("CPU", 1.0)}
            if trial.resources.get("GPU"):
                options["num_gpus"] = trial.resources["GPU"]
            custom = {k: v for k, v in trial.resources.items() if k not in ("CPU", "GPU")}
            if custom:
                options["resources"] = custom
        trial.actor = self._actor_class.options(**options).remote(
            self._trainable_ref, trial.config, start
        )
        for name, amount in trial.resources.items():
            self._used[name] = self._used.get(name, 0.0) + amount
        if trial.log is None:
            trial.log = ResultLog(trial.path)
        self.callbacks.on_trial_start(iteration=self.iteration, trials=self.trials, trial=trial)
        trial.status = RUNNING
        if latest:
            self.callbacks.on_trial_restore(
                iteration=self.iteration, trials=self.trials, trial=trial
            )
        self._request(trial, "train")

    def _request(self, trial: Trial, method: str) -> None:
        ref = getattr(trial.actor, method).remote()
        self._futures[ref] = (trial, method)

    def _wanted(self, trial: Trial) -> bool:
        """Whether another trial could take ``trial``'s actor (waiting, or still to come)."""
        others_wait = any(t.status in (PENDING, PAUSED) and t is not trial for t in self.trials)
        return others_wait or self._can_add_trial()

    def _release(self, trial: Trial, graceful: bool) -> None:
        if trial.actor is None:
            return
        for ref in [r for r, (t, _) in self._futures.items() if t is trial]:
            del self._futures[ref]
        if graceful and self.reuse_actors and self._wanted(trial):
            self._cached.append((trial.actor, trial.placement_group))  # Ray: cache, no stop
            trial.actor = None
            trial.placement_group = None
            return
        if graceful and self.is_class:
            try:
                runtime.get(trial.actor.stop.remote(), timeout=60)
            except Exception:  # cleanup failing must not fail the run
                pass
        runtime.kill(trial.actor)
        trial.actor = None
        if trial.placement_group is not None:
            from runtime.util.placement_group import remove_placement_group

            remove_placement_group(trial.placement_group)
            trial.placement_group = None
        for name, amount in trial.resources.items():
            self._used[name] = self._used.get(name, 0.0) - amount

    # ---- results and decisions --------------------------------------------------------------

    def _handle(self, ref: Any) -> None:
        entry = self._futures.pop(ref, None)
        if entry is None:
            return
        trial, method = entry
        try:
            value = runtime.get(ref)
        except Exception as exc:  # the trial failed: its trainable raised or its actor died
            self._on_failure(trial, exc)
            return
        if method == "train":
            self._on_train(trial, value)
        elif method == "reset":
            self._on_reset(trial, value)

    def _on_reset(self, trial: Trial, ok: bool) -> None:
        """A reused actor took the trial (or could not: Ray fails the trial then)."""
        if ok:
            if trial.latest_checkpoint:
                self.callbacks.on_trial_restore(
                    iteration=self.iteration, trials=self.trials, trial=trial
                )
            self._request(trial, "train")
            return
        self._release(trial, graceful=False)
        exc = TuneError(
            "Trainable runner reuse requires reset_config() to be implemented and return True."
        )
        self._write_error(trial, exc)
        self.scheduler.on_trial_error(trial.trial_id)
        self.searcher.on_trial_complete(trial.trial_id, error=True)
        self._mark_error(trial, exc)
        self.callbacks.on_trial_error(iteration=self.iteration, trials=self.trials, trial=trial)

    def _validate_metric(self, trial: Trial, flat: dict[str, Any]) -> None:
        reported = [k for k in flat if k not in AUTO_KEYS and not k.startswith("config/")]
        if not reported:
            return
        candidates = [
            (self.metric, "tune.TuneConfig()"),
            (self.scheduler.metric, type(self.scheduler).__name__),
            (self.searcher.metric, type(self.searcher).__name__),
        ]
        for metric, location in candidates:
            if metric and metric != DEFAULT_METRIC and metric not in flat:
                raise MetricNotReportedError(location, metric, reported)

    def _on_train(self, trial: Trial, value: dict[str, Any]) -> None:
        if value.get("done") and "result" not in value:
            trial.last_result["done"] = True
            self._complete(trial)
            return
        result: dict[str, Any] = value["result"]
        flat = flatten(result)
        try:
            self._validate_metric(trial, flat)
        except MetricNotReportedError as exc:
            self._fatal = exc
            return
        trial.last_result = result
        trial.metric_history.append({k: v for k, v in flat.items() if not k.startswith("config/")})
        assert trial.log is not None
        trial.log.append(result)
        if value.get("checkpoint"):
            # callbacks hear of it after the result, as in Ray
            self._register_checkpoint(trial, value["checkpoint"], result, notify=False)
        if self.reporter.verbose >= 3:
            self.reporter.report_result(trial, result)
        if result.get("done") or self.stopper(trial.trial_id, result):
            decision = STOP
        else:
            waiting = any(t.status in (PENDING, PAUSED) for t in self.trials)
            decision = self.scheduler.on_trial_result(trial.trial_id, flat, trials_waiting=waiting)
        if decision != STOP:
            self.searcher.on_trial_result(trial.trial_id, flat)
        else:
            result["done"] = True
        self.callbacks.on_trial_result(
            iteration=self.iteration, trials=self.trials, trial=trial, result=result
        )
        if value.get("checkpoint") and os.path.isdir(os.path.join(trial.path, value["checkpoint"])):
            self._notify_checkpoint(trial, value["checkpoint"])
        self._carry_out_requests()
        if decision == NOOP or trial.status != RUNNING:
            return  # the scheduler acted on the trial itself (PBT's exploit restarted it)
        if decision == STOP:
            result["done"] = True
            self._complete(trial)
        elif decision == PAUSE:
            self._pause(trial)
        elif decision == CONTINUE:
            self._request(trial, "train")
        else:
            raise TuneError(f"{type(self.scheduler).__name__} decided {decision!r}")

    def _carry_out_requests(self) -> None:
        """Do what the scheduler asked besides its decision: saves, exploits, notices.

        Answering a save may queue more (synchronous PBT exploits once its saves are in),
        so the queue is drained until it is empty.
        """
        while requests := self.scheduler.take_requests():
            for request in requests:
                self._carry_out(request)

    def _carry_out(self, request: Any) -> None:
        """One request of the scheduler's."""
        if isinstance(request, SaveRequest):
            source = self._by_id(request.trial_id)
            path = None
            try:
                self._save_now(source)
            except Exception as exc:  # a failing save fails the trial
                self._on_failure(source, exc)
            if source.latest_checkpoint is not None:
                path = os.path.join(source.path, source.latest_checkpoint[0])
            self.scheduler.on_trial_saved(request.trial_id, path)
        elif isinstance(request, ExploitRequest):
            self._exploit(request)
        elif isinstance(request, StopRequest):
            self._stop_waiting(self._by_id(request.trial_id))
        elif isinstance(request, Notice):
            if request.message not in self._notices:
                self._notices.add(request.message)
                warnings.warn(request.message, stacklevel=2)
        else:
            raise TuneError(f"{type(self.scheduler).__name__} asked for {request!r}")

    def _stop_waiting(self, trial: Trial) -> None:
        """End a trial the scheduler dropped (it already forgot it; the searcher is told)."""
        if trial.status in (TERMINATED, ERROR):
            return
        self.searcher.on_trial_complete(trial.trial_id)
        self._release(trial, graceful=True)
        trial.status = TERMINATED
        self.callbacks.on_trial_complete(iteration=self.iteration, trials=self.trials, trial=trial)

    def _by_id(self, trial_id: str) -> Trial:
        return next(t for t in self.trials if t.trial_id == trial_id)

    def _exploit(self, request: ExploitRequest) -> None:
        """Restart a trial from another's checkpoint with a new config (PBT)."""
        trial = self._by_id(request.trial_id)
        self._release(trial, graceful=True)
        name = f"checkpoint_{trial.next_checkpoint_index:06d}"
        shutil.copytree(request.checkpoint, os.path.join(trial.path, name), dirs_exist_ok=True)
        trial.config = dict(request.config)
        self._register_checkpoint(trial, name, request.result)
        write_params(trial.path, trial.config)
        trial.status = PAUSED

    def _notify_checkpoint(self, trial: Trial, name: str) -> None:
        self.callbacks.on_checkpoint(
            iteration=self.iteration,
            trials=self.trials,
            trial=trial,
            checkpoint=Checkpoint(os.path.join(trial.path, name)),
        )

    def _register_checkpoint(
        self, trial: Trial, name: str, result: dict[str, Any], notify: bool = True
    ) -> None:
        trial.checkpoints.append((name, dict(result)))
        if notify:
            self._notify_checkpoint(trial, name)
        trial.next_checkpoint_index = max(
            trial.next_checkpoint_index, int(name.rsplit("_", 1)[-1]) + 1
        )
        keep = self.checkpoint_config.num_to_keep
        if keep is None or len(trial.checkpoints) <= keep:
            return
        attr = self.checkpoint_config.checkpoint_score_attribute
        latest = trial.checkpoints[-1]
        ranked = list(trial.checkpoints)
        if attr is not None:
            sign = 1.0 if self.checkpoint_config.checkpoint_score_order == "max" else -1.0
            ranked.sort(key=lambda c: sign * float(flatten(c[1]).get(attr, float("-inf"))))
        # drop the worst (the oldest without a score attribute), never the latest
        while len(ranked) > keep:
            victim = next(c for c in ranked if c is not latest)
            ranked.remove(victim)
            trial.checkpoints.remove(victim)
            shutil.rmtree(os.path.join(trial.path, victim[0]), ignore_errors=True)

    def _save_now(self, trial: Trial) -> None:
        """A class trainable saves a checkpoint (for checkpoint_at_end or PAUSE)."""
        if not self.is_class or trial.actor is None:
            return
        name = runtime.get(trial.actor.save.remote())
        if name:
            self._register_checkpoint(trial, name, trial.last_result)
        self.callbacks.on_trial_save(iteration=self.iteration, trials=self.trials, trial=trial)

    def _complete(self, trial: Trial) -> None:
        flat = flatten(trial.last_result)
        self.scheduler.on_trial_complete(trial.trial_id, flat)
        self.searcher.on_trial_complete(trial.trial_id, result=flat)
        if self.checkpoint_config.checkpoint_at_end:
            try:
                self._save_now(trial)
            except Exception as exc:  # saving at the end failed: the trial failed
                self._release(trial, graceful=False)
                self._mark_error(trial, exc)
                self.callbacks.on_trial_error(
                    iteration=self.iteration, trials=self.trials, trial=trial
                )
                return
        trial.status = TERMINATED
        self._release(trial, graceful=True)
        self.callbacks.on_trial_complete(iteration=self.iteration, trials=self.trials, trial=trial)

    def _pause(self, trial: Trial) -> None:
        try:
            self._save_now(trial)
        except Exception as exc:
            self._on_failure(trial, exc)
            return
        self._release(trial, graceful=True)
        trial.status = PAUSED

    def _on_failure(self, trial: Trial, exc: BaseException) -> None:
        self._release(trial, graceful=False)
        trial.num_failures += 1
        self._write_error(trial, exc)
        limit = self.failure_config.max_failures
        if limit == -1 or trial.num_failures <= limit:
            trial.status = PENDING
            self.callbacks.on_trial_recover(
                iteration=self.iteration, trials=self.trials, trial=trial
            )
            return
        self.scheduler.on_trial_error(trial.trial_id)
        self.searcher.on_trial_complete(trial.trial_id, error=True)
        self._mark_error(trial, exc)
        self.callbacks.on_trial_error(iteration=self.iteration, trials=self.trials, trial=trial)
        if self.failure_config.fail_fast:
            self._fatal = TuneError(f"trial {trial.trial_name} failed (fail_fast): {exc}")

    def _write_error(self, trial: Trial, exc: BaseException) -> None:
        os.makedirs(trial.path, exist_ok=True)
        with open(os.path.join(trial.path, "error.txt"), "a") as f:
            f.write(f"Failure # {trial.num_failures} (occurred at {datetime.datetime.now()})\n")
            f.write(str(exc) + "\n")

    def _mark_error(self, trial: Trial, exc: BaseException) -> None:
        trial.status = ERROR
        trial.error = exc
        trial.error_msg = str(exc)

    def _stop_all(self) -> None:
        """The time budget ran out or ``stop_all``: finish the running trials now."""
        for trial in list(self.trials):
            if trial.status == RUNNING:
                self._complete(trial)

    def _shutdown_actors(self) -> None:
        self._drop_cached()
        for trial in self.trials:
            if trial.actor is not None:
                try:
                    self._release(trial, graceful=False)
                except Exception:  # the runtime may already be shut down
                    trial.actor = None
                if trial.status == RUNNING:
                    trial.status = PAUSED if trial.checkpoints else PENDING

    # ---- experiment state -------------------------------------------------------------------

    def _write_state(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._state_written < 1.0:
            return
        self._state_written = now
        import cloudpickle

        state = ExperimentState(
            trials=self.trials,
            created=self.created,
            searcher_finished=self.searcher_finished,
            experiment_id=self.experiment_id,
        )
        path = os.path.join(self.experiment_dir, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            cloudpickle.dump(state, f)
        os.replace(tmp, path)


def load_state(experiment_dir: str) -> ExperimentState:
    """The experiment state saved in ``experiment_dir`` (TuneError when there is none)."""
    import cloudpickle

    path = os.path.join(experiment_dir, STATE_FILE)
    if not os.path.exists(path):
        raise TuneError(f"{experiment_dir!r} holds no Tune experiment ({STATE_FILE} is missing)")
    with open(path, "rb") as f:
        state = cloudpickle.load(f)
    if not isinstance(state, ExperimentState):
        raise TuneError(f"{path!r} is not a twinray Tune experiment state")
    return state
