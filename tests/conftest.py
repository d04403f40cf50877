"""Fixtures shared by the whole suite: a Python in which Ray cannot be imported."""

from __future__ import annotations

import builtins
from typing import Any

import pytest


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import ray` (and any `ray.*`) fail with ImportError for this test, as on CI."""
    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
