"""``tune.Callback``: hooks the Tune controller calls as an experiment runs (Ray's names and order)."""

from __future__ import annotations

from typing import Any


class Callback:
    """Subclass and override the hooks you need; each takes Ray's keyword arguments.

    ``iteration`` counts the controller's loop steps; ``trials`` is the list of all trials
    so far (each with ``trial_id``, ``config``, ``status``, ``last_result``, ``path``);
    ``**info`` is for arguments later versions add. Hooks run in the driver, in the
    controller's loop: a hook that raises ends the experiment with that error.
    """

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        """Called once before the first trial starts."""

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Called at the start of each step of the controller's loop."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Called at the end of each step of the controller's loop."""

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial's actor was started (first start, resume or retry)."""

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial started from a checkpoint (resumed after a pause, a failure or an exploit)."""

    def on_trial_save(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """The controller had a class trainable save a checkpoint."""

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """A trial reported ``result`` (already decided on; it may be changed in place)."""

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished (its trainable returned, or the scheduler or a stopper stopped it)."""

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed and will be retried (``max_failures`` allows it)."""

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed for good: it is marked ERROR."""

    def on_checkpoint(
        self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        """A trial has a new checkpoint (a ``tune.Checkpoint`` in its directory)."""

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Called once after the last trial finished."""


class CallbackList:
    """Calls each callback's hook in the order they were given."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def __getattr__(self, hook: str) -> Any:
        if not hook.startswith(("on_", "setup")):
            raise AttributeError(hook)

        def call(**kwargs: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(**kwargs)

        return call


def check_callbacks(callbacks: Any) -> list[Callback]:
    """The callbacks as a list; TuneError naming one that is not a ``tune.Callback``."""
    from runtime.tune.errors import TuneError

    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        raise TuneError(
            f"RunConfig: `callbacks` must be a list of tune.Callback, got {type(callbacks).__name__}"
        )
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TuneError(
                f"RunConfig: every callback must be a tune.Callback instance, got {callback!r}"
            )
    return list(callbacks)


__all__ = ["Callback", "CallbackList", "check_callbacks"]
