"""The public API with Ray's names: init, shutdown, is_initialized, remote, get, put, wait."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from runtime.actor import ActorClass, ActorHandle, ActorOptions
from runtime.context import RuntimeContext, current_context
from runtime.exceptions import RayError
from runtime.generators import ObjectRefGenerator
from runtime.object_ref import ObjectRef
from runtime.remote_function import RemoteFunction, TaskOptions

__all__ = [
    "available_resources",
    "cancel",
    "cluster_resources",
    "get",
    "get_actor",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "wait",
]

_node: Any = None
_init_lock = threading.Lock()
_atexit_registered = False
_DEFAULT_STORE = 512 << 20


def init(
    num_cpus: float | None = None,
    object_store_memory: int | None = None,
    *,
    resources: dict[str, float] | None = None,
    num_gpus: float | None = None,
    scheduling_policy: str = "bottom_up",
    inline_threshold: int | None = None,
    ignore_reinit_error: bool = False,
    object_spilling: bool = True,
    spill_dir: str | None = None,
    **ignored: Any,
) -> dict[str, Any]:
    """Start the single-node runtime in this process: workers (from a zygote), arena, event loop.

    `num_cpus` defaults to the machine's CPU count (one worker process per CPU);
    `object_store_memory` (bytes) to 512 MiB. Ray options that do not apply here
    (`include_dashboard`, `log_to_driver`, ...) are accepted and ignored.

    When the store is full, objects spill to a nameless file in `spill_dir` (the system
    temp dir by default) and come back transparently; `object_spilling=False` makes a
    full store raise `ObjectStoreFullError` instead.
    """
    global _node, _atexit_registered
    from runtime.real.node import Node
    from runtime.real.serialization import INLINE_THRESHOLD

    with _init_lock:
        if _node is not None:
            if ignore_reinit_error:
                return _context()
            raise RuntimeError("init() was already called; call shutdown() first")
        res = dict(resources or {})
        if num_gpus:
            res["GPU"] = float(num_gpus)
        sys.setswitchinterval(5e-4)  # handoffs between user and loop threads wait for it
        _node = Node(
            num_cpus if num_cpus is not None else (os.cpu_count() or 1),
            object_store_memory or _DEFAULT_STORE,
            resources=res,
            scheduling_policy=scheduling_policy,
            inline_threshold=inline_threshold or INLINE_THRESHOLD,
            object_spilling=object_spilling,
            spill_dir=spill_dir,
        )
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return _context()


def _context() -> dict[str, Any]:
    node = _node
    return {
        "num_cpus": node.raylet.total.get("CPU", 0.0),
        "resources": dict(node.raylet.total),
        "object_store_memory": node.arena.capacity,
        "num_workers": node.pool_size,
    }


def shutdown() -> None:
    """Stop the runtime: workers exit and are reaped, shared memory is released."""
    global _node
    with _init_lock:
        node, _node = _node, None
    if node is not None:
        node.shutdown()


def is_initialized() -> bool:
    """True between `init()` and `shutdown()`."""
    return _node is not None


def _current_node() -> Any:
    """The running node, started with defaults if `init()` was not called (like Ray)."""
    node = _node
    if node is None:
        init()
        node = _node
    return node


def remote(*args: Any, **options: Any) -> Any:
    """Decorator: `@remote` or `@remote(num_cpus=..., ...)` on a function (task) or class (actor)."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("remote() takes a function or only keyword options")

    def decorate(fn: Callable[..., Any]) -> RemoteFunction:
        return _make_remote(fn, options)

    return decorate


def _make_remote(fn: Any, options: dict[str, Any]) -> Any:
    if isinstance(fn, type):
        return ActorClass(fn, ActorOptions().replace(**options))
    return RemoteFunction(fn, TaskOptions().replace(**options))


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named `name`; `ValueError` when there is none."""
    return _require_node().get_actor(name)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Terminate `actor` at once (its pending calls fail with `ActorDiedError`)."""
    _require_node().kill_actor(actor, no_restart)


def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """Return the value(s) of one ObjectRef or a list of them, waiting up to `timeout` s.

    Raises `GetTimeoutError` on timeout and the task's exception (a `RayTaskError` that is
    also an instance of the original class) when the task failed.
    """
    node = _require_node()
    if isinstance(object_refs, ObjectRef):
        return node.get([object_refs], timeout)[0]
    if isinstance(object_refs, ObjectRefGenerator):
        return object_refs  # as Ray does: the generator itself
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(
            f"get() expects an ObjectRef or a list of ObjectRefs, got {type(object_refs).__name__}"
        )
    return node.get(list(object_refs), timeout)


def put(value: Any) -> ObjectRef:
    """Store `value` in the object store and return an ObjectRef to it."""
    return _require_node().put(value)


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Return `(ready, not_ready)`: the first `num_returns` ready refs, in input order.

    An `ObjectRefGenerator` in the list is ready when `next()` on it would not wait.
    """
    if isinstance(object_refs, (ObjectRef, ObjectRefGenerator)) or not isinstance(
        object_refs, (list, tuple)
    ):
        raise TypeError("wait() expects a list of ObjectRefs")
    refs = list(object_refs)
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be between 0 and {len(refs)}, got {num_returns}")
    if any(isinstance(r, ObjectRefGenerator) for r in refs):
        return _require_node().wait_mixed(refs, num_returns, timeout)
    return _require_node().wait(refs, num_returns, timeout)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task producing `object_ref`; `get` on it then raises `TaskCancelledError`.

    A running task gets a KeyboardInterrupt (`force=True`: its worker is killed; not
    allowed for actor calls).
    """
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()  # stops the producer; its stream ends
    _require_node().cancel(object_ref, force)


def cluster_resources() -> dict[str, float]:
    """Total resources of the cluster (one node here)."""
    return dict(_require_node().runtime_info()["total"])


def available_resources() -> dict[str, float]:
    """Resources not in use right now (a snapshot)."""
    return {k: v for k, v in _require_node().runtime_info()["available"].items() if v > 0}


def nodes() -> list[dict[str, Any]]:
    """The node table, with Ray's keys."""
    info = _require_node().runtime_info()
    return [
        {
            "NodeID": info["node_id"],
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "Resources": dict(info["total"]),
            "ObjectStoreMemory": info["store"],
        }
    ]


def get_runtime_context() -> RuntimeContext:
    """Ids of the job, task, actor and node the caller runs in."""
    return current_context(_require_node())


def timeline(filename: str | None = None) -> list[dict[str, Any]]:
    """Task executions as Chrome trace / Perfetto `X` events; written as JSON to `filename`."""
    return _require_node().timeline(filename)


def _require_node() -> Any:
    node = _node
    if node is None:
        raise RayError("twinray is not initialized: call runtime.init() first")
    return node
