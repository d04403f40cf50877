"""Fixtures of the RLlib tests: skipped without the `ml` extra; one twinray per module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest.importorskip("gymnasium", reason="runtime.rllib needs the ml extra (gymnasium)")
pytest.importorskip("jax", reason="runtime.rllib needs the ml extra (jax)")
pytest.importorskip("threadpoolctl", reason="runtime.rllib needs the ml extra (threadpoolctl)")

import runtime as ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """twinray with 2 CPUs for the module; no shared memory left behind."""
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2)
    yield
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before
