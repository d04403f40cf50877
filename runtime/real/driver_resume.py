"""A restarted head takes a connected driver back under its old owner index and rebuilds that owner from the lineage the driver kept.

`DriverResume` is made by `runtime.real.head_restart.HeadState` when the head restarts
from a session's tables. Until the rejoin grace runs out it parks the messages that come
for owner addresses on the head that have no owner yet (a driver's results and the
``TasksHeld`` of rejoining nodes, `runtime.real.owner_mail`), lets a driver that asks for
its old worker id have it (`may_rejoin`, read by `RemoteClients`), serves the driver's
``resume`` request (its lineage: `runtime.core.owner_resume.resume`, then the parked
messages), and settles each resumed owner once every node the head knew rejoined or was
declared dead (`runtime.core.owner_resume.settle`, with the object directory's copies on
live nodes). See docs/design.md, "A connected driver's work survives a head restart".
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from runtime.core import owner_resume
from runtime.core.task import TaskSpec
from runtime.real import requests as rq
from runtime.real.nested import call_fields
from runtime.real.owner_mail import PARK_LIMIT, Parked, is_head_owner

__all__ = ["DriverResume"]

log = logging.getLogger("runtime")


class DriverResume:
    """A restarted head's side of drivers coming back (loop thread, but `may_rejoin`)."""

    def __init__(self, node: Any, first_new_worker_id: int) -> None:
        self.node = node
        self.first_new_worker_id = first_new_worker_id
        """Worker ids below this were given by a previous head (a driver may take its own
        back); ids from it on are this head's."""
        self.open = True
        """Parking and rejoining allowed (until the grace ran out: `expire`)."""
        self.parked: dict[int, Parked] = {}
        self.for_nodes: dict[int, list[tuple[int, Any]]] = {}
        """Node index -> ``(address, message)`` for its components, sent when it rejoins."""
        self.deferred: dict[int, tuple[Any, Any]] = {}
        """Worker id -> (channel, attach) of a driver coming back, welcomed once the nodes
        are back (`defer`)."""
        self.waiting: list[Any] = []
        """Resumed owners not settled yet."""
        self.settled: list[tuple[int, int, int]] = []
        """Per settled owner: (address, tasks found finished in the directory, run again)."""
        self.stride = node.peers.stride
        node.peers.park = self.park
        node.nested.request_ops[rq.RESUME] = self._req_resume

    def park(self, addr: int) -> Any:
        """The stand-in keeping messages for `addr`: an owner on the head not back yet, or
        a component of a node the restored GCS expects back (they go to it once it
        registered again, `_deliver_to_nodes`); None: dropped."""
        if not self.open:
            return None
        if addr >= self.stride:
            node = addr // self.stride
            if node not in self.node.gcs.rejoining:
                return None
            return _ForNode(self.for_nodes.setdefault(node, []), addr)
        if not is_head_owner(addr, self.stride):
            return None
        parked = self.parked.get(addr)
        if parked is None:
            parked = self.parked[addr] = Parked(deque())
        return parked

    def _deliver_to_nodes(self) -> None:
        """Send each node registered again what was kept for its components (not before:
        a node reads its welcome alone, and its components are back once it registered)."""
        rejoining, links = self.node.gcs.rejoining, self.node.peers.links
        for index in [i for i in self.for_nodes if i not in rejoining and i in links]:
            link = links[index]
            for addr, msg in self.for_nodes.pop(index):
                link.send_core(addr, msg)

    def may_rejoin(self, worker_id: int, in_use: set[int]) -> bool:
        """A driver asks for worker id `worker_id` back (its owner's index): True when a
        previous head gave it and no connection holds it."""
        if not self.open or worker_id >= self.first_new_worker_id or worker_id < 0:
            return False
        return worker_id not in in_use

    def defer(self, worker_id: int, channel: Any, attach: Any) -> bool:
        """Hold a driver's welcome while nodes the restored GCS knew are still expected
        back (its tasks there, and the nodes it needs, are not known before: a task it
        submits meanwhile would find no node for it). True: `attach(now)` runs later; an
        older held connection for the same id (the driver timed out and came again) is
        closed."""
        if not self.node.gcs.rejoining:
            return False
        old = self.deferred.pop(worker_id, None)
        if old is not None:
            old[0].close()
        self.deferred[worker_id] = (channel, attach)
        return True

    def _req_resume(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        """The driver's lineage (request ``resume``, sent first after it took its worker id
        back): rebuild its owner, hand it what was parked for it, settle when possible."""
        try:
            self._resume(w, payload, now)
        except Exception:  # no reply carries the error of a no-reply request: say it here
            log.exception("twinray: could not resume the owner of driver %d", w.worker_id)
            raise

    def _resume(self, w: Any, payload: tuple, now: float) -> None:
        submits, calls, refs, values, borrowed, next_task, actor_seqs = payload
        nested = self.node.nested
        specs = []
        for task_id, body in submits:
            specs.append(
                TaskSpec(task_id=task_id, owner=-1, owner_node=-1, **nested.submit_fields(w, body))
            )
        for task_id, seq, body in calls:
            specs.append(
                TaskSpec(task_id=task_id, owner=-1, owner_node=-1, seq=seq, **call_fields(body))
            )
        owner = nested.owner_of(w)
        out = self.node._out
        owner_resume.resume(
            owner, specs, dict(refs), dict(values), list(borrowed), next_task,
            dict(actor_seqs), now, out,
        )  # fmt: skip
        parked = self.parked.pop(owner.addr, None)
        for msg in parked.box if parked is not None else ():
            owner.handle(msg, now, out)
        self.waiting.append(owner)
        nested.execute(now)  # the GCS answers its actor subscriptions before it settles
        log.info(
            "twinray: driver owner %d resumed with %d task(s), %d parked message(s)",
            owner.addr,
            len(specs),
            len(parked.box) if parked is not None else 0,
        )
        self.try_settle(now)
        nested.execute(now)

    def try_settle(self, now: float) -> None:
        """Settle the resumed owners once no node the head knew is still expected back."""
        gcs = self.node.gcs
        if self.for_nodes:
            self._deliver_to_nodes()
        if gcs.rejoining:
            return
        deferred, self.deferred = self.deferred, {}
        for _channel, attach in deferred.values():
            attach(now)
        if not self.waiting:
            return
        alive = {n for n, info in gcs.node_table().items() if info.alive}
        directory = gcs.object_table()
        out = self.node._out
        waiting, self.waiting = self.waiting, []
        for owner in waiting:
            stored: dict[int, tuple[int, int]] = {}
            for oid in owner_resume.unsettled_returns(owner):
                entry = directory.get(oid)
                where = [n for n in entry.locations if n in alive] if entry is not None else []
                if where:
                    stored[oid] = (where[0], entry.size)
            finished, rerun = owner_resume.settle(owner, stored, alive, now, out)
            self.settled.append((owner.addr, finished, rerun))
            log.info(
                "twinray: driver owner %d settled: %d task(s) finished in the directory, "
                "%d run again",
                owner.addr,
                finished,
                rerun,
            )
        self.node._execute(now)

    def tick(self, _arg: Any, now: float) -> None:
        """Loop op (every `head_restart.META_INTERVAL`): settle what can be."""
        self.try_settle(now)

    def expire(self, now: float) -> None:
        """The rejoin grace ran out (the missing nodes were declared dead): nothing is
        parked any more, no worker id is given back, what waits is settled."""
        self.open = False
        self.parked.clear()
        self.for_nodes.clear()
        self.try_settle(now)


class _ForNode:
    """A component of a node not linked again yet: keeps what comes for it."""

    __slots__ = ("box", "addr")

    def __init__(self, box: list[tuple[int, Any]], addr: int) -> None:
        self.box = box
        self.addr = addr

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Keep `msg` for the node (sent when it rejoins; the oldest go past `PARK_LIMIT`)."""
        self.box.append((self.addr, msg))
        if len(self.box) > PARK_LIMIT:
            del self.box[0]
