"""Ring allreduce over actors (the ``allreduce`` workload; the paper's Fig. 12)."""

from __future__ import annotations

import random
from typing import Any

from runtime.core.ids import ObjectId
from runtime.core.messages import ObjectReady
from runtime.core.owner import Owner
from sim.drivers import _ActorDriverBase
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.scenario import AllreduceWorkload
from sim.workloads import Completion


def ring_calls(actors: int, chunks: int) -> int:
    """Method calls of one ring allreduce: a first send and 2 x (n - 1) steps per piece."""
    return actors * chunks * (1 + 2 * (actors - 1))


class AllreduceDriver(_ActorDriverBase):
    """Creates the ring's actors, then runs ``rounds`` ring allreduces one after the other.

    Step 0: each actor emits its own chunk (in ``chunks`` pieces). Steps 1..n-1
    (reduce-scatter): actor i sums the piece its left neighbour produced at the previous
    step into its own and passes it on; steps n..2n-2 (allgather): it stores and passes on
    the reduced piece. Each call's argument is the left neighbour's previous output, so
    every step moves ``bytes / (n x chunks)`` over the network per actor and piece, and the
    actor runs its calls in submission order. ``round_times`` holds each round's time from
    its submission to its last call's result.
    """

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: AllreduceWorkload,
        rng: random.Random,
    ) -> None:
        """The driver of the whole ring (one driver runs it)."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self.n = spec.actors
        self.pieces = spec.chunks
        self.piece_bytes = max(1, spec.bytes // (spec.actors * spec.chunks))
        self.reduce_s = self.piece_bytes / (spec.reduce_gbps * 1e9) if spec.reduce_gbps else 0.0
        self.delay_s = spec.injected_delay_ms * 1e-3
        self.rounds = spec.rounds
        self.actor_resources = {"CPU": spec.actor_cpus} if spec.actor_cpus else {}
        self.actor_resources.update(spec.resources)
        self.actor_ids: list[int] = []
        self.round_started: list[float] = []
        self.round_times: list[float] = []
        self._pending: set[ObjectId] = set()

    def start(self) -> None:
        """Create the actors, then submit the first round."""
        self.host.serve_call(self.owner.addr, self._create_all)
        self.host.serve_call(self.owner.addr, self._submit_round)

    def _create_all(self, now: float, out: list[Any]) -> None:
        for i in range(self.n):
            self.actor_ids.append(self._create_actor(f"ring{i}", self.actor_resources, now, out))

    def _submit_round(self, now: float, out: list[Any]) -> None:
        self.round_started.append(now)
        n, pieces, size, owner = self.n, self.pieces, (self.piece_bytes,), self.owner
        previous: list[list[ObjectId]] = []
        for step in range(2 * n - 1):
            duration = self.delay_s + (self.reduce_s if 1 <= step <= n - 1 else 0.0)
            name = "send" if step == 0 else ("reduce" if step <= n - 1 else "gather")
            current = []
            for i in range(n):
                row = []
                for j in range(pieces):
                    args = (previous[(i - 1) % n][j],) if previous else ()
                    (oid,) = self._call(self.actor_ids[i], name, duration, size, args, now, out)
                    row.append(oid)
                    self._pending.add(oid)
                current.append(row)
            for row in previous:
                for oid in row:
                    owner.remove_ref(oid, now, out)  # the next step's calls hold them
            previous = current
        for row in previous:
            for oid in row:
                owner.remove_ref(oid, now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        pending = self._pending
        if cmd.oid not in pending:
            return
        pending.discard(cmd.oid)
        self._record(cmd, at)
        if not pending:
            self.round_times.append(at - self.round_started[-1])
            if len(self.round_times) < self.rounds:
                self.host.serve_call(self.owner.addr, self._submit_round, at)
