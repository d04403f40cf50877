"""The hyperparameter_search workload's trial loop, shared by the simulator and its real twin.

`TrialLoop` feeds the core's Tune objects exactly as ``runtime.tune.controller`` does: the
searcher (``BasicVariantGenerator``) suggests configs, the trial scheduler
(``make_trial_scheduler``: ASHA, HyperBand, MedianStoppingRule, FIFO, PBT) chooses which
waiting trial runs and decides CONTINUE/PAUSE/STOP on every finished epoch, and PBT's
save/exploit requests are answered with the trials' checkpoint handles. It holds no clock
and starts nothing: a world plugs in by implementing four hooks (submit an epoch task,
release and hold a checkpoint handle, shrink the expected task total), so the simulator
(``sim.drivers.SearchDriver``: object ids through its owner) and the real twin
(``twin.real_workloads``: ObjectRefs of real epoch tasks) make the same decisions from the
same seeded draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.core.tune.errors import TuneError
from runtime.core.tune.hyperband import HyperBandScheduler
from runtime.core.tune.pbt import PopulationBasedTraining
from runtime.core.tune.schedulers import (
    CONTINUE,
    ERROR,
    NOOP,
    PAUSE,
    PAUSED,
    PENDING,
    RUNNING,
    STOP,
    TERMINATED,
    AsyncHyperBandScheduler,
    ExploitRequest,
    FIFOScheduler,
    MedianStoppingRule,
    Notice,
    SaveRequest,
    StopRequest,
    TrialScheduler,
    TrialView,
)
from runtime.core.tune.search_space import Domain, grid_search, loguniform, randint, uniform
from runtime.core.tune.searcher import FINISHED, BasicVariantGenerator
from sim.tune_curves import Axis, axes, score_after


@dataclass(slots=True)
class SimTrial:
    """One trial of the workload: its config, learning curve, status and newest checkpoint.

    ``checkpoint`` and ``saved`` are the world's handles of checkpoint objects (the
    simulator's object ids, 0 for none; the real twin's ObjectRefs, None for none).
    """

    trial_id: str
    config: dict[str, Any]
    curve: Callable[[int], float]
    status: str = PENDING
    iteration: int = 0
    time_total: float = 0.0
    submitted_at: float = 0.0
    checkpoint: Any = 0
    score: float = 0.0
    """The metric so far, for curves that depend on the config (PBT's)."""
    saved: Any = 0
    """The checkpoint object kept for PBT to clone (0: none)."""
    overhead: float = 0.0
    """Checkpoint save/restore seconds added to the trial's next epoch task."""
    submitted_overhead: float = 0.0


def pbt_mutations(spec: Any) -> dict[str, Any]:
    """A PBT scheduler spec's hyperparam_mutations as the core's domains and lists."""
    builders: dict[str, Callable[[Any], Domain]] = {
        "uniform": lambda d: uniform(d.lower, d.upper),
        "loguniform": lambda d: loguniform(d.lower, d.upper),
        "randint": lambda d: randint(int(d.lower), int(d.upper)),
    }
    return {
        key: list(m) if isinstance(m, list) else builders[m.kind](m)
        for key, m in spec.hyperparam_mutations.items()
    }


def make_pbt(spec: Any, workload: Any, rng: random.Random) -> PopulationBasedTraining:
    """The core's PopulationBasedTraining for a `{kind: pbt}` spec (Ray's parameters)."""
    seed = spec.seed if spec.seed is not None else rng.getrandbits(64)
    return PopulationBasedTraining(
        time_attr=spec.time_attr,
        metric=workload.metric,
        mode=workload.mode,
        perturbation_interval=spec.perturbation_interval,
        burn_in_period=spec.burn_in_period,
        hyperparam_mutations=pbt_mutations(spec),
        quantile_fraction=spec.quantile_fraction,
        resample_probability=spec.resample_probability,
        perturbation_factors=tuple(spec.perturbation_factors),
        synch=spec.synch,
        rng=random.Random(seed),
    )


def make_trial_scheduler(spec: Any, rng: random.Random | None = None) -> TrialScheduler:
    """The core Tune scheduler named by a hyperparameter_search workload, Ray's parameters.

    PBT (a `{kind: pbt}` spec) draws its seed from ``rng`` unless the spec gives one.
    """
    if not isinstance(spec.trial_scheduler, str):
        return make_pbt(spec.trial_scheduler, spec, rng or random.Random(0))
    max_t = spec.max_t if spec.max_t is not None else spec.epochs
    grace = spec.grace_period if spec.grace_period is not None else spec.grace_epochs
    common = {"metric": spec.metric, "mode": spec.mode}
    builders: dict[str, Callable[[], TrialScheduler]] = {
        "asha": lambda: AsyncHyperBandScheduler(
            time_attr=spec.time_attr,
            max_t=max_t,
            grace_period=grace,
            reduction_factor=spec.reduction_factor,
            **common,
        ),
        "hyperband": lambda: HyperBandScheduler(
            time_attr=spec.time_attr,
            max_t=max_t,
            reduction_factor=spec.reduction_factor,
            **common,
        ),
        "median_stopping": lambda: MedianStoppingRule(
            time_attr=spec.time_attr,
            grace_period=grace,
            min_samples_required=spec.min_samples_required,
            **common,
        ),
        "fifo": lambda: FIFOScheduler(**common),
    }
    return builders[spec.trial_scheduler]()


class TrialLoop:
    """Trials of epoch tasks, started and stopped by the core's Tune scheduler and searcher.

    Mirrors ``runtime.tune.controller.TuneController``: the searcher suggests configs, the
    scheduler chooses which waiting trial runs, every finished epoch is a result given to
    ``on_trial_result``, and its CONTINUE (next epoch), PAUSE (keep the checkpoint, free
    the slot) or STOP (end the trial) is carried out; a slot is a "resource" the real
    runner would check. ``decisions`` lists (trial_id, iteration, decision) in order.

    A world subclasses it and implements `_submit_epoch`, `_release`, `_hold` and
    `_shrink`; it calls `_init_loop` once, `_fill` to start trials, `_epoch_finished` and
    then `_decide` for each finished epoch, and `_trial_failed` for a failed one.
    """

    def _init_loop(
        self, spec: Any, rng: random.Random, trials: int, first: int, prefix: str
    ) -> None:
        """Build the scheduler, then the searcher, from `rng` (in this order: the draws)."""
        self.epochs = spec.epochs
        self.concurrent = spec.concurrent_trials
        self.metric = spec.metric
        self.curves = spec.curves
        self.scheduler = make_trial_scheduler(spec, rng)
        self.searcher = BasicVariantGenerator(rng=rng)
        self.pbt = isinstance(self.scheduler, PopulationBasedTraining)
        self.axes: dict[str, Axis] = {}
        self.checkpoint_bytes = spec.checkpoint_bytes
        self.save_s = spec.checkpoint_save_ms * 1e-3
        self.restore_s = spec.checkpoint_restore_ms * 1e-3
        self._score_of: dict[Any, float] = {}
        if self.pbt:
            self.axes = axes(pbt_mutations(spec.trial_scheduler))
            # PBT fills each config from its mutations as the trial is added (as in Ray)
            self.searcher.add_configurations({}, num_samples=trials)
        elif spec.curves is not None:
            rows = list(range(first, first + trials))
            self.searcher.add_configurations({"curve": grid_search(rows)})
        else:
            self.searcher.add_configurations({"quality": uniform(0.0, 1.0)}, num_samples=trials)
        self.max_trials = trials
        self.trials: list[SimTrial] = []
        self.decisions: list[tuple[str, int, str]] = []
        self.exploits: list[tuple[str, str, int, dict[str, Any]]] = []
        """PBT's exploits in order: (trial, the trial it cloned, iteration, new config)."""
        self.epochs_run = 0
        self.stopped_early = 0
        self._running = 0
        self._finished = False
        self._prefix = prefix

    # --- the world's hooks -----------------------------------------------------------------

    def _submit_epoch(
        self, trial: SimTrial, previous: Any, overhead: float, now: float, out: list[Any]
    ) -> Any:
        """Submit the trial's next epoch task (reading `previous` if any, `overhead` s
        longer) with freshly drawn duration, then output size; drop the loop's handle of
        `previous`; return the handle of the new checkpoint (the task's output)."""
        raise NotImplementedError

    def _release(self, handle: Any, now: float, out: list[Any]) -> None:
        """Drop one handle of a checkpoint object."""
        raise NotImplementedError

    def _hold(self, handle: Any, now: float, out: list[Any]) -> None:
        """Take one more handle of a checkpoint object (PBT keeps or clones it)."""
        raise NotImplementedError

    def _shrink(self, tasks: int, now: float) -> None:
        """`tasks` fewer epoch tasks will run than expected (negative: more)."""
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------------

    def _curve(self, config: dict[str, Any]) -> Callable[[int], float]:
        if self.pbt:
            return lambda t: 0.0  # unused: the metric accumulates (sim.tune_curves)
        if "curve" in config:
            row = self.curves[config["curve"]]
            return lambda t: float(row[t - 1])
        quality = float(config["quality"])
        return lambda t: quality * (1.0 - 2.0**-t)

    def _add_trial(self) -> bool:
        """Ask the searcher for one more trial (the real runner's ``_add_trial``)."""
        if self._finished or len(self.trials) >= self.max_trials:
            return False
        trial_id = f"{self._prefix}_{len(self.trials):05d}"
        suggestion = self.searcher.suggest(trial_id)
        if suggestion == FINISHED:
            self._finished = True
            return False
        if not isinstance(suggestion, dict):
            return False
        trial = SimTrial(trial_id, suggestion, self._curve(suggestion))
        if self.pbt:
            self.scheduler.on_trial_add(trial_id, trial.config)  # type: ignore[call-arg]
        else:
            self.scheduler.on_trial_add(trial_id)
        self.trials.append(trial)
        return True

    def _waiting(self) -> list[SimTrial]:
        return [t for t in self.trials if t.status in (PENDING, PAUSED)]

    def _fill(self, now: float, out: list[Any]) -> None:
        """Start waiting trials while slots are free (the real runner's ``_start_trials``)."""
        while True:
            waiting = self._waiting()
            if not any(t.status == PENDING for t in waiting) and self._add_trial():
                waiting = self._waiting()
            if not waiting:
                return
            chosen = self.scheduler.choose_trial_to_run(
                [TrialView(t.trial_id, t.status) for t in waiting]
            )
            if chosen is None or self._running >= self.concurrent:
                return
            trial = next(t for t in waiting if t.trial_id == chosen)
            self._running += 1
            trial.status = RUNNING
            if trial.iteration >= self.epochs:
                self._complete(trial, now, out)  # resumed after its last epoch: the trainable ends
                continue
            self._epoch(trial, now, out)

    def _epoch(self, trial: SimTrial, now: float, out: list[Any]) -> None:
        previous = trial.checkpoint
        overhead = trial.overhead
        trial.submitted_overhead, trial.overhead = overhead, 0.0
        trial.checkpoint = self._submit_epoch(trial, previous, overhead, now, out)
        trial.submitted_at = now

    def _end(self, trial: SimTrial, status: str, now: float, out: list[Any]) -> None:
        """A trial ends: its checkpoint is dropped and its unrun epochs leave the total."""
        if trial.status == RUNNING:
            self._running -= 1
        trial.status = status
        if trial.checkpoint:
            self._release(trial.checkpoint, now, out)
            trial.checkpoint = 0
        self._drop_saved(trial, now, out)
        if trial.iteration < self.epochs:
            self.stopped_early += 1
            self._shrink(self.epochs - trial.iteration, now)

    def _complete(self, trial: SimTrial, now: float, out: list[Any]) -> None:
        result = self._result(trial)
        self.scheduler.on_trial_complete(trial.trial_id, result)
        self.searcher.on_trial_complete(trial.trial_id, result=result)
        self._end(trial, TERMINATED, now, out)

    def _result(self, trial: SimTrial) -> dict[str, Any]:
        result: dict[str, Any] = {
            "training_iteration": trial.iteration,
            "time_total_s": trial.time_total,
            "trial_id": trial.trial_id,
        }
        if trial.iteration:
            result[self.metric] = trial.score if self.pbt else trial.curve(trial.iteration)
        result.update({f"config/{k}": v for k, v in trial.config.items()})
        return result

    def _carry_out_requests(self, now: float, out: list[Any]) -> None:
        # answering a save may queue more (synchronous PBT's exploits): drain to empty
        while requests := self.scheduler.take_requests():
            for request in requests:
                self._carry_out(request, now, out)

    def _carry_out(self, request: Any, now: float, out: list[Any]) -> None:
        if isinstance(request, StopRequest):
            trial = next(t for t in self.trials if t.trial_id == request.trial_id)
            if trial.status not in (TERMINATED, ERROR):
                self.searcher.on_trial_complete(trial.trial_id)
                self._end(trial, TERMINATED, now, out)
        elif isinstance(request, SaveRequest):
            self._save(request, now, out)
        elif isinstance(request, ExploitRequest):
            self._exploit(request, now, out)
        elif not isinstance(request, Notice):
            raise TuneError(f"{type(self.scheduler).__name__} asked for {request!r}")

    def _by_id(self, trial_id: str) -> SimTrial:
        return next(t for t in self.trials if t.trial_id == trial_id)

    def _drop_saved(self, trial: SimTrial, now: float, out: list[Any]) -> None:
        if trial.saved:
            self._release(trial.saved, now, out)
            self._score_of.pop(trial.saved, None)
            trial.saved = 0

    def _save(self, request: SaveRequest, now: float, out: list[Any]) -> None:
        """Keep the trial's newest checkpoint object for PBT (the save costs its next epoch)."""
        trial = self._by_id(request.trial_id)
        oid = trial.checkpoint
        if oid and oid != trial.saved:
            self._drop_saved(trial, now, out)
            self._hold(oid, now, out)  # one more handle of our own
            trial.saved = oid
            self._score_of[oid] = trial.score
            if trial.status == RUNNING:  # a paused trial saved when it paused
                trial.overhead += self.save_s
        self.scheduler.on_trial_saved(request.trial_id, oid or None)  # type: ignore[attr-defined]

    def _exploit(self, request: ExploitRequest, now: float, out: list[Any]) -> None:
        """The trial continues from the clone's checkpoint object with the explored config."""
        trial = self._by_id(request.trial_id)
        source = request.checkpoint
        if trial.status == RUNNING:
            self._running -= 1
        trial.status = PAUSED
        self._hold(source, now, out)
        if trial.checkpoint:
            self._release(trial.checkpoint, now, out)
        trial.checkpoint = source
        trial.config = dict(request.config)
        trial.score = self._score_of[source]
        self.exploits.append(
            (
                trial.trial_id,
                request.clone_from,
                int(request.result["training_iteration"]),
                trial.config,
            )
        )
        iteration = int(request.result.get("training_iteration", 0))
        # the trial now has `epochs - iteration` epochs to go (negative shrink: more to run)
        if iteration != trial.iteration:
            self._shrink(iteration - trial.iteration, now)
        trial.iteration = iteration
        trial.time_total = float(request.result.get("time_total_s", 0.0))
        trial.overhead += self.restore_s

    def _epoch_finished(self, trial: SimTrial, at: float) -> None:
        """The trial's epoch task finished at `at`: one more iteration and its metric."""
        trial.iteration += 1
        self.epochs_run += 1
        trial.time_total += at - trial.submitted_at - trial.submitted_overhead
        if self.pbt:
            trial.score = score_after(
                self.axes, trial.config, trial.score, trial.iteration, self.epochs
            )

    def _decide(self, trial: SimTrial, now: float, out: list[Any]) -> None:
        """Report the trial's result to the scheduler and carry out its decision."""
        result = self._result(trial)
        waiting = any(t.status in (PENDING, PAUSED) for t in self.trials)
        decision = self.scheduler.on_trial_result(trial.trial_id, result, trials_waiting=waiting)
        self.decisions.append((trial.trial_id, trial.iteration, decision))
        if decision != STOP:
            self.searcher.on_trial_result(trial.trial_id, result)
        self._carry_out_requests(now, out)
        if trial.status == RUNNING:
            if decision == NOOP:
                raise TuneError(f"{type(self.scheduler).__name__} decided NOOP for a running trial")
            if decision == STOP:
                self._complete(trial, now, out)
            elif decision == PAUSE:
                self._running -= 1
                trial.status = PAUSED
                trial.overhead += self.save_s + self.restore_s  # saved now, restored on resume
            elif decision == CONTINUE:
                if trial.iteration >= self.epochs:
                    self._complete(trial, now, out)  # the trainable returns after its last epoch
                else:
                    self._epoch(trial, now, out)
            else:
                raise TuneError(f"{type(self.scheduler).__name__} decided {decision!r}")
        self._fill(now, out)

    def _trial_failed(self, trial: SimTrial, now: float, out: list[Any]) -> None:
        """A failed epoch fails its trial (the real runner's default ``max_failures=0``)."""
        self.scheduler.on_trial_error(trial.trial_id)
        self.searcher.on_trial_complete(trial.trial_id, error=True)
        self._end(trial, ERROR, now, out)
        self._fill(now, out)


__all__ = ["SimTrial", "TrialLoop", "make_pbt", "make_trial_scheduler", "pbt_mutations"]
