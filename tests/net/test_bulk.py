"""Node-to-node object transfer: bytes intact at every size, concurrent pulls, failures freed."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime.exceptions import AuthenticationError, ObjectTransferError
from runtime.net.auth import Hello, new_token
from runtime.net.bulk import (
    BulkClient,
    Destination,
    ObjectServer,
    Source,
    arena_destination,
    arena_source,
    recv_into_buffer,
    send_buffer,
)
from runtime.net.channel import listen, open_authenticated
from runtime.real.arena import Arena

from ._serve import payload

ROOT = Path(__file__).resolve().parents[2]
SIZES = [0, 1, 7, 63, 64, 65, 4097, 100_003, 262_143, 262_145, 1_000_003, 3 << 20]
BIG_ID = (12 << 72) | (99 << 8)  # a generator item's id: wider than 64 bits


def test_send_buffer_and_recv_into_buffer_odd_sizes() -> None:
    a, b = socket.socketpair()
    for n in [0, 1, 3, 4095, 65537, 2_000_001]:
        data = os.urandom(n)
        dest = bytearray(n + 5)
        t = threading.Thread(
            target=send_buffer,
            args=(a, memoryview(data)),
            kwargs={"chunk": 65536, "header": b"HDR"},
        )
        t.start()
        assert b.recv(3, socket.MSG_WAITALL) == b"HDR"
        recv_into_buffer(b, memoryview(dest), n, chunk=10_000)
        t.join(30)
        assert bytes(dest[:n]) == data
    a.close()
    with pytest.raises(ObjectTransferError, match="after 0 of 10 bytes"):
        recv_into_buffer(b, memoryview(bytearray(10)), 10)
    b.close()


@pytest.fixture
def token() -> str:
    return new_token()


@pytest.fixture
def arena() -> Iterator[Arena]:
    a = Arena(64 << 20, prefault_bytes=0)
    yield a
    a.close()


@pytest.fixture
def server(token: str, arena: Arena) -> Iterator[ObjectServer]:
    """An in-process server: objects of `SIZES` (ids 1..), half as arena ranges (sendfile),
    half as plain buffers, plus one under a wider-than-64-bit id."""
    objects: dict[int, Source] = {}
    for i, size in enumerate(SIZES):
        oid = i + 1
        data = payload(oid, size)
        if i % 2:
            off = arena.allocate(size)
            arena.write(off, [data])
            objects[oid] = arena_source(arena, off, size)
        else:
            objects[oid] = Source(memoryview(data))
    objects[BIG_ID] = Source(memoryview(payload(5, 1000)))
    released: list[int] = []

    def lookup(oid: int) -> Source | None:
        src = objects.get(oid)
        if src is None:
            return None
        return Source(src.view, lambda: released.append(oid), src.fd, src.offset)

    srv = ObjectServer(lookup, token)
    srv.released = released  # type: ignore[attr-defined]
    yield srv
    srv.close()


def _bytes_into() -> tuple[list[bytearray], object]:
    bufs: list[bytearray] = []
    freed: list[int] = []

    def into(n: int) -> Destination:
        buf = bytearray(n)
        bufs.append(buf)
        return Destination(memoryview(buf), lambda: freed.append(n))

    into.freed = freed  # type: ignore[attr-defined]
    return bufs, into


def test_every_size_arrives_intact(server: ObjectServer, token: str) -> None:
    with BulkClient(token, Hello("node", "b")) as client:
        for i, size in enumerate(SIZES):
            _, into = _bytes_into()
            dest = client.pull(server.address, i + 1, into)
            assert len(dest.view) == size and bytes(dest.view) == payload(i + 1, size), size
        _, into = _bytes_into()
        assert bytes(client.pull(server.address, BIG_ID, into).view) == payload(5, 1000)
    server.close()  # (waits for its threads: each releases a source once it is sent)
    assert sorted(set(server.released)) == sorted([*range(1, len(SIZES) + 1), BIG_ID])  # type: ignore[attr-defined]


def test_pull_many_pipelined_and_concurrent_pulls(
    server: ObjectServer, token: str, arena: Arena
) -> None:
    ids = [1 + (k % len(SIZES)) for k in range(48)]
    into = arena_destination(arena)
    used_before = arena.allocator.used_bytes
    with BulkClient(token, Hello("node", "b")) as client:
        for parallel in (1, 3, 8):
            dests = client.pull_many(server.address, ids, into, parallel=parallel)
            assert [bytes(d.view) for d in dests] == [payload(i, SIZES[i - 1]) for i in ids]
            for d in dests:
                d.release()
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                for j in range(6):
                    oid = 1 + (k + j) % len(SIZES)
                    d = client.pull(server.address, oid, into)
                    assert bytes(d.view) == payload(oid, SIZES[oid - 1])
                    d.release()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert len(client._idle[server.address]) >= 2  # several connections were used at once
    assert arena.allocator.used_bytes == used_before


def test_missing_object_is_named_and_nothing_is_kept(server: ObjectServer, token: str) -> None:
    with BulkClient(token, Hello("node", "b")) as client:
        _, into = _bytes_into()
        with pytest.raises(ObjectTransferError, match="object 4242 is not on") as info:
            client.pull(server.address, 4242, into)
        assert info.value.missing
        bufs, into = _bytes_into()
        with pytest.raises(ObjectTransferError) as info:
            client.pull_many(server.address, [1, 2, 3, 4242, 5], into, parallel=1)
        assert info.value.missing and sorted(into.freed) == sorted(len(b) for b in bufs)  # type: ignore[attr-defined]
        assert bytes(client.pull(server.address, 3, _bytes_into()[1]).view) == payload(3, SIZES[2])


def test_bad_ids_are_refused(server: ObjectServer, token: str) -> None:
    with BulkClient(token, Hello("node", "b")) as client:
        for bad in (-1, "x", 1.5, 1 << 3000):
            with pytest.raises((TypeError, ValueError)):
                client.pull(server.address, bad, _bytes_into()[1])  # type: ignore[arg-type]


def test_pulling_needs_the_token(server: ObjectServer) -> None:
    with BulkClient(new_token(), Hello("node", "b")) as client, pytest.raises(AuthenticationError):
        client.pull(server.address, 1, _bytes_into()[1])


def test_server_survives_a_puller_that_dies_mid_transfer(server: ObjectServer, token: str) -> None:
    big = len(SIZES)  # the 3 MiB object
    for _ in range(3):
        sock, _, _ = open_authenticated(server.address, token, Hello("node", "quitter"), timeout=30)
        ident = big.to_bytes(1, "big")
        sock.sendall(struct.pack("<BBQQ", 1, 1, 0, (1 << 64) - 1) + ident)
        sock.recv(1000)
        sock.close()
    with BulkClient(token, Hello("node", "b")) as client:
        assert bytes(client.pull(server.address, big, _bytes_into()[1]).view) == payload(
            big, SIZES[-1]
        )


def test_a_stalled_server_times_out_and_frees_the_destination(token: str) -> None:
    """A server that promises 1 MiB and goes quiet: the pull fails after `idle_timeout`."""
    lst = listen("127.0.0.1", 0, token)

    def stall() -> None:
        ch, _ = lst.accept(timeout=30)
        ch.sock.recv(100)
        ch.sock.sendall(struct.pack("<BQQ", 0, 1 << 20, 1 << 20) + b"x" * 1000)
        stop.wait(30)
        ch.close()

    stop = threading.Event()
    t = threading.Thread(target=stall)
    t.start()
    _, into = _bytes_into()
    client = BulkClient(token, Hello("node", "b"), idle_timeout=0.5)
    with client, pytest.raises(ObjectTransferError, match="stalled"):
        client.pull(lst.address, 1, into)
    assert into.freed == [1 << 20]  # type: ignore[attr-defined]
    stop.set()
    t.join(30)
    lst.close()


def _spawn(token: str, *sizes: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.net._serve", *map(str, sizes)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TWINRAY_AUTH_TOKEN": token, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address, "the server process did not start"
    return proc, address


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.mark.timeout(120)
def test_100_mib_between_processes_arena_to_arena(token: str) -> None:
    n = 100 << 20
    proc, address = _spawn(token, n, 1, 0, 5000)
    dst = Arena(n + (4 << 20), prefault_bytes=0)
    try:
        with BulkClient(token, Hello("node", "b")) as client:
            into = arena_destination(dst)
            dest = client.pull(address, 1, into)
            got = np.frombuffer(dest.view, np.uint8)
            assert np.array_equal(got, np.frombuffer(payload(1, n), np.uint8))
            del got
            small = client.pull_many(address, [2, 3, 4], into)
            assert [bytes(d.view) for d in small] == [payload(2, 1), b"", payload(4, 5000)]
            for d in [dest, *small]:
                d.release()
        assert dst.allocator.used_bytes == 0
    finally:
        _stop(proc)
        dst.close()


@pytest.mark.timeout(120)
def test_server_killed_mid_transfer_raises_and_frees_the_destination(token: str) -> None:
    n = 32 << 20  # far more than the sockets' buffers hold
    proc, address = _spawn(token, n)
    dst = Arena(n + (4 << 20), prefault_bytes=0)
    alloc = arena_destination(dst)

    def into(nbytes: int) -> Destination:
        dest = alloc(nbytes)
        os.kill(proc.pid, signal.SIGKILL)  # the node dies with the reply under way
        return dest

    try:
        with BulkClient(token, Hello("node", "b")) as client:
            with pytest.raises(
                ObjectTransferError, match=r"of 33554432 bytes|closed the connection"
            ):
                client.pull(address, 1, into)
            with pytest.raises(ObjectTransferError, match="cannot reach"):
                client.pull(address, 1, alloc)  # dying or dead: unreachable, not a token error
            proc.wait(30)
            with pytest.raises(ObjectTransferError, match="cannot reach"):
                client.pull(address, 1, alloc)  # and the dead node is reported as unreachable
        assert dst.allocator.used_bytes == 0
    finally:
        proc.wait(30)
        dst.close()


def test_a_failing_lookup_drops_that_puller_only_and_releases_what_was_queued(token: str) -> None:
    released: list[int] = []

    def lookup(oid: int) -> Source | None:
        if oid == 13:
            raise RuntimeError("the object table broke")
        return Source(memoryview(payload(oid, 100)), lambda: released.append(oid))

    server = ObjectServer(lookup, token)
    try:
        with BulkClient(token, Hello("node", "b")) as client:
            _, into = _bytes_into()
            with pytest.raises(ObjectTransferError, match="closed the connection"):
                client.pull_many(server.address, [1, 2, 13, 4], into, parallel=1)
            # 1 and 2 were queued in the same batch, never sent: nothing reached the puller
            assert into.freed == []  # type: ignore[attr-defined]
            assert bytes(client.pull(server.address, 4, _bytes_into()[1]).view) == payload(4, 100)
    finally:
        server.close()
    assert sorted(released) == [1, 2, 4]  # the queued sources were released all the same
