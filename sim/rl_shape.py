"""An `rl` workload shaped from an RLlib config (`from_rllib`) and timed by a calibration profile.

`derive_rl_fields` fills a raw `rl` workload's shape fields from its ``from_rllib``
block with `runtime.core.rl_shape.rl_shape`, the derivation `runtime.rllib` itself uses:
rollout actors = env runners, sample bytes = one runner's fragment, weights bytes = the
network's parameters x 4, learner CPUs from ``num_learners``/``num_cpus_per_learner``.
With a ``timing_profile`` (written by `python -m twin.calibrate_rl`, which times real PPO
iterations) it also sets ``rollout_ms`` and ``train_ms`` from the fitted per-step costs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from runtime.core.rl_shape import RLShape, RLShapeError, RLTimings, rl_shape

SHAPE_FIELDS = ("rollout_actors", "rollout_cpus", "learner_cpus", "sample_bytes", "weights_bytes")
"""Workload fields `from_rllib` derives (a scenario may not set them to something else)."""

TIMING_FIELDS = ("rollout_ms", "train_ms")
"""Workload fields a `timing_profile` derives."""


class RLProfileError(ValueError):
    """An RL timing profile could not be read or lacks its `rl_timing` mapping."""


def load_rl_timings(path: str | Path) -> RLTimings:
    """The `rl_timing` of a profile written by `python -m twin.calibrate_rl`."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RLProfileError(f"cannot read RL timing profile {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RLProfileError(f"RL timing profile {path} is not valid YAML: {exc}") from None
    timing = data.get("rl_timing") if isinstance(data, dict) else None
    names = [f.name for f in dataclasses.fields(RLTimings)]
    if not isinstance(timing, dict) or not all(
        isinstance(timing.get(n), int | float) for n in names
    ):
        raise RLProfileError(
            f"RL timing profile {path}: expected an rl_timing mapping with numbers {names}"
        )
    return RLTimings(**{n: float(timing[n]) for n in names})


def shape_of(from_rllib: dict[str, Any]) -> RLShape:
    """The iteration shape of a ``from_rllib`` mapping (``model`` or ``model_config``)."""
    settings = {k: v for k, v in from_rllib.items() if k not in ("algo", "model")}
    if from_rllib.get("model") is not None:
        settings["model_config"] = {k: v for k, v in from_rllib["model"].items() if v is not None}
    return rl_shape(str(from_rllib.get("algo", "PPO")), settings)


def _constant(value: float) -> dict[str, Any]:
    return {"dist": "constant", "value": float(value)}


def _same(given: Any, derived: Any) -> bool:
    """Whether a scenario's value of a derived field is the derived one (a dump of it, say)."""
    if isinstance(derived, dict):
        if isinstance(given, int | float) and not isinstance(given, bool):
            given = _constant(given)
        return isinstance(given, dict) and given == derived
    return given == derived


def _shown(value: Any) -> str:
    if isinstance(value, dict) and value.get("dist") == "constant":
        return f"{value.get('value'):g}"
    return repr(value)


def derive_rl_fields(data: dict[str, Any], from_rllib: dict[str, Any]) -> dict[str, Any]:
    """`data` (a raw rl workload) with its shape (and timing) fields derived; ValueError if
    the scenario sets one of them to a different value or the config cannot be shaped."""
    try:
        shape = shape_of(from_rllib)
    except RLShapeError as exc:
        raise ValueError(f"from_rllib: {exc}") from None
    derived: dict[str, Any] = {
        "rollout_actors": shape.sampling_runners,
        "rollout_cpus": shape.runner_cpus,
        "learner_cpus": shape.learner_cpus,
        "sample_bytes": _constant(shape.sample_bytes),
        "weights_bytes": _constant(shape.weights_bytes),
    }
    profile = data.get("timing_profile")
    if isinstance(profile, str):
        try:
            timings = load_rl_timings(profile)
        except RLProfileError as exc:
            raise ValueError(f"timing_profile: {exc}") from None
        derived["rollout_ms"] = _constant(timings.rollout_ms(shape))
        derived["train_ms"] = _constant(timings.train_ms(shape))
    clashes = [
        f"{k} (given {_shown(data[k])}, derived {_shown(v)})"
        for k, v in derived.items()
        if k in data and not _same(data[k], v)
    ]
    if clashes:
        source = "from_rllib and timing_profile" if isinstance(profile, str) else "from_rllib"
        raise ValueError(
            f"{'; '.join(clashes)}: these fields are derived from {source}; change "
            f"{source} instead, or drop from_rllib"
        )
    defaults = {"learner_gpus": 0.0}  # RLlib's num_gpus_per_learner default: a CPU learner
    return {**defaults, **data, **derived}


__all__ = [
    "SHAPE_FIELDS",
    "TIMING_FIELDS",
    "RLProfileError",
    "derive_rl_fields",
    "load_rl_timings",
    "shape_of",
]
