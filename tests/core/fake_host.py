"""A tiny deterministic host for core tests: virtual time, a heap of deliveries, no SimPy, no processes."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.messages import (
    INTERRUPT_CANCELLED,
    INTERRUPT_UNSTARTED,
    ActorStateChanged,
    CancelRunning,
    CheckpointSaved,
    Dispatch,
    FenceNode,
    Free,
    GeneratorYielded,
    ItemReady,
    KillWorker,
    MakeRoom,
    NodeDied,
    ObjectFreed,
    ObjectReady,
    Persist,
    Restore,
    Restored,
    SaveCheckpoint,
    Send,
    SetTimer,
    Spill,
    Spilled,
    StreamEnded,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
    TransferDone,
    TransferFailed,
    Unassigned,
    WorkerInterrupted,
)
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from runtime.core.task import ERR_APPLICATION, TaskSpec

RAYLET_BASE = 100
"""The fake host numbers raylets from 100 and owners from 1000 (readable in test output)."""
OWNER_BASE = 1000


def raylet_addr(node: int) -> int:
    """Address of node ``node``'s raylet."""
    return RAYLET_BASE + node


def owner_addr(node: int) -> int:
    """Address of the owner (driver) living on node ``node``."""
    return OWNER_BASE + node


@dataclass
class FakeHost:
    """Delivers every Send after ``latency`` and runs every task for its ``duration``.

    Tasks whose ``function`` is ``"fail"`` end with an application error; a callable
    ``fail_hook(spec)`` may return an error kind to inject (e.g. a worker death).
    A generator task (``spec.generator``) yields one item per ``output_sizes`` entry,
    evenly spread over its duration (skipping ``spec.skip_items``); with ``function``
    ``"gen_fail"`` its last item is an application error instead.
    """

    nodes: int = 2
    cpus: float = 2
    latency: float = 0.001
    transfer_time: float = 0.01
    store_capacity: int = 1 << 30
    config: CoreConfig = field(default_factory=CoreConfig)
    extra_resources: dict[int, dict[str, float]] = field(default_factory=dict)
    timers: bool = False
    fail_hook: Any = None
    checks: bool = True
    """Run every component's ``check()`` after each delivery (see `check`)."""
    check_raylets: bool = True
    """With ``checks``: include the raylets (off for a test that forges a raylet's state)."""

    def __post_init__(self) -> None:
        self.now = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, Any]] = []
        self.ready: dict[int, ObjectReady] = {}
        self.commands: list[Any] = []
        self.freed: list[tuple[int, int]] = []
        self.ended: list[int] = []
        """Watched objects the owners dropped (``ObjectFreed``)."""
        self.transfers: list[Transfer] = []
        self.dispatched: list[Dispatch] = []
        self.actor_events: list[ActorStateChanged] = []
        self.killed: list[KillWorker] = []
        self.checkpoints: list[SaveCheckpoint] = []
        self.interrupted: set[int] = set()
        self.dead: set[int] = set()
        self.frozen: set[int] = set()
        """Nodes that are stopped but not dead (SIGSTOP): what reaches them waits in `held`."""
        self.held: list[Any] = []
        self.fences: list[FenceNode] = []
        self.prefetched: dict[int, list[Dispatch]] = {}
        """Per node: prefetched tasks (``Dispatch.ahead``) queued behind running ones."""
        self.refuse_prefetch = False
        """Hand every prefetched task straight back (``Unassigned``)."""
        self.items: list[ItemReady] = []
        self.streams_ended: dict[int, StreamEnded] = {}
        self.spilled: list[Spill] = []
        self.restored: list[Restore] = []
        self.refused: list[Restore] = []
        """Restores answered ``no_room`` (their bytes did not fit)."""
        self.restoring: dict[int, list[Restore]] = {}
        """Per node: restores answered but not yet delivered (their bytes are taken)."""
        self.peak_used: dict[int, int] = {}
        """Per node: the most memory restores ever needed at once (store used included)."""
        self.disk: set[tuple[int, int]] = set()
        """(node, oid) of the objects written to the fake disk and not yet restored or freed."""
        self.persisted: dict[tuple[str, Any], Any] = {}
        """A persistent GCS's durable rows (`Gcs.enable_persistence`; off by default)."""
        self._commands: dict[type, Callable[[Any], None]] = {
            Send: self._send,
            Dispatch: self._dispatch,
            Transfer: self._transfer,
            SetTimer: self._set_timer,
            ObjectReady: self._object_ready,
            Free: self._free,
            Spill: self._spill,
            Restore: self._restore_cmd,
            ActorStateChanged: self._actor_state,
            KillWorker: self._kill_worker,
            SaveCheckpoint: self._save_checkpoint,
            CancelRunning: self._cancel_running,
            Trace: self._trace,
            ObjectFreed: self._object_freed,
            ItemReady: self._item_ready,
            StreamEnded: self._stream_ended,
            FenceNode: self._fence,
            Persist: self._persist,
        }
        """What carries out each command type (every ``Command`` subclass has an entry)."""
        capacities = [
            NodeCapacity(
                {"CPU": float(self.cpus), **self.extra_resources.get(node, {})},
                self.store_capacity,
            )
            for node in range(self.nodes)
        ]
        self.plane = build_control_plane(
            self.config,
            random.Random(7),
            capacities,
            self.nodes,
            raylet_base=RAYLET_BASE,
            owner_base=OWNER_BASE,
        )
        self.gcs = self.plane.gcs
        self.gs = self.plane.global_scheduler
        self.components: dict[int, Any] = dict(self.plane.components())
        self.raylets: list[Raylet] = self.plane.raylets
        self.owners: list[Owner] = self.plane.owners
        out: list[Any] = []
        self.gs.start(0.0, out)
        for raylet, owner in zip(self.raylets, self.owners, strict=True):
            raylet.start(0.0, out)
            owner.start(0.0, out)
        self._effect(out)
        self.run(until=10 * self.latency)  # registration settles before any task

    # -- driving ------------------------------------------------------------------------

    def _push(self, at: float, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, item))

    def _effect(self, out: list[Any]) -> None:
        """Carry out each command by its handler in `_commands`; then run the checks."""
        commands = self._commands
        for cmd in out:
            self.commands.append(cmd)
            handler = commands.get(type(cmd))
            if handler is None:
                raise AssertionError(f"unknown command {cmd!r}")
            handler(cmd)
        if self.checks:
            self.check()

    def check(self) -> None:
        """Run ``check()`` on every live component that has one (raises ``InvariantError``)."""
        for addr, component in self.components.items():
            if self._node_of(addr) in self.dead:
                continue  # gone with its node: a retry elsewhere moves on the specs it held
            if not self.check_raylets and isinstance(component, Raylet):
                continue
            check = getattr(component, "check", None)
            if check is not None:
                check()

    def _send(self, cmd: Send) -> None:
        self._push(self.now + self.latency, (cmd.dst, cmd.msg))

    def _dispatch(self, cmd: Dispatch) -> None:
        if cmd.ahead:
            if self.refuse_prefetch:
                back = Unassigned(cmd.spec.task_id)
                self._push(self.now, (raylet_addr(cmd.node), back))
            else:
                self.prefetched.setdefault(cmd.node, []).append(cmd)
            return
        self.dispatched.append(cmd)
        if cmd.spec.generator:
            self._schedule_items(cmd)
        self._push(self.now + cmd.spec.duration, ("finish", cmd))

    def _transfer(self, cmd: Transfer) -> None:
        self.transfers.append(cmd)
        if cmd.src in self.dead or cmd.src < 0:
            done: Any = TransferFailed(cmd.oid, cmd.src)
        else:
            done = TransferDone(cmd.oid, cmd.nbytes, cmd.src)
        self._push(self.now + self.transfer_time, (raylet_addr(cmd.dst), done))

    def _set_timer(self, cmd: SetTimer) -> None:
        if self.timers:
            self._push(self.now + cmd.delay, (cmd.addr, TimerFired(cmd.key)))

    def _object_ready(self, cmd: ObjectReady) -> None:
        self.ready[cmd.oid] = cmd

    def _free(self, cmd: Free) -> None:
        self.freed.append((cmd.node, cmd.oid))
        self.disk.discard((cmd.node, cmd.oid))

    def _spill(self, cmd: Spill) -> None:
        self.spilled.append(cmd)
        self.disk.add((cmd.node, cmd.oid))
        self._push(self.now + self.transfer_time, (raylet_addr(cmd.node), Spilled(cmd.oid)))

    def _restore_cmd(self, cmd: Restore) -> None:
        event = self._restore(cmd)
        self._push(self.now + self.transfer_time, (raylet_addr(cmd.node), event))

    def _actor_state(self, cmd: ActorStateChanged) -> None:
        self.actor_events.append(cmd)

    def _save_checkpoint(self, cmd: SaveCheckpoint) -> None:
        """Save at once: the state is the number of checkpoints the actor saved before."""
        plan = cmd.spec.checkpoint
        saves = plan.saves if plan is not None else 0
        self.checkpoints.append(cmd)
        self._push(self.now, (raylet_addr(cmd.node), CheckpointSaved(cmd.actor_id, saves, 8)))

    def _kill_worker(self, cmd: KillWorker) -> None:
        self.killed.append(cmd)

    def _cancel_running(self, cmd: CancelRunning) -> None:
        queue = self.prefetched.get(cmd.node, [])
        if any(d.spec.task_id == cmd.task_id for d in queue):
            queue[:] = [d for d in queue if d.spec.task_id != cmd.task_id]
            stop = WorkerInterrupted(cmd.task_id, INTERRUPT_UNSTARTED)
        else:
            self.interrupted.add(cmd.task_id)
            stop = WorkerInterrupted(cmd.task_id, INTERRUPT_CANCELLED)
        self._push(self.now, (raylet_addr(cmd.node), stop))

    def _trace(self, cmd: Trace) -> None:
        pass

    def _persist(self, cmd: Persist) -> None:
        """A persistent GCS's row: kept in ``persisted`` ((table, key) -> value)."""
        if cmd.value is None:
            self.persisted.pop((cmd.table, cmd.key), None)
        else:
            self.persisted[(cmd.table, cmd.key)] = cmd.value

    def _object_freed(self, cmd: ObjectFreed) -> None:
        self.ended.append(cmd.oid)

    def _item_ready(self, cmd: ItemReady) -> None:
        self.items.append(cmd)

    def _stream_ended(self, cmd: StreamEnded) -> None:
        self.streams_ended[cmd.task_id] = cmd

    def _schedule_items(self, cmd: Dispatch) -> None:
        spec = cmd.spec
        n = len(spec.output_sizes)
        for i in range(spec.skip_items, n):
            at = self.now + spec.duration * (i + 1) / (n + 1)
            self._push(at, ("yield", (cmd, i, spec.attempt)))

    def _yield(self, item: tuple[Dispatch, int, int]) -> None:
        cmd, i, attempt = item
        spec = cmd.spec
        if cmd.node in self.dead or spec.task_id in self.interrupted or spec.attempt != attempt:
            return
        size = spec.output_sizes[i]
        if spec.function == "gen_fail" and i == len(spec.output_sizes) - 1:
            event = GeneratorYielded(spec.task_id, i, error_kind=ERR_APPLICATION, error="boom")
        else:
            event = GeneratorYielded(spec.task_id, i, size, f"item-{i}-of-{spec.name}")
        out: list[Any] = []
        self.components[raylet_addr(cmd.node)].handle(event, self.now, out)
        self._effect(out)

    def _restore(self, cmd: Restore) -> Restored:
        """Read an object back if its bytes fit, spilling what the raylet picks, as a real
        host does; else answer that there is no room (the memory is the store's ``used``,
        restores in flight included)."""
        raylet = self.raylets[cmd.node]
        store = raylet.store
        in_flight = sum(r.nbytes for r in self.restoring.get(cmd.node, ()))
        if store.used + in_flight + cmd.nbytes > store.capacity:
            cmds: list[Any] = []
            raylet.handle(MakeRoom(in_flight + cmd.nbytes), self.now, cmds)
            for spill in cmds:
                if type(spill) is Spill:
                    self.spilled.append(spill)
                    self.disk.add((spill.node, spill.oid))
                    raylet.handle(Spilled(spill.oid), self.now, cmds)
            self._effect([c for c in cmds if type(c) is not Spill])
            if store.used + in_flight + cmd.nbytes > store.capacity:
                self.refused.append(cmd)
                return Restored(cmd.oid, "no room", no_room=True)
        self.peak_used[cmd.node] = max(
            self.peak_used.get(cmd.node, 0), store.used + in_flight + cmd.nbytes
        )
        self.restored.append(cmd)
        self.restoring.setdefault(cmd.node, []).append(cmd)
        self.disk.discard((cmd.node, cmd.oid))
        return Restored(cmd.oid)

    def _finish(self, cmd: Dispatch) -> None:
        spec = cmd.spec
        if cmd.node in self.dead:
            return  # the node died with the task on it
        if cmd.node in self.frozen:
            self.held.append(("finish", cmd))
            return
        if spec.task_id in self.interrupted:
            return  # the body was interrupted; its raylet already heard
        kind = self.fail_hook(spec) if self.fail_hook else None
        if kind is None and spec.function == "fail":
            kind = ERR_APPLICATION
        if kind is not None:
            event = TaskFinished(spec.task_id, [], kind, f"{kind} in {spec.name}")
        elif spec.generator:
            event = TaskFinished(spec.task_id, [(8, None)])  # the completion: None
        else:
            sizes = spec.output_sizes or (8,) * spec.num_returns
            event = TaskFinished(spec.task_id, [(s, f"value-of-{spec.name}") for s in sizes])
        queue = self.prefetched.get(cmd.node)
        if queue:  # the worker goes on to a prefetched task at once
            nxt = queue.pop(0)
            event.started = nxt.spec.task_id
            self.dispatched.append(nxt)
            self._push(self.now + nxt.spec.duration, ("finish", nxt))
        out: list[Any] = []
        self.components[raylet_addr(cmd.node)].handle(event, self.now, out)
        self._effect(out)

    def run(self, until: float | None = None) -> None:
        """Process deliveries in time order until the heap is empty or ``until``."""
        if until is None:
            until = 1e9 if not self.timers else self.now + 60.0  # timers never run dry
        while self._heap and self._heap[0][0] <= until:
            at, _, item = heapq.heappop(self._heap)
            self.now = at
            if item[0] == "finish":
                self._finish(item[1])
                continue
            if item[0] == "yield":
                self._yield(item[1])
                continue
            dst, msg = item
            if self._node_of(dst) in self.dead:
                continue  # nothing is delivered to a dead node
            if self._node_of(dst) in self.frozen:
                self.held.append(item)
                continue
            if type(msg) is Restored and not msg.error:  # its bytes now count in `used`
                pending = self.restoring.get(self._node_of(dst), [])
                pending[:] = [r for r in pending if r.oid != msg.oid]
            out: list[Any] = []
            self.components[dst].handle(msg, self.now, out)
            self._effect(out)

    def _node_of(self, addr: int) -> int:
        if addr >= 1000:
            return addr - 1000
        if addr >= 100:
            return addr - 100
        return -1

    def _fence(self, cmd: FenceNode) -> None:
        """The GCS declared the node dead: cut it off (as dead) and report ``NodeDied``."""
        self.fences.append(cmd)
        if cmd.node not in self.dead:
            self.dead.add(cmd.node)
            self._push(self.now, (self.gcs.addr, NodeDied(cmd.node)))

    def freeze(self, node: int) -> None:
        """The node stops (SIGSTOP): its components hear nothing, its tasks do not end."""
        self.frozen.add(node)

    def thaw(self, node: int) -> None:
        """The frozen node goes on (SIGCONT): what waited for it is delivered now."""
        self.frozen.discard(node)
        held, self.held = self.held, []
        for item in held:
            self._push(self.now, item)

    def kill_node(self, node: int) -> None:
        """The node dies now: its raylet, owner, store and running tasks are gone."""
        self.dead.add(node)
        out: list[Any] = []
        self.gcs.handle(NodeDied(node), self.now, out)
        self._effect(out)

    # -- owner helpers ------------------------------------------------------------------

    def submit(self, node: int = 0, **fields: Any) -> tuple[int, ...]:
        """Submit a task from the owner on ``node``; returns its return object ids."""
        owner = self.owners[node]
        spec = TaskSpec(task_id=owner.new_task_id(), owner=owner.addr, owner_node=node, **fields)
        out: list[Any] = []
        returns = owner.submit(spec, self.now, out)
        self._effect(out)
        return returns

    def create_actor(
        self,
        node: int = 0,
        name: str = "",
        max_restarts: int = 0,
        get_if_exists: bool = False,
        **fields: Any,
    ) -> int:
        """Create an actor from the owner on ``node``; returns its id."""
        owner = self.owners[node]
        spec = TaskSpec(task_id=owner.new_task_id(), owner=owner.addr, owner_node=node, **fields)
        out: list[Any] = []
        actor_id = owner.create_actor(spec, name, max_restarts, get_if_exists, self.now, out)
        self._effect(out)
        return actor_id

    def call(self, actor_id: int, node: int = 0, **fields: Any) -> tuple[int, ...]:
        """Call a method of ``actor_id`` from the owner on ``node``."""
        owner = self.owners[node]
        if owner.actor_state(actor_id) is None:
            out: list[Any] = []
            owner.attach_actor(actor_id, out)
            self._effect(out)
        fields.setdefault("resources", {})
        return self.submit(node=node, kind=2, actor_id=actor_id, **fields)

    def inject(self, node: int, event: Any) -> None:
        """Deliver a host event to the raylet of ``node`` now."""
        out: list[Any] = []
        self.raylets[node].handle(event, self.now, out)
        self._effect(out)

    def release(self, oid: int, node: int = 0) -> None:
        """Drop the program's reference to ``oid`` at the owner on ``node``."""
        out: list[Any] = []
        self.owners[node].remove_ref(oid, self.now, out)
        self._effect(out)
