"""AlgorithmConfig: Ray RLlib's builder-style settings (`.environment().env_runners()...`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.core.rl_shape import RUNNER_DEFAULTS, steps_per_env
from runtime.rllib.utils.error import RLlibConfigError

if TYPE_CHECKING:
    from runtime.rllib.algorithms.algorithm import Algorithm


@dataclass(frozen=True)
class _Setting:
    """One setting: its default and the check its value must pass (a description)."""

    default: Any
    check: str


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _non_negative_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


CHECKS: dict[str, Any] = {
    "a positive int": _positive_int,
    "an int >= 0": _non_negative_int,
    "0 or 1": lambda v: v in (0, 1) and not isinstance(v, bool),
    "a number > 0": lambda v: _number(v) and v > 0,
    "a number >= 0": lambda v: _number(v) and v >= 0,
    "a number in [0, 1]": lambda v: _number(v) and 0 <= v <= 1,
    "None or a number > 0": lambda v: v is None or (_number(v) and v > 0),
    "None or a positive int": lambda v: v is None or _positive_int(v),
    "'auto' or a positive int": lambda v: v == "auto" or _positive_int(v),
    "a bool": lambda v: isinstance(v, bool),
    "a dict": lambda v: isinstance(v, dict),
    "an int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "'episodes' or 'timesteps'": lambda v: v in ("episodes", "timesteps"),
    "anything": lambda v: True,
    "None or callable": lambda v: v is None or callable(v),
    "None, 'jax' or 'torch'": lambda v: v in (None, "jax", "torch"),
}

COMMON_SETTINGS: dict[str, _Setting] = {
    "env": _Setting(None, "anything"),
    "env_config": _Setting({}, "a dict"),
    "num_env_runners": _Setting(RUNNER_DEFAULTS["num_env_runners"], "an int >= 0"),
    "num_envs_per_env_runner": _Setting(
        RUNNER_DEFAULTS["num_envs_per_env_runner"], "a positive int"
    ),
    "num_cpus_per_env_runner": _Setting(
        RUNNER_DEFAULTS["num_cpus_per_env_runner"], "a number >= 0"
    ),
    "rollout_fragment_length": _Setting(
        RUNNER_DEFAULTS["rollout_fragment_length"], "'auto' or a positive int"
    ),
    "explore": _Setting(True, "a bool"),
    "num_learners": _Setting(RUNNER_DEFAULTS["num_learners"], "0 or 1"),
    "num_cpus_per_learner": _Setting(RUNNER_DEFAULTS["num_cpus_per_learner"], "a number >= 0"),
    "lr": _Setting(5e-5, "a number > 0"),
    "train_batch_size": _Setting(4000, "a positive int"),
    "gamma": _Setting(0.99, "a number in [0, 1]"),
    "grad_clip": _Setting(None, "None or a number > 0"),
    "model_config": _Setting({}, "a dict"),
    "network": _Setting(None, "None or callable"),
    "framework_str": _Setting(None, "None, 'jax' or 'torch'"),
    "evaluation_interval": _Setting(None, "None or a positive int"),
    "evaluation_duration": _Setting(10, "a positive int"),
    "evaluation_duration_unit": _Setting("episodes", "'episodes' or 'timesteps'"),
    "evaluation_config": _Setting({}, "a dict"),
    "seed": _Setting(None, "anything"),
    "metrics_num_episodes_for_smoothing": _Setting(100, "a positive int"),
}
"""Settings every algorithm has, with Ray RLlib 2.60's names and defaults."""

OLD_NAMES = {
    "num_workers": "num_env_runners",
    "num_rollout_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "sgd_minibatch_size": "minibatch_size",
    "num_sgd_iter": "num_epochs",
    "lambda": "lambda_",
    "model": "model_config",
    "framework": "framework_str",
}
"""Old (pre-2.10) config-dict keys that `update_from_dict` still accepts, as Ray does."""

EVALUATION_CONFIG_KEYS = ("explore",)
"""What ``evaluation_config`` may override."""


def _is_search_space(value: Any) -> bool:
    """A Tune search-space value (``grid_search`` dict, a domain, ``sample_from``)."""
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        return True
    from runtime.core.tune.search_space import Domain

    return isinstance(value, Domain)


class AlgorithmConfig:
    """Settings of an algorithm; builder methods return ``self`` so calls chain as in Ray."""

    SETTINGS: dict[str, _Setting] = COMMON_SETTINGS
    algo_class: type[Algorithm] | None = None

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        if algo_class is not None:
            self.algo_class = algo_class
        for name, setting in self.SETTINGS.items():
            setattr(self, name, copy.deepcopy(setting.default))

    # -- builder methods (Ray's groups) -------------------------------------------------
    def _set(self, **values: Any) -> AlgorithmConfig:
        for name, value in values.items():
            if value is not None:
                self._check(name, value)
                setattr(self, name, value)
        return self

    def environment(
        self, env: Any = None, *, env_config: dict[str, Any] | None = None
    ) -> AlgorithmConfig:
        """The environment: a Gymnasium id, a name given to `register_env`, or an Env class."""
        return self._set(env=env, env_config=env_config)

    def env_runners(
        self,
        *,
        num_env_runners: int | None = None,
        num_envs_per_env_runner: int | None = None,
        num_cpus_per_env_runner: float | None = None,
        rollout_fragment_length: int | str | None = None,
        explore: bool | None = None,
    ) -> AlgorithmConfig:
        """How many env-runner actors, environments each, and steps per env per sample call."""
        return self._set(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=num_envs_per_env_runner,
            num_cpus_per_env_runner=num_cpus_per_env_runner,
            rollout_fragment_length=rollout_fragment_length,
            explore=explore,
        )

    def learners(
        self, *, num_learners: int | None = None, num_cpus_per_learner: float | None = None
    ) -> AlgorithmConfig:
        """0: the learner lives in the driver (Ray's default); 1: in a learner actor."""
        return self._set(num_learners=num_learners, num_cpus_per_learner=num_cpus_per_learner)

    def training(
        self,
        *,
        lr: float | None = None,
        train_batch_size: int | None = None,
        gamma: float | None = None,
        grad_clip: float | None = None,
        **algorithm_specific: Any,
    ) -> AlgorithmConfig:
        """Learning settings; the algorithm's own ones (``clip_param``...) by keyword."""
        for name in algorithm_specific:
            if name not in self.SETTINGS or name in COMMON_SETTINGS:
                raise RLlibConfigError(
                    f"{type(self).__name__}.training() got an unknown setting {name!r}; "
                    f"it takes lr, train_batch_size, gamma, grad_clip, "
                    f"{', '.join(sorted(set(self.SETTINGS) - set(COMMON_SETTINGS)))}"
                )
        return self._set(
            lr=lr,
            train_batch_size=train_batch_size,
            gamma=gamma,
            grad_clip=grad_clip,
            **algorithm_specific,
        )

    def rl_module(
        self, *, model_config: dict[str, Any] | None = None, network: Any = None
    ) -> AlgorithmConfig:
        """The network: `model_config` for the default JAX MLP, or your own `network` factory.

        `network` is a `runtime.rllib.core.network.PolicyNetwork` subclass (or a function)
        called as ``network(obs_dim, num_actions, model_config, seed)``.
        """
        return self._set(model_config=model_config, network=network)

    def framework(self, framework: str | None = None) -> AlgorithmConfig:
        """The default network's gradient library: 'jax' (the default) or 'torch'.

        Both build the same MLP (`runtime.core.rl_shape.model_layer_shapes`, same initial
        weights for a seed); 'torch' takes its gradients from ``torch.autograd`` (torch must
        be installed). TensorFlow ('tf', 'tf2') is refused: bring a network instead.
        """
        if framework in ("tf", "tf2"):
            raise RLlibConfigError(
                f"framework {framework!r} is not supported: runtime.rllib's default network "
                "is in 'jax' or 'torch'; a TensorFlow model plugs in as a PolicyNetwork "
                "(config.rl_module(network=...))"
            )
        return self._set(framework_str=framework)

    def network_factory(self) -> Any:
        """What builds the policy network: `network` if given, else the framework's MLP."""
        if self.network is not None:
            return self.network
        if self.framework_str == "torch":
            from runtime.rllib.core.torch_mlp import TorchMLP

            return TorchMLP
        return None  # the default: the JAX MLP

    def evaluation(
        self,
        *,
        evaluation_interval: int | None = None,
        evaluation_duration: int | None = None,
        evaluation_duration_unit: str | None = None,
        evaluation_config: dict[str, Any] | None = None,
    ) -> AlgorithmConfig:
        """Evaluate every `evaluation_interval` iterations for `evaluation_duration` episodes
        (or env steps, with ``evaluation_duration_unit="timesteps"``)."""
        if evaluation_config is not None:
            unknown = sorted(set(evaluation_config) - set(EVALUATION_CONFIG_KEYS))
            if unknown:
                raise RLlibConfigError(
                    f"evaluation_config has unknown keys {unknown}; it may set {list(EVALUATION_CONFIG_KEYS)}"
                )
        return self._set(
            evaluation_interval=evaluation_interval,
            evaluation_duration=evaluation_duration,
            evaluation_duration_unit=evaluation_duration_unit,
            evaluation_config=evaluation_config,
        )

    def debugging(self, *, seed: int | None = None) -> AlgorithmConfig:
        """The seed of networks, environments and action sampling (None: a fresh one)."""
        return self._set(seed=seed)

    def reporting(
        self, *, metrics_num_episodes_for_smoothing: int | None = None
    ) -> AlgorithmConfig:
        """How many recent episodes `episode_return_mean` averages over (Ray: 100)."""
        return self._set(metrics_num_episodes_for_smoothing=metrics_num_episodes_for_smoothing)

    # -- dicts, copies, checks ----------------------------------------------------------
    def _check(self, name: str, value: Any, *, allow_search_space: bool = True) -> None:
        setting = self.SETTINGS.get(name)
        if setting is None:
            raise RLlibConfigError(f"{type(self).__name__} has no setting {name!r}")
        if allow_search_space and _is_search_space(value):
            return  # a Tune search space: checked once the trial's value is drawn
        if not CHECKS[setting.check](value):
            raise RLlibConfigError(f"{name} must be {setting.check}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (what Tune's param_space and checkpoints hold)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.SETTINGS}

    def update_from_dict(self, config: dict[str, Any]) -> AlgorithmConfig:
        """Set from a dict of settings (old key names accepted); unknown keys are named."""
        for key, value in config.items():
            name = OLD_NAMES.get(key, key)
            if name not in self.SETTINGS:
                raise RLlibConfigError(
                    f"unknown {type(self).__name__} setting {key!r}; known: {sorted(self.SETTINGS)}"
                )
            if name == "evaluation_config":
                self.evaluation(evaluation_config=value)
                continue
            self._check(name, value)
            setattr(self, name, copy.deepcopy(value) if name != "network" else value)
        return self

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> AlgorithmConfig:
        """A new config of this class from a dict."""
        return cls().update_from_dict(config)

    def copy(self, copy_frozen: bool | None = None) -> AlgorithmConfig:
        """An independent copy."""
        del copy_frozen
        clone = type(self)(self.algo_class)
        clone.update_from_dict(self.to_dict())
        return clone

    def rollout_steps_per_env(self) -> int:
        """Steps each environment makes per sample call ('auto': train_batch_size shared out).

        The simulator's `rl` workload splits the batch with the same function
        (`runtime.core.rl_shape.steps_per_env`).
        """
        return steps_per_env(
            self.train_batch_size,
            self.num_env_runners,
            self.num_envs_per_env_runner,
            self.rollout_fragment_length,
        )

    def validate(self) -> None:
        """Check every value and the relations between them; raise RLlibConfigError."""
        for name in self.SETTINGS:
            self._check(name, getattr(self, name), allow_search_space=False)
        if self.network is not None and self.framework_str is not None:
            raise RLlibConfigError(
                f"framework={self.framework_str!r} chooses the default network, but a network "
                "is given (rl_module(network=...)): set one of them"
            )
        if self.env is None:
            raise RLlibConfigError(
                "no environment set: call config.environment('CartPole-v1') (or pass env=)"
            )
        minibatch = (
            getattr(self, "minibatch_size", None) if "minibatch_size" in self.SETTINGS else None
        )
        if minibatch is not None and minibatch > self.train_batch_size:
            raise RLlibConfigError(
                f"minibatch_size ({minibatch}) must be <= train_batch_size "
                f"({self.train_batch_size})"
            )

    def build_algo(self, env: Any = None) -> Algorithm:
        """Build the algorithm this config is for (Ray 2.60's name)."""
        if self.algo_class is None:
            raise RLlibConfigError(f"{type(self).__name__} has no algorithm class to build")
        config = self.copy()
        if env is not None:
            config.environment(env)
        return self.algo_class(config=config)

    def build(self, env: Any = None) -> Algorithm:
        """Build the algorithm (the older name of `build_algo`)."""
        return self.build_algo(env)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"
