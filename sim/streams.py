"""The streaming-generator workload: producers yield items, each item feeds a consumer at once.

Its window and draws are `sim.stream_program.StreamProgram`'s (written once for every
engine); this driver carries them out on the simulated cluster.
"""

from __future__ import annotations

import random
from typing import Any

from runtime.core.ids import ObjectId, TaskId, object_id, task_of
from runtime.core.messages import ItemReady, ObjectReady, StreamEnded
from runtime.core.owner import Owner
from runtime.core.task import GEN_STREAMING, TaskSpec
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.scenario import StreamWorkload
from sim.stream_program import StreamProgram
from sim.workloads import Completion, _DriverBase

__all__ = ["StreamDriver"]


class StreamDriver(_DriverBase):
    """Runs `producers` streaming generator tasks, `window` at a time, and one consumer per item.

    It reacts to ``ItemReady`` by submitting a consumer that takes the item as its
    argument (and dropping its own ref: the consumer keeps it alive), and to
    ``StreamEnded`` by dropping the stream and starting the next producer.
    ``consumers_before_end`` counts consumers that finished while their producer still ran.
    """

    def __init__(
        self,
        host: Host,
        owner: Owner,
        metrics: MetricsRecorder,
        completion: Completion,
        spec: StreamWorkload,
        rng: random.Random,
        producers: int,
    ) -> None:
        """A driver for `producers` of the workload `spec` (its share of the total)."""
        super().__init__(host, owner, metrics, completion, spec, rng)
        self.spec = spec
        self.program = StreamProgram(spec, rng, producers)
        self.running: set[TaskId] = set()
        """Producers whose task has not ended."""
        self.consumer_of: dict[ObjectId, TaskId] = {}
        """Each pending consumer's result -> its producer."""
        self.consumers_before_end = 0
        host.on_stream(owner.addr, self._on_stream)

    def start(self) -> None:
        """Start the first `window` producers."""
        for _ in range(self.program.first()):
            self.host.serve_call(self.owner.addr, self._submit_producer)

    def _submit_producer(self, now: float, out: list[Any]) -> None:
        producer = self.program.next_producer()
        assert producer is not None
        owner = self.owner
        spec = TaskSpec(
            task_id=owner.new_task_id(),
            owner=owner.addr,
            owner_node=owner.node,
            function="producer",
            args=producer.item_sizes,
            resources=self.resources,
            duration=producer.duration_s,
            output_sizes=(8,),
            shape=self.shape,
            generator=GEN_STREAMING,
        )
        self.running.add(spec.task_id)
        owner.submit(spec, now, out)

    def _on_stream(self, cmd: ItemReady | StreamEnded, at: float) -> None:
        if type(cmd) is ItemReady:
            self.host.serve_call(self.owner.addr, lambda now, out: self._consume(cmd, now, out), at)
        else:
            self.host.serve_call(self.owner.addr, lambda now, out: self._ended(cmd, now, out), at)

    def _consume(self, cmd: ItemReady, now: float, out: list[Any]) -> None:
        owner = self.owner
        spec = self._new_spec("consumer", (cmd.oid,))
        spec.duration = self.program.consumer_duration()
        (result,) = owner.submit(spec, now, out)
        self.consumer_of[result] = cmd.task_id
        owner.remove_ref(cmd.oid, now, out)  # the consumer holds it now

    def _ended(self, cmd: StreamEnded, now: float, out: list[Any]) -> None:
        owner = self.owner
        owner.drop_stream(cmd.task_id, cmd.count, now, out)
        owner.remove_ref(object_id(cmd.task_id, 1), now, out)
        missing = self.spec.items - cmd.count
        if missing > 0:  # a failed producer: its missing items never get consumers
            self.completion.total -= missing
            self.completion.done -= 1
            self.completion.task_ended(now)
        if self.program.remaining > 0:
            self._submit_producer(now, out)

    def _on_ready(self, cmd: ObjectReady, at: float) -> None:
        if cmd.error_kind is None:
            self.metrics.task_done(at - cmd.submitted_at, at)
        else:
            self.metrics.task_failed(at)
        tid = task_of(cmd.oid)
        if tid in self.running:
            self.running.discard(tid)  # its ref is dropped when its stream ends
        else:
            producer = self.consumer_of.pop(cmd.oid, None)
            if producer in self.running:
                self.consumers_before_end += 1
            oid = cmd.oid
            self.host.serve_call(
                self.owner.addr, lambda now, out: self.owner.remove_ref(oid, now, out), at
            )
        self.completion.task_ended(at)
