"""The default policy network: policy and value MLPs, gradients by JAX (``jax.vjp``, jitted).

JAX is imported on the first `backward`, so only the learner's process loads it (env
runners only run the numpy forward pass); ``JAX_PLATFORMS`` defaults to ``cpu`` there (the
accelerator stays free and JAX stays quiet).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from runtime.core import rl_shape
from runtime.rllib.core.network import PolicyNetwork, Weights
from runtime.rllib.utils.error import RLlibConfigError

ACTIVATIONS = ("tanh", "relu", "linear")
"""The values ``model_config["fcnet_activation"]`` accepts (Ray's names)."""

MODEL_DEFAULTS: dict[str, Any] = rl_shape.MODEL_DEFAULTS
"""The model_config keys this network reads, with its defaults (shared with the simulator)."""


def _import_jax() -> Any:
    # CPU only (the accelerator stays free, no probing messages) and one XLA thread: the
    # learner's matrices are small and the machine's cores run the env runners.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    import jax

    return jax


def model_settings(model_config: dict[str, Any]) -> dict[str, Any]:
    """model_config merged over the defaults; an unknown key or bad value is named."""
    unknown = sorted(set(model_config) - set(MODEL_DEFAULTS))
    if unknown:
        raise RLlibConfigError(
            f"model_config has unknown keys {unknown}; the JAX MLP reads {sorted(MODEL_DEFAULTS)}"
        )
    settings = {**MODEL_DEFAULTS, **model_config}
    hiddens = settings["fcnet_hiddens"]
    if not isinstance(hiddens, list | tuple) or not all(
        isinstance(h, int) and h > 0 for h in hiddens
    ):
        raise RLlibConfigError(
            f"model_config['fcnet_hiddens'] must be a list of positive ints, got {hiddens!r}"
        )
    if settings["fcnet_activation"] not in ACTIVATIONS:
        raise RLlibConfigError(
            f"model_config['fcnet_activation'] must be one of {ACTIVATIONS}, "
            f"got {settings['fcnet_activation']!r}"
        )
    return settings


class JaxMLP(PolicyNetwork):
    """Policy head and value head on MLP bodies (shared when ``vf_share_layers``).

    The forward pass is plain numpy (an env runner steps one observation batch at a time,
    where a JAX dispatch would cost more than the arithmetic), so env runners never load
    JAX; gradients come from ``jax.vjp`` of the same function, jitted, built on the first
    `backward` (the learner's process only).
    """

    def __init__(
        self, obs_dim: int, num_actions: int, model_config: dict[str, Any], seed: int
    ) -> None:
        settings = model_settings(model_config)
        self._hiddens = [int(h) for h in settings["fcnet_hiddens"]]
        self._shared = bool(settings["vf_share_layers"])
        self._activation = str(settings["fcnet_activation"])
        self._weights = self._initial_weights(obs_dim, num_actions, seed)
        self._names = sorted(self._weights)
        self._vjp: Any = None

    def _apply(self, xp: Any, act: Any, params: dict[str, Any], obs: Any) -> tuple[Any, Any]:
        """The network as one function of `params`, for numpy (`xp=np`) or jax.numpy."""

        def body(prefix: str, x: Any) -> Any:
            for i in range(len(self._hiddens)):
                x = act(x @ params[f"{prefix}{i}_w"] + params[f"{prefix}{i}_b"])
            return x

        pi_body = body("pi", obs)
        vf_body = pi_body if self._shared else body("vf", obs)
        logits = pi_body @ params["pi_out_w"] + params["pi_out_b"]
        values = (vf_body @ params["vf_out_w"] + params["vf_out_b"])[:, 0]
        return logits, values

    def _numpy_activation(self) -> Any:
        return {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0), "linear": lambda x: x}[
            self._activation
        ]

    def _build_vjp(self) -> Any:
        jax = _import_jax()
        act = {"tanh": jax.numpy.tanh, "relu": jax.nn.relu, "linear": lambda x: x}[self._activation]

        def vjp(params: dict[str, Any], obs: Any, g_logits: Any, g_values: Any) -> Any:
            _, pullback = jax.vjp(lambda p: self._apply(jax.numpy, act, p, obs), params)
            return pullback((g_logits, g_values))[0]

        return jax.jit(vjp)

    def _initial_weights(self, obs_dim: int, num_actions: int, seed: int) -> Weights:
        rng = np.random.default_rng(seed)

        def dense(fan_in: int, fan_out: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
            # Orthogonal-like init scaled per layer (normalised Gaussian columns).
            w = rng.standard_normal((fan_in, fan_out)).astype(np.float32)
            w *= scale / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-8)
            return w, np.zeros(fan_out, np.float32)

        shapes = rl_shape.model_layer_shapes(obs_dim, num_actions, self._hiddens, self._shared)
        scales = {"pi_out_w": 0.01}  # a near-uniform (near-zero-mean) policy at the start
        weights: Weights = {}
        for name, shape in shapes.items():
            if name.endswith("_w"):
                fan_in, fan_out = shape
                weights[name], weights[name[:-1] + "b"] = dense(
                    fan_in, fan_out, scales.get(name, 1.0)
                )
        return weights

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and values (numpy, float32)."""
        x = np.asarray(obs, np.float32)
        return self._apply(np, self._numpy_activation(), self._weights, x)

    def backward(
        self, obs: np.ndarray, grad_logits: np.ndarray, grad_values: np.ndarray
    ) -> Weights:
        """Weight gradients by ``jax.vjp`` of the network, jitted."""
        if self._vjp is None:
            self._vjp = self._build_vjp()
        grads = self._vjp(
            self._weights,
            np.asarray(obs, np.float32),
            np.asarray(grad_logits, np.float32),
            np.asarray(grad_values, np.float32),
        )
        return {name: np.asarray(grads[name]) for name in self._names}

    def get_weights(self) -> Weights:
        """A copy of the weights."""
        return {name: np.array(w, copy=True) for name, w in self._weights.items()}

    def set_weights(self, weights: Weights) -> None:
        """Replace the weights; names and shapes must match."""
        if set(weights) != set(self._weights):
            raise ValueError(
                f"weights have names {sorted(weights)}, the network has {sorted(self._weights)}"
            )
        for name, w in weights.items():
            if np.shape(w) != self._weights[name].shape:
                raise ValueError(
                    f"weight {name!r} has shape {np.shape(w)}, the network's is "
                    f"{self._weights[name].shape}"
                )
        self._weights = {name: np.asarray(w, np.float32) for name, w in weights.items()}
