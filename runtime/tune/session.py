"""The trial side of Tune: ``tune.report``/``get_checkpoint``/``get_context`` and result fields.

A trial runs in its own actor process, so the session (which trial, where its directory is,
the checkpoint it resumed from) is one per process, set by the trial actor before the
trainable runs.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from runtime.tune.checkpoint import Checkpoint
from runtime.tune.errors import TuneError, TuneSessionError


@dataclass
class TrialStart:
    """What a trial actor needs to run one trial (or resume it from a checkpoint)."""

    trial_id: str
    trial_name: str
    trial_dir: str
    experiment_name: str
    experiment_tag: str
    checkpoint_path: str | None = None
    start_iteration: int = 0
    start_time_total: float = 0.0
    next_checkpoint_index: int = 0
    checkpoint_frequency: int = 0


@dataclass
class ResultClock:
    """Counts iterations and time of one trial and fills Ray's automatic result fields."""

    start: TrialStart
    config: dict[str, Any]
    iteration: int = 0
    time_total: float = 0.0
    iterations_since_restore: int = 0
    time_since_restore: float = 0.0
    last_time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.iteration = self.start.start_iteration
        self.time_total = self.start.start_time_total

    def fill(self, metrics: dict[str, Any], checkpoint_dir_name: str | None) -> dict[str, Any]:
        """``metrics`` plus Ray's automatic fields for the iteration that just ended."""
        now = time.time()
        this_iter = now - self.last_time
        self.last_time = now
        self.iteration += 1
        self.iterations_since_restore += 1
        self.time_total += this_iter
        self.time_since_restore += this_iter
        result = dict(metrics)
        result.setdefault("done", False)
        result.update(
            timestamp=int(now),
            checkpoint_dir_name=checkpoint_dir_name,
            training_iteration=self.iteration,
            trial_id=self.start.trial_id,
            date=datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"),
            time_this_iter_s=this_iter,
            time_total_s=self.time_total,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            node_ip="127.0.0.1",
            config=self.config,
            time_since_restore=self.time_since_restore,
            iterations_since_restore=self.iterations_since_restore,
            experiment_tag=self.start.experiment_tag,
        )
        return result


def persist_checkpoint(source: str, start: TrialStart) -> str:
    """Copy checkpoint directory ``source`` into the trial directory; the new directory's name."""
    name = f"checkpoint_{start.next_checkpoint_index:06d}"
    start.next_checkpoint_index += 1
    target = os.path.join(start.trial_dir, name)
    if os.path.abspath(source) != os.path.abspath(target):
        shutil.copytree(source, target, dirs_exist_ok=True)
    return name


class TuneContext:
    """What a running trial can ask about itself (Ray's ``tune.get_context()``)."""

    def __init__(self, start: TrialStart) -> None:
        self._start = start

    def get_trial_id(self) -> str:
        """The trial's id."""
        return self._start.trial_id

    def get_trial_name(self) -> str:
        """The trial's name."""
        return self._start.trial_name

    def get_trial_dir(self) -> str:
        """The trial's results directory."""
        return self._start.trial_dir

    def get_experiment_name(self) -> str:
        """The experiment's name."""
        return self._start.experiment_name


class FunctionSession:
    """The session of a function trainable: reports go to the actor, one at a time."""

    def __init__(self, start: TrialStart, config: dict[str, Any], channel: Any) -> None:
        self.start = start
        self.clock = ResultClock(start, config)
        self.channel = channel
        self.checkpoint = Checkpoint(start.checkpoint_path) if start.checkpoint_path else None

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        """Persist ``checkpoint``, hand the result to the actor and wait to be resumed."""
        if not isinstance(metrics, dict):
            raise TuneError(f"tune.report() takes a dict of metrics, got {type(metrics).__name__}")
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise TuneError(
                f"tune.report(checkpoint=) takes a tune.Checkpoint, got {type(checkpoint).__name__}"
            )
        name = persist_checkpoint(checkpoint.path, self.start) if checkpoint else None
        result = self.clock.fill(metrics, name)
        if name is not None:
            self.checkpoint = Checkpoint(os.path.join(self.start.trial_dir, name))
        self.channel.put_result(result, name)


_current: FunctionSession | None = None


def set_session(session: FunctionSession | None) -> None:
    """Make ``session`` this process's Tune session (None: none)."""
    global _current
    _current = session


def _session(what: str) -> FunctionSession:
    if _current is None:
        raise TuneSessionError(
            f"tune.{what}() was called outside a Tune trial: call it from the function "
            "trainable that a Tuner (or tune.run) runs"
        )
    return _current


def report(metrics: dict[str, Any], *, checkpoint: Checkpoint | None = None) -> None:
    """Report a trial's metrics (and optionally a checkpoint) for this iteration (Ray's API)."""
    _session("report").report(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial resumes from (its latest reported one), or None."""
    return _session("get_checkpoint").checkpoint


def get_context() -> TuneContext:
    """The running trial's context: its id, name, directory and experiment name."""
    return TuneContext(_session("get_context").start)
