"""The public API with Ray's names: init, shutdown, is_initialized, remote, get, put, wait."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from runtime._session import NodeLike
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
    "explain",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "memory_summary",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "wait",
]

_node: Any = None
"""This process's node (`NodeLike`): the driver's `Node` after `init`, or the worker's
`WorkerClient` inside a worker process; None outside a session."""
_init_lock = threading.Lock()
_atexit_registered = False
_DEFAULT_STORE = 512 << 20
LOG_TO_DRIVER_ENV = "TWINRAY_LOG_TO_DRIVER"
"""Set to "0" while the workers of an `init(log_to_driver=False)` start: they stay quiet."""


def init(address: str | None = None, **options: Any) -> dict[str, Any]:
    """Start the single-node runtime in this process: workers (from a zygote), arena, event loop.

    Keywords are Ray's (see `runtime.init_options`): `num_cpus` (default: the machine's
    CPU count, one worker process per CPU), `num_gpus` (logical GPU instances 0..n-1),
    `resources`, `object_store_memory` (bytes, default 512 MiB), `_memory` (the node's
    `memory` resource in bytes, default the machine's available memory), `runtime_env`
    (the job's, inherited by every task and actor), `namespace`, `ignore_reinit_error`,
    `log_to_driver`, `configure_logging`/`logging_level`/`logging_format` (twinray's
    `runtime` logger), `object_spilling_directory`/`_temp_dir` (where spilled objects go);
    and twinray's `scheduling_policy`, `inline_threshold`, `object_spilling`, `spill_dir`.
    Ray keywords with no effect on one node are accepted only with values that mean
    nothing here either (`include_dashboard=False`, ...); other values raise
    `OptionNotSupportedError`; unknown keywords raise `InitOptionError`.

    `address="auto"` or ``"HOST:PORT"`` (or ``TWINRAY_ADDRESS`` set, with no address or
    "auto", as Ray reads ``RAY_ADDRESS``) connects this process as a driver to a cluster
    started with `twinray start --head` instead of starting a node; the token is found by
    itself on the head's machine (else ``TWINRAY_AUTH_TOKEN`` / ``TWINRAY_AUTH_TOKEN_FILE``).
    Keywords that describe a node (`num_cpus`, `resources`, ...) are then refused, as in
    Ray. `MultiNodeNotAvailableError` (a `ConnectionError`) when no cluster answers there.

    When the store is full, objects spill to a nameless file in the spill directory (the
    system temp dir by default) and come back transparently; `object_spilling=False`
    makes a full store raise `ObjectStoreFullError` instead.
    """
    global _node, _atexit_registered, _job
    from runtime.init_options import apply_logging, available_memory, parse_init

    config = parse_init(address, options)
    with _init_lock:
        if _node is not None:
            if config.ignore_reinit_error:
                return _context()
            raise RuntimeError("init() was already called; call shutdown() first")
        apply_logging(config)
        if config.address is not None:
            return _connect(config)
        from runtime.real.node import Node
        from runtime.real.serialization import INLINE_THRESHOLD

        num_cpus = config.num_cpus if config.num_cpus is not None else (os.cpu_count() or 1)
        store = config.object_store_memory or _DEFAULT_STORE
        res = dict(config.resources)
        if config.num_gpus:
            res["GPU"] = float(config.num_gpus)
        res["memory"] = float(config.memory if config.memory is not None else available_memory())
        res["object_store_memory"] = float(store)
        sys.setswitchinterval(5e-4)  # handoffs between user and loop threads wait for it
        quiet = not config.log_to_driver
        if quiet:  # workers read it when they start (and so do their replacements)
            os.environ[LOG_TO_DRIVER_ENV] = "0"
        try:
            _node = Node(
                num_cpus,
                store,
                resources=res,
                scheduling_policy=config.scheduling_policy,
                inline_threshold=config.inline_threshold or INLINE_THRESHOLD,
                object_spilling=config.object_spilling,
                spill_dir=config.spill_dir,
            )
        finally:
            if quiet:
                os.environ.pop(LOG_TO_DRIVER_ENV, None)
        _job = _Job(config.namespace, config.runtime_env)
        _node.job_namespace = config.namespace
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return _context()


def _connect(config: Any) -> dict[str, Any]:
    """`init(address=...)`: connect to a running cluster as a driver (under `_init_lock`)."""
    global _node, _atexit_registered, _job
    from runtime.real.remote_driver import connect_driver

    sys.setswitchinterval(5e-4)  # replies are handed from the reader thread to the caller
    node = connect_driver(config.address, log_to_driver=config.log_to_driver)
    _node = node
    _job = _Job(config.namespace, config.runtime_env)
    node.job_namespace = config.namespace
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True
    return node.context()


@dataclass(slots=True)
class _Job:
    """What `init` set for the whole job: its namespace and its runtime_env."""

    namespace: str | None = None
    runtime_env: dict[str, Any] | None = None


_job = _Job()


def job_runtime_env() -> dict[str, Any] | None:
    """The runtime_env given to `init` (inherited by the driver's tasks and actors)."""
    return _job.runtime_env


def _context() -> dict[str, Any]:
    node = _node
    from runtime.real.remote_driver import RemoteDriver

    if isinstance(node, RemoteDriver):  # a driver connected to a cluster
        return node.context()
    return {
        "num_cpus": node.raylet.total_resources().get("CPU", 0.0),
        "resources": node.raylet.total_resources(),
        "object_store_memory": node.arena.capacity,
        "num_workers": node.pool.size,
    }


_shutdown_hooks: list[Any] = []
"""Callables run (in order, once each) at the start of `shutdown` while the node is still up:
libraries on the runtime (Serve) stop their threads and actors there."""


def _add_shutdown_hook(hook: Any) -> None:
    """Run `hook()` at the next `shutdown`, before the node stops (once; it is then dropped)."""
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)


def shutdown() -> None:
    """Stop the runtime: workers exit and are reaped, shared memory is released."""
    global _node, _job
    while _shutdown_hooks:
        _shutdown_hooks.pop(0)()
    with _init_lock:
        node, _node = _node, None
        _job = _Job()
    if node is not None:
        node.shutdown()


def is_initialized() -> bool:
    """True between `init()` and `shutdown()`."""
    return _node is not None


def _current_node() -> NodeLike:
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
        return ActorClass(fn, ActorOptions.from_decorator(options))
    return RemoteFunction(fn, TaskOptions.from_decorator(options))


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named `name`; `ValueError` when there is none.

    Every named actor lives in the job's namespace (`init(namespace=)`, anonymous by
    default): asking for another `namespace` finds nothing, as in Ray.
    """
    node = _require_node()
    try:
        return node.get_actor(actor_key(node, name, namespace))
    except ValueError:
        where = f" in namespace '{namespace}'" if namespace is not None else ""
        raise ValueError(f"Failed to look up actor with name '{name}'{where}") from None


def _namespace(node: NodeLike) -> str | None:
    """The job's namespace, asked of the driver when called in a worker."""
    if not node.in_worker:
        return _job.namespace
    return node.runtime_info().get("namespace")


def actor_key(node: NodeLike, name: str, namespace: str | None) -> str:
    """The name an actor is registered under: `name` in the job's namespace, else
    `namespace` and `name` joined by a NUL (so namespaces never collide)."""
    if namespace is None or namespace == _namespace(node):
        return name
    return f"{namespace}\x00{name}"


def get_gpu_ids() -> list[int]:
    """The GPU ids assigned to the calling task or actor ([] in the driver), as in Ray.

    They are logical instance ids picked by the raylet (0..num_gpus-1); a task or actor
    that asked for GPUs also sees them in `CUDA_VISIBLE_DEVICES`.
    """
    from runtime.runtime_env import current_gpu_ids

    return current_gpu_ids()


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
    table = info.get("nodes")
    if table and len(table) > 1:  # the GCS's node table: every node of a cluster
        return [
            {
                "NodeID": f"{node:056x}",
                "Alive": alive,
                "NodeManagerAddress": "127.0.0.1",
                "Resources": dict(resources),
                "ObjectStoreMemory": store,
            }
            for node, alive, resources, store in table
        ]
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


def explain(target: Any) -> Any:
    """Why `target` (an ObjectRef, actor handle or placement group) is pending or ran where it did.

    Returns a `runtime.core.explain.Explanation`: `str(e)` is a readable sentence, and its
    fields (`state`, `cause`, `node`, `reason`, `waiting_for`, `missing`, ...) the same
    facts as data. Read from the control plane's own records: the owner (waiting for
    arguments), the raylet (fetching inputs, queued for resources, an actor's queue), the
    global scheduler (spilled) and the GCS tables (where a finished task ran, and why).
    """
    return _require_node().explain(target)


def memory_summary(stats_only: bool = False) -> str:
    """A `ray memory`-like report of this node's memory: store, objects by owner, worker heaps."""
    from runtime.real.memory import memory_summary as summary

    return summary(_require_node(), stats_only=stats_only)


def _require_node() -> NodeLike:
    """The running node; `RayError` if `init()` was not called."""
    node = _node
    if node is None:
        raise RayError("twinray is not initialized: call runtime.init() first")
    return node
