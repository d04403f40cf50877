"""Tests of pickle-5 serialization with out-of-band buffers, inline and in the arena."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from runtime.exceptions import UnserializableArgumentError
from runtime.real.arena import Arena
from runtime.real.serialization import (
    INLINE_THRESHOLD,
    deserialize_from_arena,
    dumps,
    dumps_function,
    loads,
    loads_function,
    serialize,
    write_to_arena,
)


@pytest.fixture
def arena():
    a = Arena(64 << 20, prefault_bytes=0)
    yield a
    a.close()


def test_small_values_round_trip_inline() -> None:
    for value in (1, "x", None, {"a": [1, 2.5]}, (b"raw", {3})):
        obj = serialize(value)
        assert obj.is_inline()
        assert loads(obj.to_bytes()) == value


def test_small_array_inline_uses_layout() -> None:
    arr = np.arange(100, dtype=np.float64)
    obj = serialize(arr)
    assert obj.buffers and obj.is_inline()
    out = loads(obj.to_bytes())
    np.testing.assert_array_equal(out, arr)


def test_large_array_is_zero_copy_and_read_only_from_arena(arena: Arena) -> None:
    arr = np.random.default_rng(0).random((1000, 1000))
    obj = serialize({"w": arr, "tag": "big"})
    assert not obj.is_inline()
    assert obj.total_size >= arr.nbytes
    off = arena.allocate(obj.total_size)
    write_to_arena(arena, off, obj)
    out = deserialize_from_arena(arena, off, obj.total_size)
    assert out["tag"] == "big"
    np.testing.assert_array_equal(out["w"], arr)
    w = out["w"]
    assert w.flags.writeable is False
    whole = np.frombuffer(arena.view(0, arena.capacity), dtype=np.uint8)
    assert np.shares_memory(w, whole)
    assert w.ctypes.data % 64 == 0


def test_large_in_band_value_in_arena(arena: Arena) -> None:
    value = [str(i) * 1000 for i in range(200)]
    obj = serialize(value)
    assert not obj.buffers and obj.total_size > INLINE_THRESHOLD
    off = arena.allocate(obj.total_size)
    write_to_arena(arena, off, obj)
    assert deserialize_from_arena(arena, off, obj.total_size) == value


def test_lambdas_and_local_classes_fall_back_to_cloudpickle() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    k = 3
    out = loads(dumps([lambda x: x + k, Local(5)]))
    assert out[0](1) == 4
    assert out[1].v == 5


def test_unpicklable_value_names_argument() -> None:
    with pytest.raises(UnserializableArgumentError, match="argument 'lock'.*lock") as info:
        serialize(threading.Lock(), "argument 'lock'")
    assert info.value.argument == "argument 'lock'"
    assert isinstance(info.value, TypeError)


def test_function_round_trip_by_value() -> None:
    base = 10

    def add(x: int) -> int:
        return x + base

    assert loads_function(dumps_function(add))(5) == 15


def test_bad_layout_is_rejected() -> None:
    with pytest.raises(ValueError):
        loads(b"XXXX" + bytes(20))


def test_a_plain_pickle_in_the_arena_is_read_back(arena: Arena) -> None:
    # `dumps` of a value without out-of-band buffers is a plain pickle; a worker's (or a
    # connected driver's) `put` stores those bytes in the arena as they are
    from runtime.real.serialization import deserialize, deserialize_pinned, dumps

    data = dumps(b"y" * (1 << 20))
    offset = arena.allocate(len(data))
    arena.writable_view(offset, len(data))[:] = data
    released = []
    view = arena.view(offset, len(data))
    assert deserialize_pinned(view, lambda: released.append(1)) == b"y" * (1 << 20)
    assert released == [1]
    assert deserialize(view) == b"y" * (1 << 20)
