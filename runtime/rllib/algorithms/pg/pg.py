"""PG: REINFORCE with a learned value baseline, on the same runners and learner as PPO."""

from __future__ import annotations

from runtime.core.rl_shape import ALGO_DEFAULTS
from runtime.rllib.algorithms.algorithm import Algorithm
from runtime.rllib.algorithms.algorithm_config import COMMON_SETTINGS, AlgorithmConfig, _Setting
from runtime.rllib.core.losses import LossSettings

PG_SETTINGS: dict[str, _Setting] = {
    **COMMON_SETTINGS,
    "lr": _Setting(0.0004, "a number > 0"),
    "train_batch_size": _Setting(ALGO_DEFAULTS["PG"]["train_batch_size"], "a positive int"),
    "minibatch_size": _Setting(ALGO_DEFAULTS["PG"]["minibatch_size"], "None or a positive int"),
    "num_epochs": _Setting(ALGO_DEFAULTS["PG"]["num_epochs"], "a positive int"),
    "shuffle_batch_per_epoch": _Setting(False, "a bool"),
    "lambda_": _Setting(1.0, "a number in [0, 1]"),
    "vf_loss_coeff": _Setting(0.5, "a number >= 0"),
    "entropy_coeff": _Setting(0.0, "a number >= 0"),
}
"""PG's settings: one gradient step per batch on the full batch by default (Ray's old PG: lr 0.0004)."""


class PGConfig(AlgorithmConfig):
    """Settings of the policy-gradient algorithm."""

    SETTINGS = PG_SETTINGS

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class or PG)


class PG(Algorithm):
    """Vanilla policy gradient: advantages are returns minus the value baseline (GAE, lambda_=1)."""

    config_class = PGConfig
    loss_name = "pg"

    def _loss_settings(self) -> LossSettings:
        cfg = self.config
        return LossSettings(
            clip_param=0.0,
            vf_clip_param=0.0,
            vf_loss_coeff=float(cfg.vf_loss_coeff),
            entropy_coeff=float(cfg.entropy_coeff),
            use_kl_loss=False,
            use_critic=True,
        )
