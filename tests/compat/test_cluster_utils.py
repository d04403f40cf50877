"""`cluster_utils.Cluster` with a head node and a connected driver: the same program under twinray and Ray."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def isolated_sessions(tmp_path, monkeypatch):
    """twinray's sessions go to a temporary root (Ray keeps its own under /tmp/ray)."""
    monkeypatch.setenv("TWINRAY_SESSION_ROOT", str(tmp_path / "twinray"))
    for var in ("TWINRAY_ADDRESS", "TWINRAY_AUTH_TOKEN", "TWINRAY_AUTH_TOKEN_FILE", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)


def test_a_cluster_head_serves_a_connected_driver(ray, isolated_sessions) -> None:
    cluster_utils = importlib.import_module(f"{ray.__name__}.cluster_utils")
    with pytest.raises(RuntimeError, match="Cannot connect to uninitialized cluster"):
        cluster_utils.Cluster(connect=True)
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 2, "resources": {"special": 2}},
    )
    try:
        assert ray.is_initialized() and cluster.address
        assert len(cluster.list_all_nodes()) == 1
        cluster.wait_for_nodes()

        @ray.remote
        def square(x):
            return x * x

        @ray.remote(resources={"special": 1})
        def special(x):
            return x + 1

        @ray.remote
        class Box:
            def __init__(self):
                self.items = []

            def add(self, x):
                self.items.append(x)
                return len(self.items)

        assert ray.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]
        assert ray.get(special.remote(1)) == 2
        box = Box.options(name="box").remote()
        assert ray.get(box.add.remote("a")) == 1
        assert ray.get(ray.get_actor("box").add.remote("b")) == 2
        ref = ray.put(list(range(1000)))
        assert ray.get(ref)[-1] == 999
        resources = ray.cluster_resources()
        assert resources["CPU"] == 2 and resources["special"] == 2
        nodes = ray.nodes()
        assert len(nodes) == 1 and nodes[0]["Alive"]
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert not cluster.list_all_nodes()
    assert not ray.is_initialized()
