"""Trainables: ``tune.Trainable`` (class API), function trainables, and the trial actor.

The trial actor (``TrialActor``) hosts one trial: it builds the trainable, steps it one
result per ``train()`` call and saves on ``save()``. A function trainable runs in a thread
of the actor and pauses in ``tune.report`` until the controller asks for the next result,
as in Ray, so a trial never runs ahead of the scheduler's decisions.
"""

from __future__ import annotations

import copy
import inspect
import os
import pickle
import queue
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from runtime.tune import session as _session
from runtime.tune.errors import TuneError

_DICT_CHECKPOINT = "_dict_checkpoint.pkl"


class Trainable:
    """The class API for trainables (Ray's ``tune.Trainable``).

    Override ``setup(config)``, ``step()`` (one iteration, returns a metrics dict; put
    ``"done": True`` in it to finish), ``save_checkpoint(checkpoint_dir)`` (write files there
    or return a dict), ``load_checkpoint(checkpoint)`` (the directory, or the dict
    ``save_checkpoint`` returned) and ``cleanup()``.
    """

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.config = dict(config or {})
        start = kwargs.get("_start")
        self._start: _session.TrialStart = start or _session.TrialStart(
            trial_id="default",
            trial_name="default",
            trial_dir=tempfile.mkdtemp(prefix="trainable_"),
            experiment_name="default",
            experiment_tag="0",
        )
        self._clock = _session.ResultClock(self._start, self.config)
        self.setup(copy.deepcopy(self.config))

    @property
    def iteration(self) -> int:
        """How many iterations (``step`` calls) this trial has run, restored ones included."""
        return self._clock.iteration

    training_iteration = iteration

    @property
    def trial_id(self) -> str:
        """The trial's id."""
        return self._start.trial_id

    @property
    def trial_name(self) -> str:
        """The trial's name."""
        return self._start.trial_name

    @property
    def logdir(self) -> str:
        """The trial's results directory."""
        return self._start.trial_dir

    def setup(self, config: dict[str, Any]) -> None:
        """Build the trial's state from ``config`` (once, before the first step)."""

    def step(self) -> dict[str, Any]:
        """Run one iteration and return its metrics (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        """Save the state into ``checkpoint_dir`` (or return it as a dict)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save_checkpoint()")

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        """Restore the state ``save_checkpoint`` saved (its directory, or its dict)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load_checkpoint()")

    def cleanup(self) -> None:
        """Release the trial's resources (called once, when it stops)."""

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Take ``new_config`` in place (False: not supported, the default)."""
        return False

    def train(self) -> dict[str, Any]:
        """Run ``step()`` once and return its result with Ray's automatic fields."""
        metrics = self.step()
        if not isinstance(metrics, dict):
            raise TuneError(
                f"{type(self).__name__}.step() must return a dict of metrics, "
                f"got {type(metrics).__name__}"
            )
        return self._clock.fill(metrics, None)

    def save(self, checkpoint_dir: str | None = None) -> str:
        """Save a checkpoint into ``checkpoint_dir`` (a new temporary one if None); its path."""
        target = checkpoint_dir or tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(target, exist_ok=True)
        state = self.save_checkpoint(target)
        if state is not None:
            if not isinstance(state, dict):
                raise TuneError(
                    f"{type(self).__name__}.save_checkpoint() must return a dict or None, "
                    f"got {type(state).__name__}"
                )
            with open(os.path.join(target, _DICT_CHECKPOINT), "wb") as f:
                pickle.dump(state, f)
        return target

    def restore(self, checkpoint_path: str) -> None:
        """Load the checkpoint in ``checkpoint_path`` through ``load_checkpoint``."""
        dict_file = os.path.join(checkpoint_path, _DICT_CHECKPOINT)
        if os.path.exists(dict_file):
            with open(dict_file, "rb") as f:
                self.load_checkpoint(pickle.load(f))
        else:
            self.load_checkpoint(checkpoint_path)

    def stop(self) -> None:
        """Stop the trial: run ``cleanup``."""
        self.cleanup()


class _WithResources:
    """A trainable with the resources each of its trials asks for (``tune.with_resources``)."""

    def __init__(self, trainable: Any, resources: dict[str, float]) -> None:
        self.trainable = trainable
        self.resources = resources
        self.__name__ = trainable_name(trainable)


class _WithParameters:
    """A function trainable called with extra keyword arguments put in the object store once."""

    def __init__(self, trainable: Callable[..., Any], refs: dict[str, Any]) -> None:
        self.trainable = trainable
        self.refs = refs
        self.__name__ = trainable_name(trainable)

    def __call__(self, config: dict[str, Any]) -> Any:
        import runtime

        values = {name: runtime.get(ref) for name, ref in self.refs.items()}
        return self.trainable(config, **values)


_RESOURCE_KEYS = {"cpu": "CPU", "gpu": "GPU", "CPU": "CPU", "GPU": "GPU"}


def normalize_resources(resources: Any) -> dict[str, float]:
    """``{"cpu": 1, "gpu": 0.5, "custom": 2}`` as cluster resource names; bad input raises.

    A ``tune.PlacementGroupFactory`` gives the sum of its bundles (what a trial holds).
    """
    from runtime.tune.placement_groups import PlacementGroupFactory

    if isinstance(resources, PlacementGroupFactory):
        return resources.required_resources
    if not isinstance(resources, dict):
        raise TuneError(
            "resources_per_trial must be a dict such as {'cpu': 1, 'gpu': 0} or a "
            f"tune.PlacementGroupFactory, got {type(resources).__name__}"
        )
    out: dict[str, float] = {}
    for key, value in resources.items():
        if key in ("memory", "custom_resources", "extra_cpu", "extra_gpu"):
            raise TuneError(f"resources_per_trial key {key!r} is not supported by twinray's Tune")
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise TuneError(f"resources_per_trial[{key!r}] must be a number >= 0, got {value!r}")
        out[_RESOURCE_KEYS.get(key, key)] = float(value)
    out.setdefault("CPU", 1.0)
    return out


def with_resources(trainable: Any, resources: Any) -> _WithResources:
    """``trainable`` whose trials each ask for ``resources`` ({"cpu": 2, "gpu": 1}... or a
    ``tune.PlacementGroupFactory``)."""
    normalize_resources(resources)
    return _WithResources(trainable, resources)


def with_parameters(trainable: Callable[..., Any], **kwargs: Any) -> _WithParameters:
    """``trainable`` called as ``trainable(config, **kwargs)``, kwargs put in the object store."""
    if isinstance(trainable, type) or not callable(trainable):
        raise TuneError("tune.with_parameters() takes a function trainable")
    import runtime

    return _WithParameters(trainable, {name: runtime.put(v) for name, v in kwargs.items()})


def trainable_name(trainable: Any) -> str:
    """The name trials of ``trainable`` are named after (the class or function name)."""
    return str(getattr(trainable, "__name__", type(trainable).__name__))


def check_trainable(trainable: Any) -> None:
    """Raise TuneError unless ``trainable`` is a Trainable subclass or a function of ``config``."""
    inner = trainable.trainable if isinstance(trainable, _WithResources) else trainable
    if isinstance(inner, type):
        if not issubclass(inner, Trainable):
            raise TuneError(
                f"a class trainable must subclass tune.Trainable; {inner.__name__} does not"
            )
        return
    if isinstance(inner, str):
        raise TuneError(
            f"trainable {inner!r}: registered trainables by name are not supported; "
            "pass the function or class"
        )
    if not callable(inner):
        raise TuneError(f"a trainable is a function or a tune.Trainable class, got {inner!r}")
    if isinstance(inner, _WithParameters):
        return
    params = list(inspect.signature(inner).parameters.values())
    if not params:
        raise TuneError(
            f"function trainable {trainable_name(inner)} must take one argument (the config)"
        )


class _Abandoned(BaseException):
    """Raised in a function trainable's thread whose actor moved on to another trial."""


class _Channel:
    """The hand-over between a function trainable's thread and the actor's ``train()``."""

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.resume = threading.Semaphore(0)
        self.abandoned = False

    def put_result(self, result: dict[str, Any], checkpoint: str | None) -> None:
        self.results.put(("result", (result, checkpoint)))
        self.resume.acquire()
        if self.abandoned:
            raise _Abandoned()

    def abandon(self) -> None:
        """End the thread waiting in ``put_result`` (its actor runs another trial now)."""
        self.abandoned = True
        self.resume.release()


class _FunctionRunner:
    """Runs a function trainable in a thread, one report per ``next()``."""

    def __init__(self, fn: Callable[..., Any], config: dict[str, Any], start: Any) -> None:
        self._channel = _Channel()
        self._fn = fn
        self._config = config
        self._session = _session.FunctionSession(start, config, self._channel)
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        _session.set_session(self._session)
        try:
            self._fn(self._config)
        except _Abandoned:
            return
        except BaseException as exc:  # the trial's failure, raised in the actor by next()
            self._channel.results.put(("error", exc))
        else:
            self._channel.results.put(("end", None))

    def next(self) -> dict[str, Any]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tune-trial", daemon=True)
            self._thread.start()
        else:
            self._channel.resume.release()
        kind, payload = self._channel.results.get()
        if kind == "error":
            raise payload
        if kind == "end":
            return {"done": True}
        result, checkpoint = payload
        return {"result": result, "checkpoint": checkpoint}

    def save(self) -> str | None:
        return None

    def stop(self) -> None:
        return None

    def abandon(self) -> None:
        """Let a thread still waiting in ``tune.report`` end (the actor is reused)."""
        if self._thread is not None and self._thread.is_alive():
            self._channel.abandon()
            self._thread.join(timeout=10)


class _ClassRunner:
    """Runs a Trainable subclass: one ``train()`` per ``next()``, saves on demand."""

    def __init__(self, cls: type[Trainable], config: dict[str, Any], start: Any) -> None:
        self._start = start
        self._trainable = cls(config, _start=start)
        if start.checkpoint_path:
            self._trainable.restore(start.checkpoint_path)

    def next(self) -> dict[str, Any]:
        result = self._trainable.train()
        checkpoint = None
        freq = self._start.checkpoint_frequency
        if (freq and result["training_iteration"] % freq == 0) or result.get("should_checkpoint"):
            checkpoint = self.save()
            result["checkpoint_dir_name"] = checkpoint
        return {"result": result, "checkpoint": checkpoint}

    def save(self) -> str | None:
        with tempfile.TemporaryDirectory(prefix="tune_save_") as tmp:
            self._trainable.save(tmp)
            return _session.persist_checkpoint(tmp, self._start)

    def stop(self) -> None:
        self._trainable.stop()

    def reset(self, config: dict[str, Any], start: Any) -> bool:
        """Take another trial in the same Trainable: ``reset_config`` (False: cannot)."""
        trainable = self._trainable
        if not trainable.reset_config(copy.deepcopy(config)):
            return False
        trainable.config = dict(config)
        trainable._start = start
        trainable._clock = _session.ResultClock(start, trainable.config)
        self._start = start
        if start.checkpoint_path:
            trainable.restore(start.checkpoint_path)
        return True


class TrialActor:
    """The actor one trial runs in: ``train()`` gives its next result, ``save()`` a checkpoint."""

    def __init__(self, trainable: Any, config: dict[str, Any], start: Any) -> None:
        self._args = (trainable, config, start)
        self._runner: _FunctionRunner | _ClassRunner | None = None

    def _get_runner(self) -> _FunctionRunner | _ClassRunner:
        if self._runner is None:
            trainable, config, start = self._args
            os.makedirs(start.trial_dir, exist_ok=True)
            if isinstance(trainable, type):
                self._runner = _ClassRunner(trainable, config, start)
            else:
                self._runner = _FunctionRunner(trainable, config, start)
        return self._runner

    def train(self) -> dict[str, Any]:
        """The next result ({"result", "checkpoint"}) or {"done": True} when the trainable ended."""
        return self._get_runner().next()

    def save(self) -> str | None:
        """Save a checkpoint into the trial directory (class trainables); its directory name."""
        return self._get_runner().save()

    def stop(self) -> None:
        """Run the trainable's cleanup."""
        if self._runner is not None:
            self._runner.stop()

    def reset(self, config: dict[str, Any], start: Any) -> bool:
        """Run another trial in this actor (``reuse_actors``); False when it cannot.

        A class trainable takes the new config through ``reset_config`` (Ray's rule: it
        must return True); a function trainable starts afresh with a new session.
        """
        trainable = self._args[0]
        runner = self._runner
        self._args = (trainable, config, start)
        if isinstance(runner, _ClassRunner):
            os.makedirs(start.trial_dir, exist_ok=True)
            return runner.reset(config, start)
        if isinstance(runner, _FunctionRunner):
            runner.abandon()
        self._runner = None  # built on the next train()
        return True
