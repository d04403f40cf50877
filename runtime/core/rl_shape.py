"""The shape of one RL training iteration (runners, batch split, bytes, parameters) from an RLlib config.

One function, `rl_shape`, turns an algorithm's settings (Ray RLlib's names) into what an
iteration moves and runs: how many env runners sample, how many steps each environment
makes, how many bytes a runner's sample fragment holds, how many parameters (and bytes)
the policy has and where the learner runs. `runtime.rllib` uses the same formulas to
build its networks and fragments (`model_layer_shapes`, `fragment_columns`,
`steps_per_env`), and the simulator's `rl` workload takes its shape from `rl_shape`, so
the two cannot drift apart. Pure arithmetic: no framework, no Gymnasium (the simulator
knows environments' spaces from `KNOWN_ENV_SPACES`; the real algorithm passes the spaces
of the environment it built).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


class RLShapeError(ValueError):
    """An RL config the shape cannot be derived from (unknown algorithm, env or setting)."""


@dataclass(frozen=True)
class EnvSpaces:
    """An environment's flat observation size and its action space.

    Discrete: `action_dim` is the number of actions, the policy outputs one logit each.
    Continuous (a Box): `action_dim` is the size of the action vector, the policy outputs a
    mean and a log standard deviation per dimension (RLlib's diagonal Gaussian).
    """

    obs_dim: int
    action_dim: int
    continuous: bool = False

    @property
    def num_outputs(self) -> int:
        """The policy head's width (logits, or means and log-stds)."""
        return 2 * self.action_dim if self.continuous else self.action_dim

    @property
    def action_shape(self) -> tuple[int, ...]:
        """The shape of one action (a scalar index, or a vector)."""
        return (self.action_dim,) if self.continuous else ()

    @property
    def action_dtype(self) -> str:
        """The dtype actions are stored with in a fragment."""
        return "float32" if self.continuous else "int64"


KNOWN_ENV_SPACES: dict[str, EnvSpaces] = {
    "CartPole-v0": EnvSpaces(4, 2),
    "CartPole-v1": EnvSpaces(4, 2),
    "Acrobot-v1": EnvSpaces(6, 3),
    "MountainCar-v0": EnvSpaces(2, 3),
    "Pendulum-v1": EnvSpaces(3, 1, continuous=True),
    "MountainCarContinuous-v0": EnvSpaces(2, 1, continuous=True),
}
"""Gymnasium's classic-control environments (they ship with it): their spaces, for the
simulator, which must not import Gymnasium (tests check the table against Gymnasium)."""

DTYPE_BYTES: dict[str, int] = {"float32": 4, "int64": 8, "bool": 1}
"""Bytes per element of the dtypes fragments and weights use."""

WEIGHT_DTYPE: Final = "float32"
"""The dtype of a network's weights (what goes into the object store each iteration)."""

RUNNER_DEFAULTS: dict[str, Any] = {
    "num_env_runners": 2,
    "num_envs_per_env_runner": 1,
    "num_cpus_per_env_runner": 1,
    "rollout_fragment_length": "auto",
    "num_learners": 0,
    "num_cpus_per_learner": 1,
}
"""Ray RLlib 2.60's defaults of the settings that shape an iteration, for every algorithm."""

ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "PPO": {"train_batch_size": 4000, "num_epochs": 30, "minibatch_size": 128},
    "PG": {"train_batch_size": 2000, "num_epochs": 1, "minibatch_size": None},
}
"""Each algorithm's defaults of the batch settings (runtime.rllib's configs use these)."""

MODEL_DEFAULTS: dict[str, Any] = {
    "fcnet_hiddens": [64, 64],
    "fcnet_activation": "tanh",
    "vf_share_layers": False,
}
"""The default MLP's model_config (runtime.rllib's JAX MLP reads these)."""


def env_spaces(env: str) -> EnvSpaces:
    """The spaces of a Gymnasium environment id in `KNOWN_ENV_SPACES`, else RLShapeError."""
    spaces = KNOWN_ENV_SPACES.get(env) if isinstance(env, str) else None
    if spaces is None:
        raise RLShapeError(
            f"environment {env!r} has no known spaces; known: {sorted(KNOWN_ENV_SPACES)} "
            "(the simulator does not import Gymnasium to read them)"
        )
    return spaces


def model_layer_shapes(
    obs_dim: int, num_outputs: int, hiddens: list[int] | tuple[int, ...], vf_share_layers: bool
) -> dict[str, tuple[int, ...]]:
    """Weight name -> shape of the default MLP: policy and value bodies, then the two heads."""
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix in ("pi",) if vf_share_layers else ("pi", "vf"):
        fan_in = obs_dim
        for i, width in enumerate(hiddens):
            shapes[f"{prefix}{i}_w"], shapes[f"{prefix}{i}_b"] = (fan_in, width), (width,)
            fan_in = width
    last = hiddens[-1] if hiddens else obs_dim
    shapes["pi_out_w"], shapes["pi_out_b"] = (last, num_outputs), (num_outputs,)
    shapes["vf_out_w"], shapes["vf_out_b"] = (last, 1), (1,)
    return shapes


def parameter_count(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """How many scalars weights of these shapes hold."""
    return sum(math.prod(shape) for shape in shapes.values())


def fragment_columns(spaces: EnvSpaces) -> dict[str, tuple[tuple[int, ...], str]]:
    """Column -> (shape of one env step's entry, dtype) of an env runner's sample fragment."""
    return {
        "obs": ((spaces.obs_dim,), "float32"),
        "actions": (spaces.action_shape, spaces.action_dtype),
        "rewards": ((), "float32"),
        "ends": ((), "bool"),
        "values": ((), "float32"),
        "next_values": ((), "float32"),
        "action_logp": ((), "float32"),
        "action_dist_inputs": ((spaces.num_outputs,), "float32"),
    }


def fragment_bytes(spaces: EnvSpaces, steps: int, envs: int) -> int:
    """Bytes of the arrays of a fragment of `steps` steps of `envs` environments."""
    per_step = sum(
        math.prod(shape) * DTYPE_BYTES[dtype] for shape, dtype in fragment_columns(spaces).values()
    )
    return per_step * steps * envs


def steps_per_env(
    train_batch_size: int,
    num_env_runners: int,
    num_envs_per_env_runner: int,
    rollout_fragment_length: int | str,
) -> int:
    """Steps each environment makes per sample call ('auto': the batch shared out evenly)."""
    if rollout_fragment_length != "auto":
        return int(rollout_fragment_length)
    envs = max(1, num_env_runners) * num_envs_per_env_runner
    return math.ceil(train_batch_size / envs)


@dataclass(frozen=True)
class RLShape:
    """What one training iteration of an RLlib config runs and moves."""

    algo: str
    spaces: EnvSpaces
    num_env_runners: int
    """Env-runner actors (0: one runner samples in the driver)."""
    envs_per_runner: int
    steps_per_env: int
    num_epochs: int
    num_parameters: int
    runner_cpus: float
    learner_cpus: float
    """CPUs the learner holds: 0 when it lives in the driver (``num_learners=0``)."""

    @property
    def sampling_runners(self) -> int:
        """How many runners sample each iteration (the driver's own when there are none)."""
        return max(1, self.num_env_runners)

    @property
    def env_steps_per_runner(self) -> int:
        """Env steps one runner samples per iteration."""
        return self.steps_per_env * self.envs_per_runner

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps sampled (and trained on) per iteration."""
        return self.env_steps_per_runner * self.sampling_runners

    @property
    def sample_bytes(self) -> int:
        """Bytes of one runner's fragment per iteration."""
        return fragment_bytes(self.spaces, self.steps_per_env, self.envs_per_runner)

    @property
    def weights_bytes(self) -> int:
        """Bytes of the policy's weights (put in the object store once per iteration)."""
        return self.num_parameters * DTYPE_BYTES[WEIGHT_DTYPE]

    @property
    def bytes_per_iteration(self) -> int:
        """Bytes an iteration moves: every runner reads the weights and returns its fragment."""
        return self.sampling_runners * (self.weights_bytes + self.sample_bytes)


def settings_with_defaults(algo: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` over the algorithm's shape defaults (RUNNER_DEFAULTS, ALGO_DEFAULTS)."""
    if algo not in ALGO_DEFAULTS:
        raise RLShapeError(f"unknown algorithm {algo!r}; known: {sorted(ALGO_DEFAULTS)}")
    merged = {**RUNNER_DEFAULTS, **ALGO_DEFAULTS[algo]}
    merged.update({k: v for k, v in settings.items() if v is not None})
    model = {**MODEL_DEFAULTS, **dict(merged.get("model_config") or {})}
    merged["model_config"] = model
    return merged


def rl_shape(algo: str, settings: Mapping[str, Any], spaces: EnvSpaces | None = None) -> RLShape:
    """The shape of an iteration of `algo` with `settings` (Ray's names; missing: defaults).

    `spaces` are the environment's (default: `env_spaces(settings["env"])`).
    """
    s = settings_with_defaults(algo, settings)
    if spaces is None:
        spaces = env_spaces(str(s.get("env")))
    model = s["model_config"]
    hiddens = [int(h) for h in model["fcnet_hiddens"]]
    shapes = model_layer_shapes(
        spaces.obs_dim, spaces.num_outputs, hiddens, bool(model["vf_share_layers"])
    )
    runners = int(s["num_env_runners"])
    return RLShape(
        algo=algo,
        spaces=spaces,
        num_env_runners=runners,
        envs_per_runner=int(s["num_envs_per_env_runner"]),
        steps_per_env=steps_per_env(
            int(s["train_batch_size"]),
            runners,
            int(s["num_envs_per_env_runner"]),
            s["rollout_fragment_length"],
        ),
        num_epochs=int(s["num_epochs"]),
        num_parameters=parameter_count(shapes),
        runner_cpus=float(s["num_cpus_per_env_runner"]) if runners else 0.0,
        learner_cpus=float(s["num_cpus_per_learner"]) if int(s["num_learners"]) else 0.0,
    )


@dataclass(frozen=True)
class RLTimings:
    """Calibrated costs of an iteration: sampling per env step, learning per sample and epoch."""

    sample_ms_per_env_step: float
    sample_fixed_ms: float
    learn_ms_per_sample_epoch: float
    learn_fixed_ms: float

    def rollout_ms(self, shape: RLShape) -> float:
        """One runner's sample call of an iteration of `shape`."""
        return self.sample_fixed_ms + self.sample_ms_per_env_step * shape.env_steps_per_runner

    def train_ms(self, shape: RLShape) -> float:
        """The learner's update of an iteration of `shape` (all its epochs)."""
        work = shape.env_steps_per_iteration * shape.num_epochs
        return self.learn_fixed_ms + self.learn_ms_per_sample_epoch * work


__all__ = [
    "ALGO_DEFAULTS",
    "DTYPE_BYTES",
    "KNOWN_ENV_SPACES",
    "MODEL_DEFAULTS",
    "RUNNER_DEFAULTS",
    "EnvSpaces",
    "RLShape",
    "RLShapeError",
    "RLTimings",
    "env_spaces",
    "fragment_bytes",
    "fragment_columns",
    "model_layer_shapes",
    "parameter_count",
    "rl_shape",
    "settings_with_defaults",
    "steps_per_env",
]
