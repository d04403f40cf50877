"""Task results for owners on the head, kept by a worker node across a head restart, and parked by a restarted head until their owner is back.

A connected driver's owner lives on the head (see docs/design.md, "A connected driver's
work survives a head restart"). When the head dies, a worker node goes on running that
owner's tasks; their ``TaskDone`` would go to an address that is gone. The worker node
therefore keeps (`HeadOwnerMail`) every ``TaskDone`` it sends to an owner on the head
for `RESEND_WINDOW` seconds (the head may have died before handling it) and every one
sent while the head is away, and sends them again, followed by one ``TasksHeld`` per
owner (what its raylet holds of it), when it rejoins. A restarted head holds messages
for an owner address that has no owner yet (`park`) until the driver took it back
(`runtime.real.driver_resume`) or the rejoin grace ran out.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from runtime.core.messages import TaskDone

__all__ = [
    "PARK_LIMIT",
    "RESEND_BYTES",
    "RESEND_WINDOW",
    "HeadOwnerMail",
    "Parked",
    "is_head_owner",
]

RESEND_WINDOW = 10.0
"""Seconds a worker node keeps the ``TaskDone`` it sent to owners on the head."""
RESEND_BYTES = 64 << 20
"""At most this many bytes of inline results are kept (then the oldest go first)."""
PARK_LIMIT = 1 << 16
"""Messages a restarted head parks per absent owner at most (then the oldest go)."""


def is_head_owner(addr: int, stride: int) -> bool:
    """True for the address of an owner hosted by the head (node 0): its driver owner
    or a worker's (a connected driver's included)."""
    from runtime.real.addresses import owner_address

    return 0 <= addr < stride and (addr == owner_address(0) or addr >= owner_address(1))


class HeadOwnerMail:
    """A worker node's copies of the results it sent to owners on the head (loop thread)."""

    def __init__(self, stride: int, window: float = RESEND_WINDOW) -> None:
        from runtime.real.addresses import owner_address

        self.stride = stride
        self.window = window
        self._driver_owner = owner_address(0)
        self._first_worker_owner = owner_address(1)
        self.recent: deque[tuple[float, int, Any, int]] = deque()
        """``(time sent, owner address, TaskDone, bytes)`` sent to the head, oldest first."""
        self.recent_bytes = 0
        self.outage: list[tuple[int, Any]] = []
        """``(owner address, TaskDone)`` that found the head gone."""
        self.resent = 0
        """Results sent again after a rejoin (a counter)."""

    def is_head_owner(self, addr: int) -> bool:
        """True for the address of an owner hosted by the head (see `is_head_owner`)."""
        return 0 <= addr < self.stride and (
            addr == self._driver_owner or addr >= self._first_worker_owner
        )

    def peer(self, link: Any, addr: int, remote: Any) -> Any:
        """The component standing for `addr` on the head: `remote` (a `RemotePeer`), or,
        for an owner there, one that also keeps the results it sends."""
        return _Kept(self, addr, remote) if self.is_head_owner(addr) else remote

    def absent(self, addr: int) -> Any:
        """The stand-in for `addr` on the head while the head is away (None: drop)."""
        return _Kept(self, addr, None) if self.is_head_owner(addr) else None

    def keep(self, dst: int, msg: Any, sent: bool) -> None:
        """Record `msg` for owner `dst` on the head if it is a task's result (`sent`: it
        went out; else the head was away)."""
        if type(msg) is not TaskDone:
            return
        if not sent:
            self.outage.append((dst, msg))
            return
        now = time.monotonic()
        recent = self.recent
        size = 64 + sum(r.size for r in msg.results if not r.stored)
        recent.append((now, dst, msg, size))
        self.recent_bytes += size
        horizon = now - self.window
        while recent[0][0] < horizon or self.recent_bytes > RESEND_BYTES:
            self.recent_bytes -= recent.popleft()[3]
            if not recent:
                break

    def resend(self, link: Any, raylet: Any) -> None:
        """The head is back on `link`: send the results kept (the recent ones and those of
        the outage), then each owner's ``TasksHeld``, before the raylet registers again
        (so a restarted head has them all once it knows the node is back)."""
        horizon = time.monotonic() - self.window
        kept = [(dst, msg) for sent, dst, msg, _size in self.recent if sent >= horizon]
        kept += self.outage
        self.recent.clear()
        self.recent_bytes = 0
        self.outage = []
        for dst, msg in kept:
            link.send_core(dst, msg)
        self.resent += len(kept)
        for owner, held in raylet.tasks_held().items():
            if self.is_head_owner(owner):
                link.send_core(owner, held)


class _Kept:
    """An owner on the head as a worker node's component: sends (when the head is there)
    and keeps the results it sends (`HeadOwnerMail.keep`)."""

    __slots__ = ("mail", "dst", "remote")

    def __init__(self, mail: HeadOwnerMail, dst: int, remote: Any) -> None:
        self.mail = mail
        self.dst = dst
        self.remote = remote

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Send `msg` on (if the head is there) and keep it if it is a result."""
        remote = self.remote
        if remote is not None:
            remote.handle(msg, now, out)
        self.mail.keep(self.dst, msg, remote is not None)


class Parked:
    """A restarted head's stand-in for an owner not back yet: it keeps what comes for it."""

    __slots__ = ("box",)

    def __init__(self, box: deque[Any]) -> None:
        self.box = box

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Keep `msg` for the owner (the oldest go past `PARK_LIMIT`)."""
        self.box.append(msg)
        if len(self.box) > PARK_LIMIT:
            self.box.popleft()
