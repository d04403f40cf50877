"""PPO: clipped surrogate, clipped value loss, entropy bonus, adaptive KL penalty (Ray's defaults)."""

from __future__ import annotations

from runtime.core.rl_shape import ALGO_DEFAULTS
from runtime.rllib.algorithms.algorithm import Algorithm
from runtime.rllib.algorithms.algorithm_config import COMMON_SETTINGS, AlgorithmConfig, _Setting
from runtime.rllib.core.losses import LossSettings
from runtime.rllib.utils.error import RLlibConfigError

PPO_SETTINGS: dict[str, _Setting] = {
    **COMMON_SETTINGS,
    "train_batch_size": _Setting(ALGO_DEFAULTS["PPO"]["train_batch_size"], "a positive int"),
    "minibatch_size": _Setting(ALGO_DEFAULTS["PPO"]["minibatch_size"], "None or a positive int"),
    "num_epochs": _Setting(ALGO_DEFAULTS["PPO"]["num_epochs"], "a positive int"),
    "shuffle_batch_per_epoch": _Setting(True, "a bool"),
    "lambda_": _Setting(1.0, "a number in [0, 1]"),
    "use_critic": _Setting(True, "a bool"),
    "use_gae": _Setting(True, "a bool"),
    "use_kl_loss": _Setting(True, "a bool"),
    "kl_coeff": _Setting(0.2, "a number >= 0"),
    "kl_target": _Setting(0.01, "a number > 0"),
    "vf_loss_coeff": _Setting(1.0, "a number >= 0"),
    "entropy_coeff": _Setting(0.0, "a number >= 0"),
    "clip_param": _Setting(0.3, "a number > 0"),
    "vf_clip_param": _Setting(10.0, "a number > 0"),
}
"""PPO's settings: the common ones plus Ray RLlib 2.60 PPOConfig's, with its defaults."""


class PPOConfig(AlgorithmConfig):
    """Settings of PPO (``PPOConfig().environment(...).training(clip_param=...)``)."""

    SETTINGS = PPO_SETTINGS

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class or PPO)

    def validate(self) -> None:
        """The common checks (the minibatch fits the batch among them), then GAE needs a critic."""
        super().validate()
        if self.use_gae and not self.use_critic:
            raise RLlibConfigError(
                "use_gae=True needs use_critic=True (GAE bootstraps from the value function)"
            )
        if not self.use_gae:
            raise RLlibConfigError(
                "use_gae=False is not supported by runtime.rllib's PPO (advantages come from GAE)"
            )


class PPO(Algorithm):
    """Proximal Policy Optimization on env-runner actors and a learner."""

    config_class = PPOConfig
    loss_name = "ppo"

    def _loss_settings(self) -> LossSettings:
        cfg = self.config
        return LossSettings(
            clip_param=float(cfg.clip_param),
            vf_clip_param=float(cfg.vf_clip_param),
            vf_loss_coeff=float(cfg.vf_loss_coeff),
            entropy_coeff=float(cfg.entropy_coeff),
            use_kl_loss=bool(cfg.use_kl_loss),
            use_critic=bool(cfg.use_critic),
        )
