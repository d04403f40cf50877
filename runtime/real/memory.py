"""A `ray memory`-like view of a node: object store, objects by owner and reference, process memory.

`memory_summary(node)` builds the report in the driver (`runtime.memory_summary()`).
`MemoryServer` lets the `twinray memory` command ask a running driver for the same
report: each driver listens on an abstract Unix socket named
``twinray-memory-<pid>-<session>`` (abstract: no file to leak, gone with the process),
answers only peers of its own user (``SO_PEERCRED``), and writes the report once per
connection; `find_sessions` lists those sockets from ``/proc/net/unix``.

Four kinds of memory are kept apart, as Ray's `ray memory` does:

* system memory (``/proc/meminfo``): the machine's total and available memory;
* each process's heap (``RssAnon`` of ``/proc/<pid>/status``: its private memory);
* object store memory: the arena's capacity, what its allocator has in use, and the
  core's accounting (used and spilled bytes, from the raylet's `ObjectStore`);
* shared memory a process has mapped by reading or writing objects (``RssShmem``:
  the arena pages `get` returned zero-copy views of, or that a worker wrote).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from runtime.util.state import ClusterView

__all__ = [
    "MemoryServer",
    "ProcessMemory",
    "find_sessions",
    "memory_summary",
    "process_memory",
    "request_summary",
]

SOCKET_PREFIX = "twinray-memory-"
"""Abstract socket names of running drivers start with this."""


@dataclass(slots=True)
class ProcessMemory:
    """One process's resident memory, split by kind (bytes; -1 when unreadable)."""

    pid: int
    role: str
    heap: int = -1
    """Private (anonymous) memory: the Python heap and everything the process allocated."""
    shared: int = -1
    """Shared memory it has resident: object-store (arena) pages it read or wrote."""
    files: int = -1
    """File-backed pages: code and libraries."""
    rss: int = -1


def process_memory(pid: int, role: str) -> ProcessMemory:
    """Read `pid`'s memory split from ``/proc/<pid>/status`` (``statm`` as a fallback)."""
    info = ProcessMemory(pid, role)
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    fields[key] = int(rest.split()[0]) * 1024
    except OSError:
        return info
    if "RssAnon" in fields:
        info.heap = fields["RssAnon"]
        info.files = fields.get("RssFile", -1)
        info.shared = fields.get("RssShmem", -1)
        info.rss = fields.get("VmRSS", -1)
        return info
    try:  # older kernels: resident minus shared pages
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            parts = [int(x) for x in f.read().split()]
        page = os.sysconf("SC_PAGE_SIZE")
        info.rss, info.heap = parts[1] * page, (parts[1] - parts[2]) * page
    except (OSError, ValueError, IndexError):
        pass
    return info


def _system_memory() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    found[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return found


@dataclass(slots=True)
class _ObjectLine:
    oid: int
    size: int
    where: str
    refs: list[str]


@dataclass(slots=True)
class _OwnerSection:
    role: str
    pid: int
    objects: list[_ObjectLine] = field(default_factory=list)


@dataclass(slots=True)
class _Snapshot:
    """Everything the report shows, gathered on the loop thread in one step."""

    store_capacity: int
    arena_used: int
    core_used: int
    spilled_bytes: int
    in_memory: int
    spilled: int
    primary: int
    owners: list[_OwnerSection]
    processes: list[tuple[int, str]]


def _gather(node: Any, view: ClusterView) -> _Snapshot:
    """Read the core tables and the host's arena bookkeeping (on the loop thread)."""
    from runtime.util.state import reference_types

    raylet = view.raylets[0]
    stored, usage = raylet.stored_objects(), raylet.store_usage()
    spilled = sum(1 for o in stored.values() if o.where != 0)
    primary = sum(1 for o in stored.values() if o.primary)
    objects = node.objects
    with objects.lock:
        arena_objects = dict(objects.arena_objects)
        pinned_offsets = set(objects.pins)
        # ranges still aliased by a value from get() (or a running task's argument) after
        # their object was freed or spilled: Ray lists these as PINNED_IN_MEMORY
        aliased = {oid: size for oid, size in objects.doomed.values()}
        arena_used = node.arena.allocator.used_bytes
    sections = []
    roles = _roles(node, view)
    for addr, owner in sorted(view.owners.items()):
        role, pid = roles.get(addr, ("owner", -1))
        section = _OwnerSection(role, pid)
        objects = owner.object_table()
        contained = {i for o in objects.values() if o.contained for i in o.contained}
        for oid, obj in list(objects.items()):
            if obj.state == 0 and obj.owner < 0:
                refs = ["PENDING"]  # its task has not produced it yet
            else:
                refs = [r for r in reference_types(obj, contained, oid, oid in view.actor_tokens)]
                refs = [r for r in refs if r != "UNKNOWN_STATUS"]
            if obj.owner >= 0:
                refs.append("BORROWED")
            entry = stored.get(oid)
            if entry is not None and entry.pins > 0:
                refs.append(f"PINNED_BY_TASK x{entry.pins}")
            located = arena_objects.get(oid)
            if (located is not None and located[0] in pinned_offsets) or oid in aliased:
                refs.append("PINNED_IN_MEMORY")
                aliased.pop(oid, None)
            if entry is not None and entry.where != 0:
                where = "spilled"
            elif obj.stored or entry is not None:
                where = "store"
            elif obj.owner >= 0:
                where = "borrowed"
            else:
                where = "inline"
            size = entry.size if entry is not None else obj.size
            if refs == ["PENDING"]:
                size = -1
            section.objects.append(_ObjectLine(oid, size, where, refs or ["UNKNOWN_STATUS"]))
        if role == "driver" and aliased:  # freed objects whose bytes the driver still uses
            for oid, size in sorted(aliased.items()):
                section.objects.append(_ObjectLine(oid, size, "store", ["PINNED_IN_MEMORY"]))
            aliased = {}
        sections.append(section)
    processes = [(os.getpid(), "driver")]
    for w in list(node.pool.workers) + list(node.actor_workers.workers.values()):
        if w.alive:
            kind = f"actor {w.actor_id:x}" if w.actor_id else "pool"
            processes.append((w.pid, f"worker {w.worker_id} ({kind})"))
    return _Snapshot(
        usage.capacity, arena_used, usage.used, usage.spilled_bytes,
        len(stored) - spilled, spilled, primary, sections, processes,
    )  # fmt: skip


def _roles(node: Any, view: ClusterView) -> dict[int, tuple[str, int]]:
    roles = {view.driver_addr: ("driver", os.getpid())}
    for addr, w in node.nested.owner_workers.items():
        roles[addr] = (f"worker {w.worker_id}", w.pid)
    return roles


def _fmt(n: int) -> str:
    if n < 0:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def _render(snap: _Snapshot, stats_only: bool) -> str:
    lines = ["======== twinray memory summary ========", ""]
    system = _system_memory()
    lines += [
        "--- system memory ---",
        f"total {_fmt(system.get('MemTotal', -1))}, "
        f"available {_fmt(system.get('MemAvailable', -1))}",
        "",
        "--- object store (node 0) ---",
        f"capacity {_fmt(snap.store_capacity)}; arena in use {_fmt(snap.arena_used)} "
        f"(allocator); objects accounted {_fmt(snap.core_used)} in memory, "
        f"{_fmt(snap.spilled_bytes)} spilled to disk",
        f"{snap.in_memory} object(s) in memory ({snap.primary} primary copies), "
        f"{snap.spilled} spilled",
        "",
    ]
    total_objects = sum(len(s.objects) for s in snap.owners)
    lines.append(f"--- objects by owner ({total_objects} reference entries) ---")
    for section in snap.owners:
        total = sum(o.size for o in section.objects if o.size > 0)
        lines.append(
            f"{section.role} (pid {section.pid}): {len(section.objects)} object(s), {_fmt(total)}"
        )
        kinds: dict[str, int] = {}
        for o in section.objects:
            for r in o.refs:
                key = r.split(" ")[0]
                kinds[key] = kinds.get(key, 0) + 1
        if kinds:
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        if not stats_only and section.objects:
            lines.append(f"  {'object id':<34}{'size':>12}  {'where':<9}reference")
            for o in sorted(section.objects, key=lambda o: (-o.size, o.oid)):
                lines.append(f"  {o.oid:032x}  {_fmt(o.size):>12}  {o.where:<9}{', '.join(o.refs)}")
    lines += [
        "",
        "--- process memory (heap: private memory; shared: object-store pages resident;"
        " files: code and libraries) ---",
        f"  {'process':<28}{'pid':>8}{'heap':>12}{'shared':>12}{'files':>12}{'rss':>12}",
    ]
    for pid, role in snap.processes:
        mem = process_memory(pid, role)
        lines.append(
            f"  {role:<28}{pid:>8}{_fmt(mem.heap):>12}{_fmt(mem.shared):>12}"
            f"{_fmt(mem.files):>12}{_fmt(mem.rss):>12}"
        )
    return "\n".join(lines) + "\n"


def memory_summary(node: Any, stats_only: bool = False) -> str:
    """The memory report of `node` (a running `Node`), as text; `stats_only`: no object lines."""
    snap = node.inspect(lambda view: _gather(node, view))
    return _render(snap, stats_only)


# -- serving the report to `twinray memory` -------------------------------------------------------


class MemoryServer:
    """Answers `twinray memory` for one driver over an abstract Unix socket (same user only)."""

    def __init__(self, node: Any) -> None:
        self.name = f"{SOCKET_PREFIX}{os.getpid()}-{node.session}"
        self._node = node
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + self.name)
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, name="twinray-memory", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    self._answer(conn)
                except Exception:  # a client that went away, a node shutting down
                    continue

    def _answer(self, conn: socket.socket) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            conn.sendall(b"error: twinray memory answers only its own user\n")
            return
        conn.settimeout(5.0)
        request = conn.recv(64).decode("ascii", "replace").strip()
        text = memory_summary(self._node, stats_only=request == "stats")
        conn.sendall(text.encode())

    def close(self) -> None:
        """Stop listening (wakes the serving thread) and wait for it."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)


def find_sessions() -> list[tuple[int, str]]:
    """Running drivers on this machine: (pid, socket name), from ``/proc/net/unix``."""
    found = []
    try:
        with open("/proc/net/unix", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[-1].startswith("@" + SOCKET_PREFIX):
                    name = parts[-1][1:]
                    pid_text = name[len(SOCKET_PREFIX) :].split("-", 1)[0]
                    if pid_text.isdigit():
                        found.append((int(pid_text), name))
    except OSError:
        pass
    return sorted(set(found))


def request_summary(name: str, stats_only: bool = False, timeout: float = 30.0) -> str:
    """Ask the driver listening on abstract socket `name` for its memory report."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect("\0" + name)
        sock.sendall(b"stats\n" if stats_only else b"summary\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
