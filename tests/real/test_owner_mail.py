"""What a worker node keeps for owners on the head across a head restart (`runtime.real.owner_mail`)."""

from __future__ import annotations

from typing import Any

from runtime.core.messages import ObjectStatus, TaskDone, TasksHeld
from runtime.core.task import ResultInfo
from runtime.real import owner_mail
from runtime.real.addresses import NODE_STRIDE, owner_address
from runtime.real.owner_mail import HeadOwnerMail

DRIVER = owner_address(5)
"""A connected driver's owner on the head (worker id 4)."""
ELSEWHERE = NODE_STRIDE + owner_address(3)
"""An owner on node 1."""


class _Link:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []

    def send_core(self, dst: int, msg: Any) -> None:
        self.sent.append((dst, msg))


class _Raylet:
    def tasks_held(self) -> dict[int, TasksHeld]:
        return {DRIVER: TasksHeld(1, [(7, 0, 0)], {}), ELSEWHERE: TasksHeld(1, [(8, 0, 0)], {})}


def _done(task_id: int, size: int = 8) -> TaskDone:
    return TaskDone(task_id, 1, [ResultInfo(task_id << 8 | 1, size, False, b"x" * size)])


def test_results_are_sent_again_then_what_the_raylet_holds() -> None:
    mail = HeadOwnerMail(NODE_STRIDE)
    assert mail.is_head_owner(DRIVER) and mail.is_head_owner(owner_address(0))
    assert not mail.is_head_owner(ELSEWHERE) and not mail.is_head_owner(0)  # the GCS
    link = _Link()
    mail.peer(link, DRIVER, _Peer(link, DRIVER)).handle(_done(1), 0.0, [])
    mail.peer(link, DRIVER, _Peer(link, DRIVER)).handle(ObjectStatus(5, None, -1), 0.0, [])
    assert mail.absent(ELSEWHERE) is None  # only owners on the head are kept for
    mail.absent(DRIVER).handle(_done(2), 0.0, [])  # the head is away
    link.sent.clear()
    mail.resend(link, _Raylet())
    assert [(d, type(m).__name__, getattr(m, "task_id", None)) for d, m in link.sent] == [
        (DRIVER, "TaskDone", 1), (DRIVER, "TaskDone", 2), (DRIVER, "TasksHeld", None)
    ]  # fmt: skip
    assert mail.resent == 2 and not mail.recent and not mail.outage


def test_old_or_too_many_results_are_not_kept(monkeypatch: Any) -> None:
    mail = HeadOwnerMail(NODE_STRIDE, window=5.0)
    clock = [100.0]
    monkeypatch.setattr(owner_mail.time, "monotonic", lambda: clock[0])
    mail.keep(DRIVER, _done(1), True)
    clock[0] += 6.0
    mail.keep(DRIVER, _done(2), True)
    assert [m.task_id for _, _, m, _ in mail.recent] == [2]  # the first is past the window
    monkeypatch.setattr(owner_mail, "RESEND_BYTES", 1000)
    mail.keep(DRIVER, _done(3, 600), True)
    mail.keep(DRIVER, _done(4, 600), True)
    assert [m.task_id for _, _, m, _ in mail.recent] == [4]  # the byte bound drops the oldest


class _Peer:
    def __init__(self, link: _Link, dst: int) -> None:
        self.link, self.dst = link, dst

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.link.send_core(self.dst, msg)
