"""RLlib algorithms as Tune trainables: ``Tuner("PPO", param_space=config)``, ``tune.run(PPOTrainer)``.

A trial's actor builds the algorithm from the trial's config dict and runs one ``train()``
per step. The trial reserves the CPUs of the whole algorithm (``default_resource_request``:
one for the trial's driver and learner, plus each env runner's), and the env runners it
starts then take no CPU of their own, as Ray's placement-group bundles do for RLlib trials.
"""

from __future__ import annotations

from typing import Any

from runtime.rllib.algorithms.algorithm import Algorithm
from runtime.rllib.algorithms.pg import PG
from runtime.rllib.algorithms.ppo import PPO
from runtime.tune.trainable import Trainable

_FILLED_BY_TUNE = (
    "training_iteration",
    "iterations_since_restore",
    "time_this_iter_s",
    "time_total_s",
    "time_since_restore",
    "timestamp",
    "date",
    "done",
    "pid",
    "hostname",
    "config",
)
"""Result keys the Tune session fills itself (its clock counts restored iterations too)."""


def _plain(value: Any) -> Any:
    """A search-space leaf resolved by Tune, or the default when a domain is still there."""
    return value if isinstance(value, int | float | bool | str | None) else None


class AlgorithmTrainable(Trainable):
    """A Tune trainable running one RLlib algorithm (set `algorithm_class` in a subclass)."""

    algorithm_class: type[Algorithm] = Algorithm

    def __init__(
        self, config: dict[str, Any] | None = None, env: Any = None, **kwargs: Any
    ) -> None:
        # env=: the old trainer API, ``PPOTrainer(config={...}, env="CartPole-v1")``.
        config = dict(config or {})
        if env is not None:
            config["env"] = env
        super().__init__(config, **kwargs)

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> dict[str, float]:
        """CPUs a trial of this config holds: 1 (driver, learner) + each env runner's."""
        defaults = cls.algorithm_class.get_default_config()
        runners = _plain(config.get("num_env_runners", config.get("num_workers")))
        per_runner = _plain(config.get("num_cpus_per_env_runner"))
        runners = defaults.num_env_runners if runners is None else runners
        per_runner = defaults.num_cpus_per_env_runner if per_runner is None else per_runner
        return {"cpu": 1.0 + float(runners) * float(per_runner)}

    def setup(self, config: dict[str, Any]) -> None:
        """Build the algorithm from the trial's config dict (Ray's keys, old ones too)."""
        self.algorithm = self.algorithm_class(config=dict(config), _resources_reserved=True)

    def step(self) -> dict[str, Any]:
        """One training iteration of the algorithm."""
        result = self.algorithm.train()
        for key in _FILLED_BY_TUNE:
            result.pop(key, None)
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Write the algorithm's checkpoint into the trial's checkpoint directory."""
        self.algorithm.save_to_path(checkpoint_dir)

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        """Restore the algorithm from a checkpoint directory."""
        self.algorithm.restore(checkpoint)

    def cleanup(self) -> None:
        """Stop the algorithm's env runners."""
        self.algorithm.stop()

    def compute_single_action(self, observation: Any, *, explore: bool | None = None) -> Any:
        """The algorithm's `compute_single_action` (the old trainer API)."""
        return self.algorithm.compute_single_action(observation, explore=explore)

    def evaluate(self) -> dict[str, Any]:
        """The algorithm's `evaluate`."""
        return self.algorithm.evaluate()

    def get_weights(self, policies: list[str] | None = None) -> dict[str, Any]:
        """Policy id -> its weights (the algorithm's `get_weights`)."""
        return self.algorithm.get_weights(policies)


class PPOTrainable(AlgorithmTrainable):
    """PPO as a Tune trainable (``Tuner("PPO")``)."""

    algorithm_class = PPO


class PGTrainable(AlgorithmTrainable):
    """PG as a Tune trainable (``Tuner("PG")``)."""

    algorithm_class = PG
