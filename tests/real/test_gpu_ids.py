"""GPU ids in real mode: get_gpu_ids, CUDA_VISIBLE_DEVICES and assigned resources, as in Ray.

The ids are logical (0..num_gpus-1, picked by the raylet), so no GPU is needed.
"""

from __future__ import annotations

import os
import time

import pytest

import runtime as ray


@pytest.fixture(scope="module")
def gpus():
    ray.init(num_cpus=4, num_gpus=2)
    yield ray
    ray.shutdown()


@ray.remote
def seen(pause=0.0):
    time.sleep(pause)
    return (
        ray.get_gpu_ids(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "UNSET"),
        ray.get_runtime_context().get_assigned_resources(),
    )


def test_the_driver_has_no_gpu_ids_and_no_assigned_resources(gpus) -> None:
    assert ray.get_gpu_ids() == []
    with pytest.raises(AssertionError, match="only available in a task or an actor"):
        ray.get_runtime_context().get_assigned_resources()


def test_a_one_gpu_task_sees_its_id_in_cuda_visible_devices(gpus) -> None:
    ids, visible, given = ray.get(seen.options(num_gpus=1).remote(), timeout=30)
    assert ids == [0] and visible == "0"
    assert given == {"CPU": 1.0, "GPU": 1.0}


def test_a_two_gpu_task_sees_both(gpus) -> None:
    ids, visible, _ = ray.get(seen.options(num_gpus=2).remote(), timeout=30)
    assert ids == [0, 1] and visible == "0,1"


def test_concurrent_one_gpu_tasks_get_different_ids(gpus) -> None:
    results = ray.get([seen.options(num_gpus=1).remote(1.0) for _ in range(2)], timeout=30)
    assert sorted(r[0][0] for r in results) == [0, 1]
    assert {r[1] for r in results} == {"0", "1"}


def test_half_gpu_tasks_share_an_instance(gpus) -> None:
    results = ray.get([seen.options(num_gpus=0.5).remote(0.3) for _ in range(2)], timeout=30)
    assert [r[0] for r in results] == [[0], [0]]
    assert all(r[2]["GPU"] == 0.5 for r in results)


def test_cpu_tasks_see_no_gpus_and_cuda_visible_devices_is_left_alone(gpus) -> None:
    before = os.environ.get("CUDA_VISIBLE_DEVICES", "UNSET")
    ray.get([seen.options(num_gpus=1).remote() for _ in range(4)], timeout=30)
    after = ray.get([seen.remote() for _ in range(8)], timeout=30)  # on the same workers
    assert all(r[0] == [] and r[1] == before for r in after)
    assert all(r[2] == {"CPU": 1.0} for r in after)


def test_an_actor_keeps_its_gpu_for_its_lifetime(gpus) -> None:
    @ray.remote(num_gpus=1)
    class OnGpu:
        def ids(self):
            return ray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

    actor = OnGpu.remote()
    first = ray.get(actor.ids.remote(), timeout=30)
    ids, visible, _ = ray.get(seen.options(num_gpus=1).remote(), timeout=30)
    assert ids != first[0]  # the actor's instance is not given to the task
    assert ray.get(actor.ids.remote(), timeout=30) == first
    assert visible == str(ids[0])
    ray.kill(actor)
