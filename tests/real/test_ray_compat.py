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
