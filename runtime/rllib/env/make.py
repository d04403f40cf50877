"""Creating environments: a Gymnasium id, a registered creator or an Env class, checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.core.rl_shape import EnvSpaces
from runtime.rllib.utils.error import ERR_MSG_INVALID_ENV_DESCRIPTOR, EnvError

_CREATORS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def register_env(name: str, env_creator: Callable[[dict[str, Any]], Any]) -> None:
    """Register ``env_creator(env_config) -> gymnasium.Env`` under `name` (Ray's ``register_env``).

    The registry lives in this process; an algorithm sends the creator itself to its env
    runners, so it must be picklable (cloudpickle: a module function or a lambda).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_env: name must be a non-empty str, got {name!r}")
    if not callable(env_creator):
        raise TypeError(f"register_env: env_creator must be callable, got {env_creator!r}")
    _CREATORS[name] = env_creator


@dataclass(frozen=True)
class EnvSpec:
    """What an env runner needs to create its environments."""

    env: Any
    env_config: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> EnvSpec:
        """The same spec with a registered name replaced by its creator (for remote runners)."""
        if isinstance(self.env, str) and self.env in _CREATORS:
            return EnvSpec(_CREATORS[self.env], self.env_config)
        return self


Spaces = EnvSpaces
"""An environment's spaces (`runtime.core.rl_shape.EnvSpaces`: obs size, actions, continuity)."""


def make_env(spec: EnvSpec) -> Any:
    """Create one environment; an unknown name raises `EnvError` with the reason."""
    import gymnasium

    env = spec.env
    if isinstance(env, str):
        if env in _CREATORS:
            return _CREATORS[env](dict(spec.env_config))
        try:
            return gymnasium.make(env, **spec.env_config)
        except gymnasium.error.Error as exc:
            raise EnvError(ERR_MSG_INVALID_ENV_DESCRIPTOR.format(env=env, reason=exc)) from exc
    if isinstance(env, type) and issubclass(env, gymnasium.Env):
        return env(dict(spec.env_config))
    if callable(env):
        return env(dict(spec.env_config))
    raise EnvError(
        f"environment {env!r} is neither a Gymnasium id, a registered name, a gymnasium.Env "
        "subclass nor a creator function"
    )


def spaces_of(env: Any) -> EnvSpaces:
    """The spaces of `env`: a Box observation (flattened) and a Discrete or 1-D Box action."""
    import gymnasium

    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gymnasium.spaces.Box):
        raise EnvError(
            f"observation space {obs_space} is not supported: runtime.rllib takes a "
            "gymnasium.spaces.Box observation (flattened)"
        )
    obs_dim = int(np.prod(obs_space.shape))
    if isinstance(act_space, gymnasium.spaces.Discrete):
        return EnvSpaces(obs_dim, int(act_space.n))
    if isinstance(act_space, gymnasium.spaces.Box) and len(act_space.shape) == 1:
        return EnvSpaces(obs_dim, int(act_space.shape[0]), continuous=True)
    raise EnvError(
        f"action space {act_space} is not supported: runtime.rllib's policies are "
        "categorical over a gymnasium.spaces.Discrete action space or diagonal Gaussians "
        "over a 1-D gymnasium.spaces.Box"
    )
