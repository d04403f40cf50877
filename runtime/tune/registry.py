"""Trainables by name (Ray's ``ray.tune.registry``): ``"PPO"``/``"PG"`` built in, yours registered.

``register_trainable(name, trainable)`` makes ``Tuner(name)`` and ``tune.run(name)`` work;
RLlib's algorithms are known by name from the start and load on first use.
``register_env`` is RLlib's environment registry, kept here under Ray's import path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from runtime.tune.errors import TuneError

_TRAINABLES: dict[str, Any] = {}

BUILTIN_TRAINABLES: dict[str, tuple[str, str]] = {
    "PPO": ("runtime.rllib.algorithms.trainable", "PPOTrainable"),
    "PG": ("runtime.rllib.algorithms.trainable", "PGTrainable"),
}
"""Names that resolve without registration: module and class, imported on first use."""


def register_trainable(name: str, trainable: Any) -> None:
    """Make `trainable` (a function or a Trainable class) known as `name`."""
    if not isinstance(name, str) or not name:
        raise TuneError(f"register_trainable: name must be a non-empty str, got {name!r}")
    if isinstance(trainable, str) or not callable(trainable):
        raise TuneError(
            f"register_trainable({name!r}): a trainable is a function or a Trainable class, "
            f"got {trainable!r}"
        )
    _TRAINABLES[name] = trainable


def get_trainable_cls(name: str) -> Any:
    """The trainable registered (or built in) as `name`; TuneError lists the known names."""
    if name in _TRAINABLES:
        return _TRAINABLES[name]
    if name in BUILTIN_TRAINABLES:
        module, attr = BUILTIN_TRAINABLES[name]
        return getattr(importlib.import_module(module), attr)
    known = sorted({*_TRAINABLES, *BUILTIN_TRAINABLES})
    raise TuneError(
        f"unknown trainable {name!r}: register it with tune.register_trainable; known: {known}"
    )


def resolve_trainable(trainable: Any) -> Any:
    """`trainable` itself, or the trainable a name stands for."""
    return get_trainable_cls(trainable) if isinstance(trainable, str) else trainable


def register_env(name: str, env_creator: Callable[[dict[str, Any]], Any]) -> None:
    """Register an environment creator for RLlib (``runtime.rllib.env.make.register_env``)."""
    from runtime.rllib.env.make import register_env as rllib_register_env

    rllib_register_env(name, env_creator)
