"""Algorithm: env-runner actors sample with weights put once per iteration; a learner updates.

One training iteration: the learner's weights are put in the object store once, every env
runner's ``sample`` gets that one reference, the driver gathers their fragments and the
learner (in the driver, or a learner actor with ``num_learners=1``) computes advantages and
the update. The result dict has Ray RLlib 2.60's new-API-stack keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

import runtime
from runtime.core.rl_shape import RLShape, rl_shape
from runtime.rllib.algorithms.algorithm_config import AlgorithmConfig
from runtime.rllib.core.distributions import distribution
from runtime.rllib.core.learner import Learner, LearnerSpec
from runtime.rllib.core.losses import LossSettings
from runtime.rllib.core.network import build_network
from runtime.rllib.env.env_runner import EnvRunner, env_action
from runtime.rllib.env.make import EnvSpec, make_env, spaces_of
from runtime.rllib.utils.error import RLlibConfigError

DEFAULT_MODULE_ID = "default_policy"
ALL_MODULES = "__all_modules__"
STATE_FILE = "algorithm_state.pkl"
METADATA_FILE = "rllib_checkpoint.json"
CHECKPOINT_FORMAT = "twinray-rllib-1"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory (Ray's ``tune.Checkpoint`` has the same ``path``)."""

    path: str


@dataclass(frozen=True)
class SaveResult:
    """What `Algorithm.save` returns: ``.checkpoint.path`` and the metrics at save time."""

    checkpoint: Checkpoint
    metrics: dict[str, Any]


def _stats(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    return float(np.mean(values)), float(np.max(values)), float(np.min(values))


class Algorithm:
    """The base of PPO and PG: building runners and learner, `train`, checkpoints, evaluation."""

    config_class: type[AlgorithmConfig] = AlgorithmConfig
    loss_name = ""

    def __init__(
        self,
        config: AlgorithmConfig | dict[str, Any] | None = None,
        env: Any = None,
        *,
        _resources_reserved: bool = False,
    ) -> None:
        # _resources_reserved: a Tune trial already holds the runners' CPUs (see trainable.py).
        self.config = self._resolve_config(config, env)
        self._resources_reserved = _resources_reserved
        self._started_runtime = False
        self._runners: list[Any] = []
        self._learner_actor: Any = None
        self._local_runner: EnvRunner | None = None
        self._eval_runner: EnvRunner | None = None
        self._inference_network: Any = None
        self._stopped = False
        self.setup()

    # -- construction ----------------------------------------------------------------
    @classmethod
    def get_default_config(cls) -> AlgorithmConfig:
        """A fresh default config of this algorithm."""
        return cls.config_class(cls)

    @classmethod
    def _resolve_config(
        cls, config: AlgorithmConfig | dict[str, Any] | None, env: Any
    ) -> AlgorithmConfig:
        if config is None:
            resolved = cls.get_default_config()
        elif isinstance(config, AlgorithmConfig):
            if not isinstance(config, cls.config_class):
                raise RLlibConfigError(
                    f"{cls.__name__} needs a {cls.config_class.__name__}, got {type(config).__name__}"
                )
            resolved = config.copy()
        elif isinstance(config, dict):
            resolved = cls.get_default_config().update_from_dict(config)
        else:
            raise RLlibConfigError(
                f"config must be a {cls.config_class.__name__} or a dict, got {type(config).__name__}"
            )
        if env is not None:
            resolved.environment(env)
        resolved.algo_class = cls
        resolved.validate()
        return resolved

    def setup(self) -> None:
        """Create the environment spec, the learner and the env runners (actors)."""
        cfg = self.config
        self._seed = (
            int(cfg.seed) if cfg.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        )
        self._env_spec = EnvSpec(cfg.env, dict(cfg.env_config)).resolved()
        probe = make_env(self._env_spec)  # an unknown name fails here, in the driver
        try:
            self._spaces = spaces_of(probe)
        finally:
            probe.close()
        if not runtime.is_initialized():
            runtime.init()
            self._started_runtime = True
        spec = self._learner_spec()
        if cfg.num_learners == 0:
            self._learner: Learner | None = Learner(spec)
        else:
            self._learner = None
            cpus = 0 if self._resources_reserved else cfg.num_cpus_per_learner
            actor = runtime.remote(num_cpus=cpus)(Learner)
            self._learner_actor = actor.remote(spec)
        runner_args = (
            self._env_spec,
            cfg.network_factory(),
            cfg.model_config,
            cfg.num_envs_per_env_runner,
            self._seed,
        )
        if cfg.num_env_runners == 0:
            self._local_runner = EnvRunner(*runner_args, worker_index=0)
        else:
            cpus = 0 if self._resources_reserved else cfg.num_cpus_per_env_runner
            actor_class = runtime.remote(num_cpus=cpus)(EnvRunner)
            self._runners = [
                actor_class.remote(*runner_args, worker_index=i + 1)
                for i in range(cfg.num_env_runners)
            ]
            runtime.get([runner.ping.remote() for runner in self._runners])
        self.iteration = 0
        self._iterations_since_restore = 0
        self._time_total = 0.0
        self._time_since_restore = 0.0
        self._env_steps_lifetime = 0
        self._episodes_lifetime = 0
        self._weights_seq = 0
        window = cfg.metrics_num_episodes_for_smoothing
        self._recent_returns: deque[float] = deque(maxlen=window)
        self._recent_lengths: deque[int] = deque(maxlen=window)

    def _learner_spec(self) -> LearnerSpec:
        cfg = self.config
        return LearnerSpec(
            obs_dim=self._spaces.obs_dim,
            num_actions=self._spaces.num_outputs,
            network=cfg.network_factory(),
            model_config=dict(cfg.model_config),
            seed=self._seed,
            loss=self.loss_name,
            loss_settings=dataclasses.replace(
                self._loss_settings(), continuous=self._spaces.continuous
            ),
            lr=float(cfg.lr),
            grad_clip=cfg.grad_clip,
            num_epochs=cfg.num_epochs,
            minibatch_size=cfg.minibatch_size,
            shuffle_batch_per_epoch=cfg.shuffle_batch_per_epoch,
            gamma=float(cfg.gamma),
            lambda_=float(cfg.lambda_),
            kl_coeff=float(getattr(cfg, "kl_coeff", 0.0)),
            kl_target=float(getattr(cfg, "kl_target", 0.01)),
        )

    def _loss_settings(self) -> LossSettings:
        raise NotImplementedError  # each algorithm says which coefficients it uses

    # -- the learner, wherever it lives ------------------------------------------------
    def _learner_call(self, method: str, *args: Any) -> Any:
        if self._learner is not None:
            return getattr(self._learner, method)(*args)
        return runtime.get(getattr(self._learner_actor, method).remote(*args))

    def _policy_weights(self) -> dict[str, np.ndarray]:
        return self._learner_call("get_weights")

    def _set_policy_weights(self, weights: dict[str, np.ndarray]) -> None:
        state = self._learner_call("get_state")
        state["weights"] = weights
        self._learner_call("set_state", state)

    def get_weights(self, policies: list[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Module id -> its weights (RLlib's shape: ``{"default_policy": {name: array}}``)."""
        wanted = [DEFAULT_MODULE_ID] if policies is None else list(policies)
        unknown = sorted(set(wanted) - {DEFAULT_MODULE_ID})
        if unknown:
            raise ValueError(f"no module {unknown}; this algorithm has {[DEFAULT_MODULE_ID]}")
        return {DEFAULT_MODULE_ID: self._policy_weights()} if wanted else {}

    def set_weights(self, weights: dict[str, dict[str, np.ndarray]]) -> None:
        """Replace modules' weights, given as `get_weights` returns them (optimiser state stays)."""
        unknown = sorted(set(weights) - {DEFAULT_MODULE_ID})
        if unknown:
            raise ValueError(
                f"set_weights got weights of {unknown}; this algorithm has {[DEFAULT_MODULE_ID]} "
                "(pass {'default_policy': {name: array}}, as get_weights returns)"
            )
        if DEFAULT_MODULE_ID in weights:
            self._set_policy_weights(weights[DEFAULT_MODULE_ID])

    def get_policy(self, policy_id: str = DEFAULT_MODULE_ID) -> Policy:
        """The policy `policy_id` (RLlib's old-stack ``Policy``: actions, weights)."""
        if policy_id != DEFAULT_MODULE_ID:
            raise ValueError(f"no policy {policy_id!r}; this algorithm has {[DEFAULT_MODULE_ID]}")
        return Policy(self)

    def iteration_shape(self) -> RLShape:
        """What one iteration runs and moves (runners, batch split, bytes, parameters).

        The same derivation the simulator's `rl` workload uses for ``from_rllib``
        (`runtime.core.rl_shape.rl_shape`), with the spaces of this algorithm's environment.
        """
        algo = type(self).__name__
        return rl_shape(algo, self.config.to_dict(), self._spaces)

    # -- training ------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """One training iteration; Ray's result dict (also with evaluation when it is due)."""
        if self._stopped:
            raise RuntimeError("this algorithm was stopped; build a new one")
        start = time.perf_counter()
        result = self.training_step()
        self.iteration += 1
        self._iterations_since_restore += 1
        cfg = self.config
        if cfg.evaluation_interval and self.iteration % cfg.evaluation_interval == 0:
            result["evaluation"] = self.evaluate()
        elapsed = time.perf_counter() - start
        self._time_total += elapsed
        self._time_since_restore += elapsed
        result["timers"]["training_iteration"] = elapsed
        now = datetime.now()
        result.update(
            {
                "training_iteration": self.iteration,
                "iterations_since_restore": self._iterations_since_restore,
                "num_env_steps_sampled_lifetime": float(self._env_steps_lifetime),  # as Ray
                "time_this_iter_s": elapsed,
                "time_total_s": self._time_total,
                "time_since_restore": self._time_since_restore,
                "timestamp": int(time.time()),
                "date": now.strftime("%Y-%m-%d_%H-%M-%S"),
                "done": False,
                "pid": os.getpid(),
                "hostname": platform.node(),
                "num_training_step_calls_per_iteration": 1,
                "config": self._public_config(),
            }
        )
        return result

    def _public_config(self) -> dict[str, Any]:
        config = self.config.to_dict()
        if config.get("network") is not None:
            config["network"] = getattr(config["network"], "__name__", repr(config["network"]))
        return config

    def training_step(self) -> dict[str, Any]:
        """Broadcast weights (one put), sample on every runner, update the learner."""
        timers: dict[str, float] = {}
        t0 = time.perf_counter()
        self._weights_seq += 1
        if self._learner is not None:
            weights: Any = runtime.put(self._learner.get_weights())
        else:
            weights = self._learner_actor.get_weights.remote()  # one object-store ref
        t1 = time.perf_counter()
        timers["synch_weights"] = t1 - t0
        steps = self.config.rollout_steps_per_env()
        if self._local_runner is not None:
            samples = [self._local_runner.sample(runtime.get(weights), self._weights_seq, steps)]
        else:
            samples = runtime.get(
                [r.sample.remote(weights, self._weights_seq, steps) for r in self._runners]
            )
        t2 = time.perf_counter()
        timers["env_runner_sampling_timer"] = t2 - t1
        fragments = [s["fragment"] for s in samples]
        learner_stats = self._learner_call("update", fragments)
        timers["learner_update_timer"] = time.perf_counter() - t2
        timers["training_step"] = time.perf_counter() - t0
        return {
            "env_runners": self._env_runner_metrics(samples),
            "learners": {
                DEFAULT_MODULE_ID: learner_stats,
                ALL_MODULES: {
                    "num_env_steps_trained": learner_stats["num_env_steps_trained"],
                    "num_trainable_parameters": self._num_parameters(),
                },
            },
            "timers": timers,
        }

    def _num_parameters(self) -> int:
        if not hasattr(self, "_param_count"):
            self._param_count = int(self._learner_call("num_parameters"))
        return self._param_count

    def _env_runner_metrics(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        steps = sum(s["num_env_steps"] for s in samples)
        returns = [r for s in samples for r in s["episode_returns"]]
        lengths = [n for s in samples for n in s["episode_lengths"]]
        self._env_steps_lifetime += steps
        self._episodes_lifetime += len(returns)
        self._recent_returns.extend(returns)
        self._recent_lengths.extend(lengths)
        mean, high, low = _stats(list(self._recent_returns))
        len_mean, len_max, len_min = _stats([float(n) for n in self._recent_lengths])
        return {
            "episode_return_mean": mean,
            "episode_return_max": high,
            "episode_return_min": low,
            "episode_len_mean": len_mean,
            "episode_len_max": len_max,
            "episode_len_min": len_min,
            "num_episodes": len(returns),
            "num_episodes_lifetime": self._episodes_lifetime,
            "num_env_steps_sampled": steps,
            "num_env_steps_sampled_lifetime": float(self._env_steps_lifetime),
        }

    # -- evaluation and inference -----------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Evaluate for `evaluation_duration` episodes or timesteps (`evaluation_duration_unit`).

        Greedy unless ``evaluation_config`` explores. Episodes: that many fresh episodes.
        Timesteps: that many env steps (shared over the evaluation runner's environments,
        rounded up), its episodes running on across evaluations as on RLlib's evaluation
        runners; the episode statistics are those of the episodes that ended in them.
        """
        cfg = self.config
        if self._eval_runner is None:
            self._eval_runner = EnvRunner(
                self._env_spec,
                cfg.network_factory(),
                cfg.model_config,
                cfg.num_envs_per_env_runner,
                self._seed + 99_991,
                worker_index=0,
            )
        explore = bool(cfg.evaluation_config.get("explore", False))
        self._weights_seq += 1
        if cfg.evaluation_duration_unit == "timesteps":
            envs = cfg.num_envs_per_env_runner
            steps = -(-cfg.evaluation_duration // envs)
            out = self._eval_runner.sample(
                self._policy_weights(), self._weights_seq, steps, explore
            )
        else:
            out = self._eval_runner.sample_episodes(
                self._policy_weights(), self._weights_seq, cfg.evaluation_duration, explore
            )
        mean, high, low = _stats(out["episode_returns"])
        len_mean, len_max, len_min = _stats([float(n) for n in out["episode_lengths"]])
        return {
            "env_runners": {
                "episode_return_mean": mean,
                "episode_return_max": high,
                "episode_return_min": low,
                "episode_len_mean": len_mean,
                "episode_len_max": len_max,
                "episode_len_min": len_min,
                "num_episodes": len(out["episode_returns"]),
                "num_env_steps_sampled": out["num_env_steps"],
            }
        }

    def compute_single_action(self, observation: Any, *, explore: bool | None = None) -> Any:
        """The action the current policy takes in `observation` (sampled unless explore=False).

        Discrete: the action's index; continuous: the action vector mapped onto the action
        space's bounds (what the environment is given, RLlib's ``normalize_actions``).
        """
        cfg = self.config
        spaces = self._spaces
        if self._inference_network is None:
            self._inference_network = build_network(
                cfg.network_factory(),
                spaces.obs_dim,
                spaces.num_outputs,
                cfg.model_config,
                self._seed,
            )
            self._inference_rng = np.random.default_rng(self._seed + 5)
            probe = make_env(self._env_spec)
            self._action_space = probe.action_space
            probe.close()
        obs = np.asarray(observation, dtype=np.float32).reshape(-1)
        if obs.shape[0] != spaces.obs_dim:
            raise ValueError(
                f"observation has {obs.shape[0]} values, the environment's have {spaces.obs_dim}"
            )
        self._inference_network.set_weights(self._policy_weights())
        inputs, _ = self._inference_network.forward(obs[None, :])
        explore = cfg.explore if explore is None else explore
        action = distribution(spaces.continuous).sample(inputs, self._inference_rng, explore)[0]
        return env_action(action, spaces, self._action_space)

    # -- checkpoints -------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything a checkpoint holds: class, config, learner state, counters."""
        return {
            "algorithm_class": type(self),
            "config": self.config.to_dict(),
            "learner": self._learner_call("get_state"),
            "seed": self._seed,
            "iteration": self.iteration,
            "time_total": self._time_total,
            "env_steps_lifetime": self._env_steps_lifetime,
            "episodes_lifetime": self._episodes_lifetime,
            "recent_returns": list(self._recent_returns),
            "recent_lengths": list(self._recent_lengths),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what `get_state` returned."""
        self._learner_call("set_state", state["learner"])
        self.iteration = int(state["iteration"])
        self._time_total = float(state["time_total"])
        self._env_steps_lifetime = int(state["env_steps_lifetime"])
        self._episodes_lifetime = int(state["episodes_lifetime"])
        self._recent_returns.clear()
        self._recent_returns.extend(state["recent_returns"])
        self._recent_lengths.clear()
        self._recent_lengths.extend(state["recent_lengths"])
        self._iterations_since_restore = 0
        self._time_since_restore = 0.0

    def save_to_path(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write a checkpoint directory (a new temporary one when `path` is None); its path."""
        directory = (
            Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="twinray_rllib_"))
        )
        directory.mkdir(parents=True, exist_ok=True)
        (directory / STATE_FILE).write_bytes(cloudpickle.dumps(self.get_state()))
        metadata = {
            "type": "Algorithm",
            "format": CHECKPOINT_FORMAT,
            "algorithm": type(self).__name__,
            "training_iteration": self.iteration,
        }
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        return str(directory)

    def save(self, checkpoint_dir: str | None = None) -> SaveResult:
        """Save a checkpoint; ``.checkpoint.path`` is where (Ray's return shape)."""
        path = self.save_to_path(checkpoint_dir)
        return SaveResult(Checkpoint(path), {"training_iteration": self.iteration})

    @staticmethod
    def _checkpoint_path(checkpoint: Any) -> Path:
        if isinstance(checkpoint, SaveResult):
            checkpoint = checkpoint.checkpoint
        if isinstance(checkpoint, Checkpoint) or hasattr(checkpoint, "path"):
            checkpoint = checkpoint.path
        path = Path(checkpoint)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is not a runtime.rllib checkpoint (no {STATE_FILE} in it)"
            )
        return path

    @classmethod
    def _load_state(cls, checkpoint: Any) -> dict[str, Any]:
        return cloudpickle.loads((cls._checkpoint_path(checkpoint) / STATE_FILE).read_bytes())

    def restore(self, checkpoint: Any) -> None:
        """Load a checkpoint of this algorithm class (a path, `Checkpoint` or `SaveResult`)."""
        state = self._load_state(checkpoint)
        if not issubclass(type(self), state["algorithm_class"]) and not issubclass(
            state["algorithm_class"], type(self)
        ):
            raise RLlibConfigError(
                f"checkpoint is of {state['algorithm_class'].__name__}, not {type(self).__name__}"
            )
        self.set_state(state)

    def restore_from_path(self, path: str | os.PathLike[str]) -> None:
        """Ray 2.60's name for `restore` with a directory."""
        self.restore(str(path))

    @classmethod
    def from_checkpoint(cls, checkpoint: Any) -> Algorithm:
        """Build the algorithm a checkpoint was saved from, with its config and state."""
        state = cls._load_state(checkpoint)
        algo_class = state["algorithm_class"]
        config = dict(state["config"])
        config["seed"] = state["seed"]
        algo = algo_class(config=algo_class.get_default_config().update_from_dict(config))
        algo.set_state(state)
        return algo

    # -- shutdown ----------------------------------------------------------------------
    def stop(self) -> None:
        """Kill the env-runner and learner actors; shut twinray down if this algorithm started it."""
        if self._stopped:
            return
        self._stopped = True
        if runtime.is_initialized():
            for runner in self._runners:
                runtime.kill(runner)
            if self._learner_actor is not None:
                runtime.kill(self._learner_actor)
        self._runners = []
        self._learner_actor = None
        if self._started_runtime and runtime.is_initialized():
            runtime.shutdown()

    def __enter__(self) -> Algorithm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Policy:
    """An algorithm's policy as RLlib's old API stack hands it out (``algo.get_policy()``)."""

    def __init__(self, algo: Algorithm) -> None:
        self._algo = algo

    def compute_single_action(
        self, obs: Any, *, explore: bool | None = None
    ) -> tuple[Any, list[Any], dict[str, Any]]:
        """``(action, state_outs, extra)``: the action, no RNN state, no extra outputs."""
        return self._algo.compute_single_action(obs, explore=explore), [], {}

    def get_weights(self) -> dict[str, np.ndarray]:
        """The policy network's weights (name -> array)."""
        return self._algo._policy_weights()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Replace the policy network's weights (names and shapes as `get_weights`)."""
        self._algo._set_policy_weights(weights)

    def num_parameters(self) -> int:
        """How many trainable scalars the policy network has."""
        return self._algo._num_parameters()
