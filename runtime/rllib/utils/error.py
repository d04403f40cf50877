"""The exceptions `runtime.rllib` raises on bad input, under Ray RLlib's names."""

from __future__ import annotations


class EnvError(Exception):
    """The environment cannot be created: unknown name, or a space RLlib-on-twinray lacks.

    Ray RLlib raises its ``EnvError`` (``ray.rllib.utils.error``) for an env string that is
    neither an installed Gymnasium environment nor a registered creator; so does this.
    """


class RLlibConfigError(ValueError):
    """An algorithm config holds a value out of range or a key that does not exist.

    The message names the setting and the value. It is a ``ValueError``, as Ray's config
    validation raises ``ValueError`` for the same mistakes.
    """


ERR_MSG_INVALID_ENV_DESCRIPTOR = (
    "The env string you provided ({env!r}) is:\n"
    "a) Not a supported or an installed Gymnasium environment ({reason}).\n"
    "b) Not a registered environment creator (runtime.rllib.register_env).\n"
    "c) Not a Gymnasium Env class.\n"
    "Check the spelling and the version suffix, e.g. 'CartPole-v1'."
)
"""The message of the `EnvError` for an env name nothing knows (after Ray's wording)."""
