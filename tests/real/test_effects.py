"""`Effects` driven directly: core commands carried out over an object table and stand-ins."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from runtime.core.messages import (
    Free,
    ObjectReady,
    Restore,
    Restored,
    Send,
    SetTimer,
    Trace,
    Transfer,
)
from runtime.core.task import ResultInfo
from runtime.real.addresses import OWNER_ADDR
from runtime.real.arena import Arena
from runtime.real.claims import Claims
from runtime.real.effects import Effects, HostTimers
from runtime.real.futures import FAILED, READY, Future, ObjectEntry
from runtime.real.objects import ObjectTable
from runtime.real.spill import SpillFile


class Recorder:
    """A component (or raylet) that records what it is handed."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.got.append(msg)


@pytest.fixture
def world():
    arena = Arena(1 << 20, prefault_bytes=0)
    arena.control = arena.allocate(64)
    objects = ObjectTable(arena, SpillFile(None))
    raylet, peer = Recorder(), Recorder()
    out: list[Any] = []
    timers: list[tuple[float, int, int, str]] = []
    effects = Effects(
        objects=objects, arena=arena, claims=Claims(arena, 8), raylet=raylet,
        components={7: peer}, out=out, execute=lambda now: out.clear(), timers=timers,
        timer_seq=itertools.count(),
    )  # fmt: skip
    collected: list[tuple] = []
    effects.connect(None, None, {}, lambda item, now: collected.append(item))
    try:
        yield effects, raylet, peer, timers, collected
    finally:
        objects.spill.close()
        arena.close()


def test_the_table_covers_what_it_carries_out(world) -> None:
    effects = world[0]
    table = effects.table()
    for kind in (Send, ObjectReady, Free, SetTimer, Trace, Transfer, Restore):
        assert kind in table


def test_send_is_a_direct_handle_call(world) -> None:
    effects, _, peer, _, _ = world
    effects.send(Send(7, "hello"), 0.0)
    assert peer.got == ["hello"]


def test_object_ready_resolves_the_entry_and_wakes_waiters(world) -> None:
    effects = world[0]
    ok, bad, fut = ObjectEntry(), ObjectEntry(), Future(1)
    ok.waiters = [fut]
    effects.objects.entries.update({1: ok, 2: bad})
    effects.object_ready(ObjectReady(OWNER_ADDR, 1, ResultInfo(1, 3, False, b"abc"), 0), 0.0)
    assert ok.state == READY and ok.payload == b"abc" and fut.wait(0) and ok.waiters is None
    effects.object_ready(ObjectReady(OWNER_ADDR, 2, None, 0, "TaskError", "boom"), 0.0)
    assert bad.state == FAILED and (bad.error_kind, bad.error) == ("TaskError", "boom")
    effects.object_ready(ObjectReady(OWNER_ADDR, 3, None, 0, "TaskError", "x"), 0.0)  # dropped


def test_timers_go_on_the_loop_heap_and_host_timers_come_back(world) -> None:
    effects, _, _, timers, collected = world
    effects.set_timer(SetTimer(7, 2.5, "k"), 1.0)
    assert timers == [(3.5, 0, 7, "k")]
    HostTimers(effects).handle(type("Fired", (), {"key": f"collect:9:{OWNER_ADDR}"})(), 0.0, [])
    assert collected == [(9, OWNER_ADDR)]


def test_a_single_node_cannot_transfer(world) -> None:
    with pytest.raises(RuntimeError, match="cannot transfer"):
        world[0].transfer(Transfer(1, 0, 1, 10), 0.0)


def test_allocate_free_and_restore_of_an_object_not_on_disk(world) -> None:
    effects, raylet, _, _, _ = world
    offset = effects.allocate_loop(4096, 0.0)
    assert offset >= 0
    effects.restore(Restore(0, 42, 10), 0.0)
    (reply,) = raylet.got
    assert isinstance(reply, Restored) and reply.oid == 42 and reply.error == "it is not on disk"
    effects.free(Free(0, 42), 0.0)  # unknown: nothing to release
