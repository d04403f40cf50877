"""dKeras' `init_ray`: it starts twinray when asked, refuses to run without it otherwise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import runtime
from runtime.dkeras import dKeras
from tests.dkeras.test_dkeras import Linear


def test_init_ray_false_needs_a_running_cluster() -> None:
    assert not runtime.is_initialized()
    with pytest.raises(RuntimeError, match="init_ray=False"):
        dKeras(Linear(), init_ray=False)


def test_init_ray_starts_twinray_and_close_can_stop_it() -> None:
    assert not runtime.is_initialized()
    model = dKeras(Linear(), n_workers=1)
    assert runtime.is_initialized()
    np.testing.assert_allclose(model.predict(np.ones((2, 4))), Linear().predict(np.ones((2, 4))))
    model.close(stop_ray=True)
    assert not runtime.is_initialized()


def test_importing_dkeras_stays_light() -> None:
    """Neither `import runtime` nor `runtime.dkeras` imports Keras or JAX (replicas do)."""
    code = (
        "import sys, runtime; from runtime.dkeras import dKeras; "
        "assert not {'keras', 'jax'} & set(sys.modules), sorted(sys.modules); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_refused_dkeras_leaves_no_session_it_started() -> None:
    assert not runtime.is_initialized()
    with pytest.raises(ValueError, match="never all start"):
        dKeras(Linear(), n_workers=64, n_cpus_per_worker=1)
    with pytest.raises(runtime.InvalidOptionError):
        dKeras(Linear(), actor_options={"num_cpu": 1})
    assert not runtime.is_initialized()
