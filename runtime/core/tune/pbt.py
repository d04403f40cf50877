"""Population Based Training (Ray Tune's asynchronous PBT) as a pure decision object.

Every ``perturbation_interval`` units of ``time_attr`` a trial is ranked against the live
population: in the top ``quantile_fraction`` it asks to be checkpointed; in the bottom it
exploits a top trial (restarts from that trial's checkpoint with its config explored:
perturbed by a factor, shifted in a list, or resampled). The object does no I/O: what the
runner must do comes out of ``take_requests()`` (``SaveRequest``, ``ExploitRequest``,
``Notice``), and the runner tells it what a save produced with ``on_trial_saved``. Random
choices come from an injected generator with ``random()`` and ``choice()`` (a
``random.Random``), called in Ray's order, so a seeded run replays Ray's decisions.

Synchronous PBT (``synch=True``) pauses every trial that reaches the next perturbation
time until all live trials have; then the whole population is ranked at once: top trials
are checkpointed first, and once the runner has answered every save (``on_trial_saved``)
the bottom trials exploit, in Ray's order. So a runner drains ``take_requests()`` until it
returns nothing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.core.tune.errors import MetricNotReportedError, TuneError
from runtime.core.tune.schedulers import (
    CONTINUE,
    NOOP,
    PAUSE,
    PAUSED,
    PENDING,
    ExploitRequest,
    FIFOScheduler,
    Notice,
    SaveRequest,
    TrialView,
)
from runtime.core.tune.search_space import Domain, SampleFrom


class ChoiceRng(Protocol):
    """A random source PBT accepts: ``random.Random(seed)`` is one."""

    def random(self) -> float:
        """A float uniformly drawn from [0, 1)."""
        ...

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``, uniformly."""
        ...


@dataclass
class _TrialState:
    last_score: float | None = None
    last_checkpoint: Any = None
    last_perturbation_time: float = 0
    last_train_time: float = 0
    last_result: dict[str, Any] | None = None


def explore(
    config: dict[str, Any],
    mutations: dict[str, Any],
    resample_probability: float,
    perturbation_factors: Sequence[float],
    custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None,
    rng: ChoiceRng,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new config explored from ``config`` and the operation done per key (Ray's rules)."""
    operations: dict[str, Any] = {}
    new_config = copy.deepcopy(config)
    for key, distribution in mutations.items():
        if isinstance(distribution, dict):
            nested, nested_ops = explore(
                config[key], distribution, resample_probability, perturbation_factors, None, rng
            )
            new_config[key] = nested
            operations[key] = nested_ops
        elif isinstance(distribution, list | tuple):
            if rng.random() < resample_probability or config[key] not in distribution:
                new_config[key] = rng.choice(distribution)
                operations[key] = "resample"
            else:
                shift = rng.choice([-1, 1])
                old = list(distribution).index(config[key])
                new = min(max(old + shift, 0), len(distribution) - 1)
                new_config[key] = distribution[new]
                noop = " (noop)" if old == new else ""
                operations[key] = f"shift {'left' if shift == -1 else 'right'}{noop}"
        elif isinstance(distribution, Domain) or callable(distribution):
            if rng.random() < resample_probability:
                new_config[key] = (
                    distribution.sample(config, rng)
                    if isinstance(distribution, Domain)
                    else distribution()
                )
                operations[key] = "resample"
            else:
                factor = rng.choice(perturbation_factors)
                new_config[key] = config[key] * factor
                operations[key] = f"* {factor}"
            if isinstance(config[key], bool):
                new_config[key] = bool(new_config[key])
            elif isinstance(config[key], int):
                new_config[key] = int(round(new_config[key]))
        else:
            raise TuneError(f"Unsupported hyperparameter distribution type: {type(distribution)}")
    if custom_explore_fn is not None:
        new_config = custom_explore_fn(new_config)
        if new_config is None:
            raise TuneError("custom_explore_fn must return the new config, it returned None")
    return new_config, operations


def _fill(config: dict[str, Any], key: str, space: Any, rng: ChoiceRng) -> None:
    if isinstance(space, Domain):
        config[key] = space.sample(config, rng)
    elif isinstance(space, list | tuple):
        config[key] = rng.choice(space)
    elif isinstance(space, dict):
        config[key] = {}
        for inner_key, inner_space in space.items():
            _fill(config[key], inner_key, inner_space, rng)
    elif callable(space):
        config[key] = space()


class PopulationBasedTraining(FIFOScheduler):
    """PBT with Ray's parameters and defaults, asynchronous or (``synch=True``) synchronous."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: dict[str, Any] | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, float] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        rng: ChoiceRng | None = None,
    ) -> None:
        mutations = hyperparam_mutations or {}
        for value in mutations.values():
            if isinstance(value, SampleFrom):
                raise TuneError(
                    "arbitrary tune.sample_from objects are not supported for "
                    "`hyperparam_mutation` values. Use tune.uniform, tune.loguniform, etc."
                )
            if not isinstance(value, dict | list | tuple | Domain) and not callable(value):
                raise TuneError(
                    "`hyperparam_mutation` values must be either a List, Tuple, Dict, a tune "
                    "search space object, or a callable."
                )
        if not mutations and custom_explore_fn is None:
            raise TuneError(
                "You must specify at least one of `hyperparam_mutations` or "
                "`custom_explore_fn` to use PBT."
            )
        if not 0 <= quantile_fraction <= 0.5:
            raise TuneError(
                "You must set `quantile_fraction` to a value between 0 and 0.5. "
                f"Current value: '{quantile_fraction}'"
            )
        if perturbation_interval <= 0:
            raise TuneError(
                "perturbation_interval must be a positive number greater than 0. "
                f"Current value: '{perturbation_interval}'"
            )
        if rng is None:
            raise TuneError("PopulationBasedTraining draws its explorations: pass rng")
        super().__init__(metric=metric, mode=mode)
        self._time_attr = time_attr
        self._perturbation_interval = perturbation_interval
        self._burn_in_period = burn_in_period
        self._mutations = mutations
        self._quantile_fraction = quantile_fraction
        self._resample_probability = resample_probability
        self._perturbation_factors = perturbation_factors
        self._custom_explore_fn = custom_explore_fn
        self._log_config = log_config
        self._require_attrs = require_attrs
        self._rng = rng
        self._state: dict[str, _TrialState] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._finished: set[str] = set()
        self._requests: list[Any] = []
        self._num_checkpoints = 0
        self._num_perturbations = 0
        self._synch = synch
        self._next_perturbation_sync = max(perturbation_interval, burn_in_period)
        # synchronous mode, between ranking and exploiting: saves not yet answered, the
        # bottom trials that will exploit, and the population ranked
        self._awaiting: set[str] = set()
        self._sync_exploits: list[str] = []
        self._sync_upper: list[str] = []

    @property
    def num_perturbations(self) -> int:
        """How many exploits this scheduler has asked for."""
        return self._num_perturbations

    @property
    def num_checkpoints(self) -> int:
        """How many checkpoints (of top trials) it has asked for."""
        return self._num_checkpoints

    def on_trial_add(self, trial_id: str, config: dict[str, Any] | None = None) -> None:
        """Track the trial; fill mutated keys missing from ``config`` (in place, as Ray)."""
        self._require_metric_and_mode()
        config = config if config is not None else {}
        self._state[trial_id] = _TrialState()
        for key, space in self._mutations.items():
            if key not in config:
                _fill(config, key, space, self._rng)
        self._configs[trial_id] = config

    def take_requests(self) -> list[Any]:
        """What the runner must do now (saves, exploits, notices), in order; then forgotten."""
        requests, self._requests = self._requests, []
        return requests

    def on_trial_saved(self, trial_id: str, checkpoint: Any) -> None:
        """The save asked for ``trial_id`` produced ``checkpoint`` (None: it has none)."""
        if trial_id in self._state:
            self._state[trial_id].last_checkpoint = checkpoint
        if trial_id in self._awaiting:
            self._awaiting.discard(trial_id)
            if not self._awaiting:
                self._finish_sync()

    def on_trial_result(
        self, trial_id: str, result: dict[str, Any], trials_waiting: bool = False
    ) -> str:
        """CONTINUE, PAUSE (yield to waiting trials) or NOOP (this trial is exploiting)."""
        metric, mode = self._require_metric_and_mode()
        if self._time_attr not in result:
            if self._require_attrs:
                raise TuneError(
                    f"Cannot find time_attr {self._time_attr} in trial result; it reported "
                    f"{sorted(result)!r}. Return it from your trainable, or set "
                    "PopulationBasedTraining(require_attrs=False)."
                )
            return CONTINUE
        if metric not in result:
            if self._require_attrs:
                raise MetricNotReportedError(type(self).__name__, metric, list(result))
            return CONTINUE
        time = result[self._time_attr]
        state = self._state[trial_id]
        if time < self._burn_in_period:
            return CONTINUE
        if time - state.last_perturbation_time < self._perturbation_interval:
            return CONTINUE
        sign = 1.0 if mode == "max" else -1.0
        state.last_score = sign * float(result[metric])
        state.last_train_time = time
        state.last_result = result
        if self._synch:
            return self._on_sync_result(trial_id, time)
        state.last_perturbation_time = time
        lower, upper = self._quantiles()
        decision = PAUSE if trials_waiting else CONTINUE
        exploited = self._checkpoint_or_exploit(trial_id, upper, lower)
        return NOOP if exploited else decision

    def _live(self) -> list[str]:
        return [tid for tid in self._state if tid not in self._finished]

    def _on_sync_result(self, trial_id: str, time: float) -> str:
        """Synchronous mode: wait for the population, or rank it all (Ray's order)."""
        behind = [
            tid
            for tid in self._live()
            if tid != trial_id and self._state[tid].last_train_time < self._next_perturbation_sync
        ]
        if behind:
            return PAUSE
        lower, upper = self._quantiles()
        middle = [tid for tid in self._state if tid not in lower and tid not in upper]
        for tid in upper + middle + lower:
            self._state[tid].last_perturbation_time = time
            if tid in upper:
                self._requests.append(SaveRequest(tid))  # a paused trial: its latest one
                self._state[tid].last_checkpoint = None  # set by on_trial_saved
                self._awaiting.add(tid)
                self._num_checkpoints += 1
            else:
                self._state[tid].last_checkpoint = None
        self._sync_exploits = list(lower)
        self._sync_upper = list(upper)
        if not self._awaiting:
            self._finish_sync()
        # every trial waits for the next perturbation time paused; one the bottom
        # exploits is paused too (Ray returns NOOP for it: the runner ends the same)
        return PAUSE

    def _finish_sync(self) -> None:
        """Every top trial's save is answered: the bottom ones exploit; the next sync time."""
        lower, self._sync_exploits = self._sync_exploits, []
        upper, self._sync_upper = self._sync_upper, []
        for tid in lower:
            self._exploit(tid, upper)
        latest = max(state.last_train_time for state in self._state.values())
        self._next_perturbation_sync = max(
            self._next_perturbation_sync + self._perturbation_interval, latest
        )

    def _quantiles(self) -> tuple[list[str], list[str]]:
        trials = [
            tid
            for tid, state in self._state.items()
            if state.last_score is not None
            and not math.isnan(state.last_score)
            and tid not in self._finished
        ]
        trials.sort(key=lambda tid: self._state[tid].last_score)  # type: ignore[arg-type,return-value]
        if len(trials) <= 1:
            return [], []
        count = int(math.ceil(len(trials) * self._quantile_fraction))
        if count > len(trials) / 2:
            count = int(math.floor(len(trials) / 2))
        return trials[:count], trials[len(trials) - count :]

    def _checkpoint_or_exploit(self, trial_id: str, upper: list[str], lower: list[str]) -> bool:
        state = self._state[trial_id]
        if trial_id in upper:
            self._requests.append(SaveRequest(trial_id))
            state.last_checkpoint = None  # set by on_trial_saved when the save is done
            self._num_checkpoints += 1
        else:
            state.last_checkpoint = None
        if trial_id not in lower:
            return False
        return self._exploit(trial_id, upper)

    def _exploit(self, trial_id: str, upper: list[str]) -> bool:
        """``trial_id`` clones a random top trial and explores its config (if it has a checkpoint)."""
        state = self._state[trial_id]
        source = self._rng.choice(upper)
        source_state = self._state[source]
        if source_state.last_checkpoint is None:
            self._requests.append(
                Notice(
                    f"[pbt]: no checkpoint for trial {source}. Skip exploit for Trial "
                    f"{trial_id}. PBT clones a top trial's checkpoint: report checkpoints "
                    "(tune.report(..., checkpoint=...)) or implement save_checkpoint."
                )
            )
            return False
        new_config, operations = explore(
            self._configs[source],
            self._mutations,
            self._resample_probability,
            self._perturbation_factors,
            self._custom_explore_fn,
            self._rng,
        )
        self._configs[trial_id] = new_config
        self._requests.append(
            ExploitRequest(
                trial_id=trial_id,
                clone_from=source,
                checkpoint=source_state.last_checkpoint,
                config=new_config,
                result=dict(source_state.last_result or {}),
                operations=operations,
            )
        )
        self._num_perturbations += 1
        state.last_perturbation_time = source_state.last_perturbation_time
        state.last_train_time = source_state.last_train_time
        return True

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """The trial is finished: it leaves the population."""
        self._finished.add(trial_id)

    def on_trial_error(self, trial_id: str) -> None:
        """The trial failed: it leaves the population."""
        self._finished.add(trial_id)

    def on_trial_remove(self, trial_id: str) -> None:
        """The trial was removed: it leaves the population."""
        self._finished.add(trial_id)

    def choose_trial_to_run(self, trials: Sequence[TrialView]) -> str | None:
        """The waiting trial that trained least (Ray's fair share), or None.

        Synchronous mode runs only trials behind the next perturbation time.
        """
        candidates = [
            t
            for t in trials
            if t.status in (PENDING, PAUSED)
            and (
                not self._synch
                or t.trial_id not in self._state
                or self._state[t.trial_id].last_train_time < self._next_perturbation_sync
            )
        ]
        candidates.sort(
            key=lambda t: (
                self._state[t.trial_id].last_train_time if t.trial_id in self._state else 0
            )
        )
        return candidates[0].trial_id if candidates else None


__all__ = ["ChoiceRng", "PopulationBasedTraining", "explore"]
