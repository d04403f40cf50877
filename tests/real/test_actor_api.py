"""`ActorApi` driven directly over a control plane, no node: queue run inline, submission recorded."""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Any

import pytest

from runtime.actor import ActorHandle
from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.messages import (
    ACTOR_ALIVE,
    ACTOR_DEAD,
    ActorStateChanged,
    KillActor,
    LookupActor,
    ObjectFreed,
    Send,
)
from runtime.core.task import ACTOR_METHOD, TaskSpec
from runtime.real.actors import ActorApi, ActorInfo
from runtime.real.addresses import HOST_ADDR, OWNER_ADDR


class World:
    """A control plane and an ActorApi whose queue runs when woken; name lookups answered."""

    def __init__(self) -> None:
        self.plane = build_control_plane(
            CoreConfig(), random.Random(0), [NodeCapacity({"CPU": 4.0}, 1 << 20)], 1
        )
        self.node = object()
        self.ops: deque = deque()
        self.out: list[Any] = []
        self.timers: list[tuple] = []
        self.submitted: list[TaskSpec] = []
        self.known: dict[str, ActorStateChanged] = {}
        lock = threading.Lock()

        class Objects:
            pass

        objects = Objects()
        objects.lock = lock  # type: ignore[attr-defined]
        self.api = ActorApi(
            node=self.node, ops=self.ops, wake=self.run_ops, check_open=lambda: None,
            ids_lock=threading.Lock(), plane=self.plane, objects=objects,
            components=self.plane.components(), out=self.out, timers=self.timers,
            timer_seq=iter(range(100)), encode_args=lambda name, a, kw: (a, kw, [], [], []),
            submit_spec=self.submit, submit_generator=self.submit, wait=None,
            put_serialized=None,
        )  # fmt: skip

    def submit(self, spec: TaskSpec, implicit: list[int]) -> str:
        self.submitted.append(spec)
        return "ref"

    def run_ops(self) -> None:
        while self.ops:
            op, item = self.ops.popleft()
            op(item, 1.0)
        for cmd in self.out:  # the GCS's answer to a name lookup, as the core would send it
            if isinstance(cmd, Send) and isinstance(cmd.msg, LookupActor):
                reply = self.known.get(cmd.msg.name, ActorStateChanged(0, ACTOR_DEAD))
                reply = ActorStateChanged(
                    reply.actor_id, reply.state, request_id=cmd.msg.request_id, spec=reply.spec
                )
                self.api.actor_state(reply, 1.0)
        self.out.clear()


@pytest.fixture
def world() -> World:
    return World()


def test_a_call_attaches_the_handle_once_and_submits_an_actor_method(world: World) -> None:
    handle = ActorHandle(77, "Counter", {"incr": 1})
    assert world.api.call_actor(handle, "incr", (1,), {}, 1) == "ref"
    (spec,) = world.submitted
    assert spec.kind == ACTOR_METHOD and spec.actor_id == 77 and spec.name == "Counter.incr"
    assert handle._attached is world.node and world.api.infos[77].class_name == "Counter"
    assert len(world.ops) == 1  # the attach, queued without a wakeup (the submit wakes)
    world.api.call_actor(handle, "incr", (), {}, 1)
    assert len(world.ops) == 1


def test_lookup_by_name(world: World) -> None:
    spec = TaskSpec(5 << 8, 0, 0, function=9, actor_options=(2, {}))
    world.known["svc"] = ActorStateChanged(5, ACTOR_ALIVE, spec=spec)
    world.api.class_meta[9] = ("Service", {"ping": 1})
    handle = world.api.get_actor("svc")
    assert (handle._actor_id, handle._class_name, handle._attached) == (5, "Service", world.node)
    assert world.api.lookups == {}
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nobody'"):
        world.api.get_actor("nobody")


def test_state_changes_update_the_info_and_answer_waiters(world: World) -> None:
    from runtime.real.futures import Future

    answered = Future(1)
    world.api.infos[3] = ActorInfo("A", {}, answered=answered, keep=("ref",))
    world.api.actor_state(ActorStateChanged(3, ACTOR_DEAD, error="gone"), 0.0)
    info = world.api.infos[3]
    assert info.state == ACTOR_DEAD and info.error == "gone" and info.keep == ()
    assert answered.wait(0) and info.answered is None


def test_a_freed_token_collects_its_actor_once_no_call_is_left(world: World) -> None:
    world.api.tokens[40] = 8
    world.plane.owners[0].attach_actor(8, world.out)  # pending: its calls may still come
    world.out.clear()
    world.api.object_freed(ObjectFreed(OWNER_ADDR, 40), 0.0)
    assert 40 not in world.api.tokens and not world.out
    (timer,) = world.timers
    assert timer[2:] == (HOST_ADDR, f"collect:8:{OWNER_ADDR}")
    world.plane.owners[0].actors.clear()  # nothing left of it
    world.api.collect_actor((8, OWNER_ADDR), 1.0)
    (cmd,) = world.out
    assert isinstance(cmd.msg, KillActor) and cmd.msg.actor_id == 8 and cmd.msg.no_restart


def test_kill_checks_its_argument(world: World) -> None:
    with pytest.raises(TypeError, match="expects an actor handle"):
        world.api.kill_actor("actor", True)  # type: ignore[arg-type]
    world.api.wake = lambda: [op(item, 0.0) for op, item in world.ops]  # run, keep `out`
    world.api.kill_actor(ActorHandle(4, "A", {}), False)
    (cmd,) = world.out
    assert isinstance(cmd.msg, KillActor) and (cmd.msg.actor_id, cmd.msg.no_restart) == (4, False)
