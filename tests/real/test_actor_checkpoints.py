"""Actor checkpoints in real mode: save_checkpoint every N calls, load_checkpoint on restart, replay of the rest."""

from __future__ import annotations

import os

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.exceptions import ActorDiedError, InvalidOptionError


@pytest.fixture(scope="module")
def cluster():
    before = set(os.listdir("/dev/shm"))
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()
    assert set(os.listdir("/dev/shm")) <= before


@ray.remote
class Ledger(ray.Checkpointable):
    """Appends values; counts how often each method body ran in this process."""

    def __init__(self, pad: int = 0):
        self.items: list[int] = []
        self.pad = b"x" * pad  # a large state goes through the object store's arena
        self.runs = 0
        self.loaded: list[int] | None = None

    def add(self, value: int) -> int:
        self.items.append(value)
        self.runs += 1
        return len(self.items)

    def state(self) -> tuple[list[int], int, list[int] | None]:
        return self.items, self.runs, self.loaded

    def crash(self) -> None:
        os._exit(1)

    def save_checkpoint(self):
        return (list(self.items), self.pad)

    def load_checkpoint(self, state) -> None:
        self.items, self.pad = list(state[0]), state[1]
        self.loaded = list(self.items)


@pytest.mark.parametrize("pad", [0, 1 << 20])
def test_a_restarted_actor_is_restored_and_replays_only_the_later_calls(cluster, pad) -> None:
    a = Ledger.options(max_restarts=1, checkpoint_interval=4).remote(pad)
    assert ray.get([a.add.remote(i) for i in range(10)], timeout=60) == list(range(1, 11))
    with pytest.raises(ActorDiedError):
        ray.get(a.crash.remote(), timeout=60)
    items, runs, loaded = ray.get(a.state.remote(), timeout=60)
    assert items == list(range(10))  # the state came back whole
    assert loaded == list(range(8))  # from the checkpoint after call 8...
    assert runs == 2  # ...and only calls 9 and 10 ran again
    assert ray.get(a.add.remote(10), timeout=60) == 11


def test_without_checkpoints_every_call_is_replayed(cluster) -> None:
    @ray.remote(max_restarts=1, checkpoint_interval=0)
    class Plain:
        def __init__(self):
            self.items: list[int] = []

        def add(self, value: int) -> int:
            self.items.append(value)
            return len(self.items)

        def get(self) -> list[int]:
            return self.items

        def crash(self) -> None:
            os._exit(1)

    p = Plain.remote()
    ray.get([p.add.remote(i) for i in range(5)], timeout=60)
    with pytest.raises(ActorDiedError):
        ray.get(p.crash.remote(), timeout=60)
    assert ray.get(p.get.remote(), timeout=60) == list(range(5))


def test_bad_checkpoint_options_are_refused(cluster) -> None:
    @ray.remote
    class NoHooks:
        def f(self) -> int:
            return 1

    with pytest.raises(TypeError, match="save_checkpoint"):
        NoHooks.options(checkpoint_interval=3).remote()
    with pytest.raises(InvalidOptionError, match="checkpoint_interval"):
        Ledger.options(checkpoint_interval=-2)
    with pytest.raises(InvalidOptionError, match="checkpoint_interval"):
        Ledger.options(checkpoint_interval="often")
