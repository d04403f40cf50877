"""dKeras on twinray with plain predictors: order, equality, weights put once, errors, close()."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

import runtime
from runtime.dkeras import dKeras
from runtime.util import state


class Linear:
    """A predictor with weights: `x @ w + b`."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(4, 3))
        self.b = rng.normal(size=3)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b


class CountingModel:
    """Answers, for every sample, how often its weights were set and in which process."""

    get_weights_calls = 0  # counted in the driver (the local model)

    def __init__(self) -> None:
        self.weights: list[np.ndarray] = [np.zeros(2)]
        self.set_weights_calls = 0

    def get_weights(self) -> list[np.ndarray]:
        type(self).get_weights_calls += 1
        return [np.arange(2.0)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.set_weights_calls += 1
        self.weights = weights

    def predict(self, x: np.ndarray) -> np.ndarray:
        row = [self.set_weights_calls, os.getpid(), *self.weights[0]]
        return np.tile(np.array(row, dtype=float), (len(x), 1))


class Faulty:
    """A predictor that fails on negative input."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise ArithmeticError("negative input reached the model")
        return x * 2


class TwoHeads:
    """Several inputs (a dict) and several outputs (a tuple)."""

    def predict(self, x: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return x["a"] + x["b"], x["a"] * x["b"]


class BuildsOnlyInTheDriver(CountingModel):
    """Builds fine in the driver, fails in a replica."""

    def __init__(self) -> None:
        if os.environ.get("DKERAS_TEST_REPLICA") == "1":
            raise OSError("no model here")
        super().__init__()


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    before = set(os.listdir("/dev/shm"))
    runtime.init(num_cpus=2)
    yield
    runtime.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


def _alive_replicas() -> list[dict]:
    rows = state.list_actors(filters=[("state", "=", "ALIVE")])
    return [r for r in rows if r["class_name"].endswith("_Replica")]


def test_predictions_come_back_in_order_and_equal_the_local_models(cluster: None) -> None:
    local = Linear(seed=1)
    model = dKeras(local, n_workers=3, wait_for_workers=True)
    try:
        assert model.is_ready()
        x = np.random.default_rng(2).normal(size=(101, 4))
        for batch_size in (1, 7, 32, 500):
            np.testing.assert_allclose(model.predict(x, batch_size=batch_size), local.predict(x))
        np.testing.assert_allclose(model.predict(x[:1]), local.predict(x[:1]))
    finally:
        model.close()


def test_every_replica_works_and_reads_the_weights_put_once(cluster: None) -> None:
    CountingModel.get_weights_calls = 0
    model = dKeras(CountingModel, n_workers=3)  # a factory with get/set_weights
    try:
        for _ in range(3):
            rows = model.predict(np.zeros((60, 1)), batch_size=5)
            assert (rows[:, 0] == 1).all()  # each replica set its weights once, not per call
            np.testing.assert_array_equal(rows[:, 2:], np.tile([0.0, 1.0], (60, 1)))
        assert len(set(rows[:, 1])) == 3  # the chunks went to all three replicas
        assert CountingModel.get_weights_calls == 1
        # the payload is one object in the store, borrowed by each replica
        assert model._payload_ref is not None
    finally:
        model.close()


def test_several_inputs_and_outputs(cluster: None) -> None:
    x = {"a": np.arange(50.0), "b": np.arange(50.0) + 1}
    with dKeras(TwoHeads(), n_workers=2) as model:
        total, product = model.predict(x, batch_size=8)
    np.testing.assert_array_equal(total, x["a"] + x["b"])
    np.testing.assert_array_equal(product, x["a"] * x["b"])


def test_close_kills_the_replicas_and_releases_the_weights(cluster: None) -> None:
    model = dKeras(Linear(), n_workers=2, n_cpus_per_worker=1, wait_for_workers=True)
    assert len(_alive_replicas()) == 2
    assert runtime.available_resources().get("CPU", 0) == 0  # each replica holds its CPU
    payload_id = model._payload_ref.hex()
    model.predict(np.ones((10, 4)))
    model.close()
    model.close()  # twice is harmless
    assert _alive_replicas() == []
    assert payload_id not in {row["object_id"] for row in state.list_objects()}
    with pytest.raises(RuntimeError, match="closed"):
        model.predict(np.ones((2, 4)))
    # the CPUs are all free again
    assert runtime.available_resources().get("CPU") == 2


def test_an_error_in_predict_reaches_the_caller_with_its_traceback(cluster: None) -> None:
    model = dKeras(Faulty(), n_workers=2)
    try:
        x = np.ones((40, 2))
        x[33] = -1
        with pytest.raises(ArithmeticError, match="negative input") as info:
            model.predict(x, batch_size=4)
        assert isinstance(info.value, runtime.RayTaskError)
        assert "in predict" in str(info.value)  # the replica's traceback
        np.testing.assert_array_equal(model.predict(np.ones((5, 2))), 2 * np.ones((5, 2)))
    finally:
        model.close()


def test_a_replica_that_cannot_build_its_model_fails_wait_for_workers(cluster: None) -> None:
    options = {"runtime_env": {"env_vars": {"DKERAS_TEST_REPLICA": "1"}}}
    with pytest.raises(runtime.ActorDiedError, match="no model here"):
        dKeras(BuildsOnlyInTheDriver, n_workers=2, wait_for_workers=True, actor_options=options)
    assert _alive_replicas() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_workers": 0}, ValueError, "n_workers"),
        ({"n_workers": -2}, ValueError, "n_workers"),
        ({"n_workers": 2.0}, TypeError, "n_workers"),
        ({"n_workers": True}, TypeError, "n_workers"),
        ({"n_cpus_per_worker": -1}, ValueError, "n_cpus_per_worker"),
        ({"n_gpus_per_worker": "1"}, TypeError, "n_gpus_per_worker"),
        ({"n_workers": 3, "n_cpus_per_worker": 1}, ValueError, "could never all start"),
        ({"n_gpus_per_worker": 1}, ValueError, "GPU"),
        ({"n_workers": 3, "actor_options": {"num_cpus": 1}}, ValueError, "never all start"),
        ({"n_cpus_per_worker": 0.5, "actor_options": {"num_cpus": 1}}, ValueError, "not both"),
        ({"actor_options": "fast"}, TypeError, "actor_options"),
        ({"weights": "imagenet"}, TypeError, "weights"),
    ],
)
def test_bad_arguments_are_refused(cluster: None, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        dKeras(Linear(), **kwargs)
    assert _alive_replicas() == []


def test_bad_models_and_inputs_are_refused(cluster: None) -> None:
    with pytest.raises(TypeError, match="predict"):
        dKeras(object())
    with pytest.raises(TypeError, match="no predict"):
        dKeras(lambda: 42)
    with dKeras(Linear(), n_workers=1, rm_local_model=False) as model:
        with pytest.raises(ValueError, match="batch_size"):
            model.predict(np.ones((3, 4)), batch_size=0)
        with pytest.raises(ValueError, match="no samples"):
            model.predict(np.ones((0, 4)))
        with pytest.raises(ValueError, match="differ in length"):
            model.predict({"a": np.ones(3), "b": np.ones(4)})
        # the local model, in-process
        np.testing.assert_allclose(
            model.predict(np.ones((3, 4)), distributed=False), Linear().predict(np.ones((3, 4)))
        )
    with (
        dKeras(Linear(), n_workers=1) as model,
        pytest.raises(RuntimeError, match="rm_local_model"),
    ):
        model.predict(np.ones((3, 4)), distributed=False)
