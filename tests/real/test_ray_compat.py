"""A short program written for Ray runs unchanged with `import runtime as ray`."""

from __future__ import annotations

import numpy as np

import runtime as ray


@ray.remote
def square(x):
    return x * x


@ray.remote
def summed(*values):
    return sum(values)


@ray.remote(num_cpus=1)
def normalize(matrix):
    return matrix / np.linalg.norm(matrix)


def ray_program() -> tuple:
    """Typical Ray tutorial code: fan out, fan in, put a big array, wait for the first."""
    ray.init(num_cpus=2, object_store_memory=128 << 20, ignore_reinit_error=True)
    try:
        squares = [square.remote(i) for i in range(10)]
        total = ray.get(summed.remote(*squares))
        matrix_ref = ray.put(np.ones((500, 500)))
        norm = ray.get(normalize.remote(matrix_ref))
        ready, not_ready = ray.wait(squares, num_returns=5, timeout=30)
        return total, float(norm.sum()), len(ready), len(not_ready)
    finally:
        ray.shutdown()


def test_ray_program_runs_unchanged() -> None:
    total, norm_sum, n_ready, n_not_ready = ray_program()
    assert total == sum(i * i for i in range(10))
    assert abs(norm_sum - 500.0) < 1e-6
    assert n_ready == 5 and n_not_ready == 5
    assert not ray.is_initialized()


# ---------------------------------------------------------------------------------------
# More programs in the style of Ray's documentation, run against `import runtime as ray`
# ---------------------------------------------------------------------------------------


@ray.remote
class ParameterServer:
    def __init__(self, dim):
        self.params = np.zeros(dim)

    def apply_gradients(self, *gradients):
        self.params -= 0.1 * np.sum(gradients, axis=0)
        return self.params

    def get_params(self):
        return self.params


@ray.remote
def compute_gradient(params, seed):
    rng = np.random.default_rng(seed)
    return params - rng.normal(1.0, 0.01, size=params.shape)


def parameter_server_program() -> np.ndarray:
    """Ray's synchronous parameter server example."""
    ps = ParameterServer.remote(10)
    params = ps.get_params.remote()
    for step in range(5):
        grads = [compute_gradient.remote(params, step * 10 + i) for i in range(4)]
        params = ps.apply_gradients.remote(*grads)
    return ray.get(params)


@ray.remote
def map_chunk(chunk):
    return {word: chunk.count(word) for word in set(chunk)}


@ray.remote
def reduce_counts(*partials):
    total: dict[str, int] = {}
    for part in partials:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    return total


@ray.remote
def word_count(words, chunks):
    """A task that runs its own map-reduce (nested tasks)."""
    size = len(words) // chunks
    mapped = [map_chunk.remote(words[i * size : (i + 1) * size]) for i in range(chunks)]
    return ray.get(reduce_counts.remote(*mapped))


@ray.remote
def slow_square(x):
    import time

    time.sleep(0.01 * (5 - x))
    return x * x


@ray.remote
def might_fail(x):
    if x == 3:
        raise ValueError(f"bad value {x}")
    return x


@ray.remote
class Counter:
    def __init__(self):
        self.value = 0

    def increment(self):
        self.value += 1
        return self.value

    @ray.method(num_returns=2)
    def value_and_double(self):
        return self.value, 2 * self.value


@ray.remote
def use_counter(counter, times):
    return ray.get([counter.increment.remote() for _ in range(times)])[-1]


@ray.remote
def block_multiply(a, b):
    return a @ b


def more_programs() -> dict:
    ray.init(num_cpus=2, object_store_memory=128 << 20, ignore_reinit_error=True)
    try:
        results: dict = {}
        results["ps"] = parameter_server_program()
        words = ["a", "b", "a", "c", "b", "a"] * 50
        results["wc"] = ray.get(word_count.remote(words, 3))
        pending = [slow_square.remote(i) for i in range(5)]
        finished = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=30)
            finished.extend(ray.get(done))
        results["wait_loop"] = finished
        outcomes = []
        for ref in [might_fail.remote(i) for i in range(5)]:
            try:
                outcomes.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                outcomes.append(type(exc).__name__)
        results["errors"] = outcomes
        counter = Counter.options(name="global_counter").remote()
        ray.get([use_counter.remote(counter, 5) for _ in range(4)])
        same = ray.get_actor("global_counter")
        results["counter"] = ray.get(list(same.value_and_double.remote()))
        a = np.arange(16.0).reshape(4, 4)
        refs = [[block_multiply.remote(a, a) for _ in range(2)] for _ in range(2)]
        results["blocks"] = np.block([[ray.get(r) for r in row] for row in refs])
        results["resources"] = ray.cluster_resources()
        return results
    finally:
        ray.shutdown()


def test_more_ray_programs_run_unchanged() -> None:
    results = more_programs()
    expected_ps = np.zeros(10)
    for _ in range(5):
        expected_ps -= 0.1 * 4 * (expected_ps - 1.0)
    np.testing.assert_allclose(results["ps"], expected_ps, atol=0.05)
    assert results["wc"] == {"a": 150, "b": 100, "c": 50}
    assert sorted(results["wait_loop"]) == [0, 1, 4, 9, 16]
    assert results["errors"][:3] == [0, 1, 2] and results["errors"][4] == 4
    assert "ValueError" in results["errors"][3]
    assert results["counter"] == [20, 40]
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(results["blocks"], np.block([[a @ a, a @ a], [a @ a, a @ a]]))
    assert results["resources"]["CPU"] == 2.0
    assert not ray.is_initialized()
