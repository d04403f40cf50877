"""dKeras with Keras 3 models (JAX backend): replicas predict what the local model predicts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported (the `ml` extra's)
keras = pytest.importorskip("keras")

import runtime  # noqa: E402
from runtime.dkeras import dKeras  # noqa: E402
from runtime.util import state  # noqa: E402


def small_net(weights: str | None = None) -> keras.Model:
    """A `keras.applications`-like factory: `weights` None means random initial weights."""
    if weights is not None:
        raise ValueError(f"no pretrained weights {weights!r} for this toy")
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    runtime.init(num_cpus=2)
    yield
    runtime.shutdown()


@pytest.mark.timeout(600)  # keras imports in each replica: minutes on a loaded 2-core machine
def test_a_keras_factory_is_rebuilt_in_each_replica_with_the_drivers_weights(
    cluster: None,
) -> None:
    model = dKeras(small_net, n_workers=2, rm_local_model=False, wait_for_workers=True)
    try:
        assert keras.backend.backend() == "jax"
        x = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
        expected = model.model.predict(x, verbose=0)
        # fresh random weights in each replica would not match: the driver's were loaded
        # (chunks of one shape: Keras compiles its predict step once per shape)
        np.testing.assert_allclose(model.predict(x, batch_size=10), expected, rtol=1e-5, atol=1e-6)
    finally:
        model.close()
    assert not [r for r in state.list_actors(filters=[("state", "=", "ALIVE")])]


@pytest.mark.timeout(600)  # keras imports in each replica: minutes on a loaded 2-core machine
def test_a_built_keras_model_is_pickled_once_into_the_store(cluster: None) -> None:
    local = small_net()
    x = np.random.default_rng(1).normal(size=(20, 6)).astype("float32")
    with dKeras(local, n_workers=1) as model:
        np.testing.assert_allclose(
            model.predict(x, batch_size=10), local.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )
