"""Speculative execution across real node processes: a hung first copy loses to its backup on the other node."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import runtime as ray
from runtime.cluster_utils import Cluster
from runtime.exceptions import InvalidOptionError
from runtime.util.scheduling_strategies import NodeAffinitySchedulingStrategy

POLICY = {"multiplier": 3, "min_samples": 3}


@ray.remote
def first_copy_hangs(marker: str) -> str:
    """The copy that creates `marker` hangs (a straggler); any later copy returns its node."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return ray.get_runtime_context().get_node_id()
    os.close(fd)
    time.sleep(600)
    return "the straggler"


def test_the_backup_on_the_other_node_wins(session_root: Path, tmp_path: Path) -> None:
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        task = first_copy_hangs.options(_speculation=POLICY)
        done = str(tmp_path / "warm")
        Path(done).touch()
        assert len(ray.get([task.remote(done) for _ in range(4)], timeout=60)) == 4  # samples
        nodes = set()
        for i in range(2):  # a straggler on either node is rescued from the other
            marker = str(tmp_path / f"straggler-{i}")
            where = ray.get(task.remote(marker), timeout=120)  # the first copy sleeps 600 s
            assert where != "the straggler" and Path(marker).exists()
            nodes.add(where)
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) < 2:  # the losers were interrupted
            assert time.monotonic() < deadline, "a losing copy kept its CPU"
            time.sleep(0.1)
        with pytest.raises(InvalidOptionError, match="node affinity"):
            strategy = NodeAffinitySchedulingStrategy(nodes.pop(), soft=False)
            first_copy_hangs.options(_speculation=True, scheduling_strategy=strategy).remote(done)
    finally:
        cluster.shutdown()
