"""A driver connected to a running head (`init(address=...)`): the API works through it, token and address checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import runtime as ray
from runtime.exceptions import AuthenticationError
from tests.cluster.conftest import ROOT


@pytest.fixture
def driver(shared_head):
    """This process connected to the shared head as a driver; disconnected afterwards."""
    info = ray.init(address=shared_head.address)
    yield info
    ray.shutdown()


@ray.remote
def double(x):
    return 2 * x


@ray.remote
def total(a):
    return float(a.sum())


@ray.remote
def fan_out(n):
    return sum(ray.get([double.remote(i) for i in range(n)]))


@ray.remote
def fail():
    raise ValueError("boom")


@ray.remote
class Counter:
    def __init__(self, start):
        self.n = start

    def add(self, k):
        self.n += k
        return self.n


def test_init_reports_the_clusters_resources(driver, shared_head) -> None:
    assert driver["address"] == shared_head.address
    assert driver["num_cpus"] == 2.0
    assert ray.is_initialized()
    assert ray.cluster_resources()["special"] == 1.0
    nodes = ray.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"] and nodes[0]["Resources"]["CPU"] == 2.0


def test_tasks_objects_and_errors_go_through_the_cluster(driver) -> None:
    assert ray.get([double.remote(i) for i in range(20)]) == [2 * i for i in range(20)]
    big = np.arange(1 << 20, dtype=np.float64)  # 8 MiB: stored in the head's arena
    ref = ray.put(big)
    assert np.array_equal(ray.get(ref), big)
    assert ray.get(total.remote(ref)) == float(big.sum())
    assert ray.get(fan_out.remote(10)) == 90  # nested submissions inside the cluster
    nested = ray.put([ref, double.remote(5)])  # refs inside a value stay alive with it
    inner = ray.get(nested)
    assert ray.get(inner[1]) == 10 and ray.get(inner[0]).shape == big.shape
    ready, rest = ray.wait([double.remote(1), double.remote(2)], num_returns=2, timeout=60)
    assert len(ready) == 2 and rest == []
    with pytest.raises(ValueError, match="boom"):
        ray.get(fail.remote())
    slow = ray.remote(lambda: __import__("time").sleep(30)).remote()
    with pytest.raises(ray.GetTimeoutError):
        ray.get(slow, timeout=0.2)
    ray.cancel(slow, force=True)
    with pytest.raises(ray.TaskCancelledError):
        ray.get(slow, timeout=60)


def test_actors_and_named_actors(driver) -> None:
    c = Counter.options(name="shared_counter", lifetime="detached").remote(10)
    assert ray.get([c.add.remote(1) for _ in range(3)]) == [11, 12, 13]
    again = ray.get_actor("shared_counter")
    assert ray.get(again.add.remote(5)) == 18
    ray.kill(c)
    with pytest.raises(ValueError, match="Failed to look up actor"):
        ray.get_actor("shared_counter")
    with pytest.raises(ValueError):
        ray.get_actor("no_such_actor")


def test_two_drivers_share_the_cluster_and_its_named_actors(driver, shared_head) -> None:
    c = Counter.options(name="meeting_point", lifetime="detached").remote(0)
    assert ray.get(c.add.remote(1)) == 1
    program = textwrap.dedent(
        f"""
        import runtime as ray
        ray.init(address={shared_head.address!r})
        c = ray.get_actor("meeting_point")
        print(ray.get(c.add.remote(100)))

        @ray.remote
        class Scoped:
            def ping(self):
                return "pong"

        s = Scoped.options(name="job_scoped").remote()  # not detached: ends with this job
        assert ray.get(s.ping.remote()) == "pong"
        ray.shutdown()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "101"
    assert ray.get(c.add.remote(1)) == 102
    with pytest.raises(ValueError, match="Failed to look up actor"):
        ray.get_actor("job_scoped")  # the other driver's job ended, and its actor with it
    ray.kill(c)


def test_twinray_address_and_auto_find_the_cluster(shared_head, monkeypatch) -> None:
    monkeypatch.setenv("TWINRAY_ADDRESS", shared_head.address)
    ray.init()  # TWINRAY_ADDRESS set: a driver of the cluster, as Ray reads RAY_ADDRESS
    try:
        assert ray.get(double.remote(4)) == 8
        assert ray.cluster_resources()["special"] == 1.0
    finally:
        ray.shutdown()
    monkeypatch.delenv("TWINRAY_ADDRESS")
    ray.init(address="auto")  # the head of this machine's latest session
    try:
        assert ray.get(double.remote(5)) == 10
    finally:
        ray.shutdown()


def test_node_keywords_are_refused_when_connecting(shared_head) -> None:
    for kwargs in ({"num_cpus": 2}, {"resources": {"x": 1}}, {"object_store_memory": 1 << 20}):
        with pytest.raises(ray.InitOptionError, match="when connecting to an existing cluster"):
            ray.init(address=shared_head.address, **kwargs)
    assert not ray.is_initialized()


def test_a_wrong_token_is_refused_and_the_cluster_keeps_serving(shared_head, monkeypatch) -> None:
    monkeypatch.setenv("TWINRAY_AUTH_TOKEN", "f" * 64)
    with pytest.raises(AuthenticationError):
        ray.init(address=shared_head.address)
    assert not ray.is_initialized()
    monkeypatch.delenv("TWINRAY_AUTH_TOKEN")
    ray.init(address=shared_head.address)
    try:
        assert ray.get(double.remote(21)) == 42
    finally:
        ray.shutdown()
    audit = (shared_head.session / "audit.log").read_text()
    assert '"event":"refused"' in audit and '"event":"job"' in audit


def test_program_threads_share_the_drivers_connection(driver) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(k):
        return sum(ray.get([double.remote(k * 100 + i) for i in range(10)]))

    with ThreadPoolExecutor(4) as pool:
        totals = list(pool.map(work, range(8)))
    assert totals == [sum(2 * (k * 100 + i) for i in range(10)) for k in range(8)]


def test_a_driver_killed_mid_get_does_not_disturb_the_cluster(shared_head) -> None:
    program = textwrap.dedent(
        f"""
        import time
        import runtime as ray
        ray.init(address={shared_head.address!r})
        ref = ray.put(b"x" * (4 << 20))
        slow = ray.remote(lambda: time.sleep(300)).remote()
        while ray.available_resources().get("CPU", 0) == 2:
            time.sleep(0.05)  # until the task runs
        print("ready", flush=True)
        ray.get(slow)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program], cwd=ROOT, env=dict(os.environ),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    ray.init(address=shared_head.address)
    try:
        assert ray.get(double.remote(8), timeout=60) == 16
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the dead job's running task is cancelled (its worker killed)
        assert ray.available_resources().get("CPU", 0) == 2
    finally:
        ray.shutdown()


@ray.remote
def nodes_seen_from_a_task():
    from runtime.util.state import list_nodes

    return [n["state"] for n in list_nodes()]


def test_the_state_api_reads_the_clusters_tables(driver) -> None:
    from runtime.util.state import list_actors, list_nodes, list_tasks

    nodes = list_nodes()
    assert len(nodes) == 1 and nodes[0]["state"] == "ALIVE" and nodes[0]["is_head_node"]
    c = Counter.options(name="listed", lifetime="detached").remote(0)
    ray.get([c.add.remote(1), double.remote(3)])
    assert "listed" in {a["name"] for a in list_actors(filters=[("state", "=", "ALIVE")])}
    assert "double" in {t["name"] for t in list_tasks()}
    assert ray.get(nodes_seen_from_a_task.remote()) == ["ALIVE"]  # from a worker, too
    ray.kill(c)


def test_a_thread_blocked_in_get_does_not_block_the_others(driver) -> None:
    import threading

    from runtime.util.queue import Queue

    q = Queue()
    got = []
    consumer = threading.Thread(target=lambda: got.append(q.get(timeout=60)))
    consumer.start()  # blocks in a get on the queue actor's reply...
    q.put("hello")  # ...while this thread's call goes through
    consumer.join(timeout=60)
    assert got == ["hello"]


def test_an_authenticated_peer_that_breaks_the_protocol_is_dropped(shared_head) -> None:
    from runtime.net.auth import Hello, find_token
    from runtime.net.channel import connect

    token = find_token(shared_head.session)
    channel, _ = connect(shared_head.address, token, Hello("driver", "buggy"), timeout=30)
    try:
        channel.sock.settimeout(30)
        assert channel.recv_many()[0][1] == 0  # the welcome
        channel.send_many([("not", "a", "request"), {"nor": "this"}])
        with pytest.raises((EOFError, ConnectionError)):
            while True:
                channel.recv_many()  # the node closes this connection
    finally:
        channel.close()
    ray.init(address=shared_head.address)  # and keeps serving the others
    try:
        assert ray.get(double.remote(2)) == 4
    finally:
        ray.shutdown()


def _store_used(view):
    return sum(r.store.used for r in view.raylets)


def _spilled(view):
    return sum(r.store.spilled_bytes for r in view.raylets)


def test_a_local_driver_reads_values_in_place_and_what_it_held_goes_with_it(shared_head) -> None:
    program = textwrap.dedent(
        f"""
        import os
        import numpy as np
        import runtime as ray
        from runtime import api
        ray.init(address={shared_head.address!r})
        assert api._node.arena is not None  # the head's arena, mapped through /proc
        value = ray.get(ray.put(np.ones(4 << 20)))  # 32 MiB, read in place
        assert not value.flags.writeable and value.sum() == 4 << 20
        print("holding", flush=True)
        os._exit(0)  # no shutdown: its refs and pins are dropped by the head
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "holding" in proc.stdout, proc.stderr
    ray.init(address=shared_head.address)
    try:
        node = ray.api._node
        deadline = time.monotonic() + 60
        while node.inspect(_store_used) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.inspect(_store_used) == 0
        big = np.ones(5 << 20)  # 40 MiB of a 64 MiB arena: only fits if the 32 MiB went
        assert ray.get(ray.put(big)).sum() == 5 << 20
        assert node.inspect(_spilled) == 0  # it fit without spilling anything
    finally:
        ray.shutdown()
