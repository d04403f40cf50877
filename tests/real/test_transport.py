"""Tests of framed, batched message connections over socketpairs."""

from __future__ import annotations

import selectors

import pytest

from runtime.real.transport import socketpair


def test_batch_round_trip_blocking() -> None:
    a, b = socketpair()
    try:
        msgs = [(1, i, b"x" * i) for i in range(50)]
        assert a.send_many(msgs)
        got: list = []
        while len(got) < len(msgs):
            got.extend(b.recv_many())
        assert got == msgs
    finally:
        a.close()
        b.close()


def test_frames_larger_than_buffer_and_partial_frames() -> None:
    a, b = socketpair(buffer_size=256)
    try:
        msgs = [("small", 1), ("big", b"y" * 5000), ("small", 2), ("big", bytes(100_000))]
        a.send_many(msgs)
        got: list = []
        while len(got) < len(msgs):
            got.extend(b.recv_many())
        assert got == msgs
    finally:
        a.close()
        b.close()


def test_non_blocking_with_selector_and_queued_output() -> None:
    a, b = socketpair(buffer_size=4096)
    a.sock.setblocking(False)
    b.sock.setblocking(False)
    sel = selectors.DefaultSelector()
    try:
        assert b.recv_many() == []
        msgs = [("m", i, bytes(10_000)) for i in range(300)]  # more than the socket buffer
        done = a.send_many(msgs)
        assert not done and a.has_pending_output
        sel.register(b, selectors.EVENT_READ)
        sel.register(a, selectors.EVENT_WRITE)
        got: list = []
        while len(got) < len(msgs):
            for _key, events in sel.select(timeout=5):
                if events & selectors.EVENT_READ:
                    got.extend(b.recv_many())
                if events & selectors.EVENT_WRITE and a.flush():
                    sel.unregister(a)
        assert got == msgs and not a.has_pending_output
    finally:
        sel.close()
        a.close()
        b.close()


def test_eof_raises() -> None:
    a, b = socketpair()
    a.send_many([("last",)])
    a.close()
    assert b.recv_many() == [("last",)]
    with pytest.raises(EOFError):
        b.recv_many()
    b.close()
