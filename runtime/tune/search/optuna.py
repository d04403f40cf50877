"""``tune.search.optuna``: Ray Tune's OptunaSearch (needs the ``tune`` extra's optuna)."""

from __future__ import annotations

import pickle
from typing import Any

from runtime.core.tune.optuna_search import OptionalDependencyError
from runtime.core.tune.optuna_search import OptunaSearch as _CoreOptunaSearch


class OptunaSearch(_CoreOptunaSearch):
    """The core's OptunaSearch with Ray's ``save``/``restore`` of the searcher's state."""

    def save(self, checkpoint_path: str) -> None:
        """Pickle the searcher's state (its study, trials and settings) to ``checkpoint_path``."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state ``save`` wrote."""
        with open(checkpoint_path, "rb") as f:
            state: dict[str, Any] = pickle.load(f)
        self.__setstate__(state)


__all__ = ["OptionalDependencyError", "OptunaSearch"]
