"""Ray-compatibility fixtures: each test runs against twinray and, when installed, real Ray.

A test takes the `ray` fixture (the module under test, not yet initialised) or
`ray_started` (initialised with 2 CPUs, shut down afterwards) and must behave the same
under both. The real-Ray variants run only when asked, `TWINRAY_COMPAT_RAY=1`, and when
`ray` is importable (the `peers` extra): each starts a Ray cluster, and together they take
about nine minutes on a 2-core machine, more than the rest of the suite, so the default
test command leaves them out. Run them after changing an API:
`TWINRAY_COMPAT_RAY=1 python3 -m pytest tests/compat`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

IMPLEMENTATIONS = ("twinray", "ray")


def _load(name: str) -> ModuleType:
    if name == "twinray":
        return importlib.import_module("runtime")
    if os.environ.get("TWINRAY_COMPAT_RAY", "0") != "1":
        pytest.skip("real-Ray variant: set TWINRAY_COMPAT_RAY=1 to run it")
    return pytest.importorskip("ray", reason="real Ray not installed (the peers extra)")


@pytest.fixture(params=IMPLEMENTATIONS)
def ray(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The implementation under test: `runtime` or real `ray`; shut down after the test."""
    module = _load(request.param)
    yield module
    if module.is_initialized():
        module.shutdown()


@pytest.fixture
def ray_started(ray: ModuleType) -> ModuleType:
    """`ray`, initialised with 2 CPUs (Ray: no dashboard, quiet)."""
    if ray.__name__ == "ray":
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=2)
    return ray
