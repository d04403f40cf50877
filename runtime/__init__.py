"""twinray's public API: Ray's names (`import runtime as ray`) over the one shared control plane."""

from runtime import util  # noqa: E402  (lazy: its submodules load on first use)
from runtime.actor import ActorClass, ActorHandle, method
from runtime.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    timeline,
    wait,
)
from runtime.exceptions import (
    ActorDiedError,
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    RayError,
    RayTaskError,
    TaskCancelledError,
    TaskUnschedulableError,
    TwinrayError,
    UnserializableArgumentError,
    WorkerCrashedError,
)
from runtime.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from runtime.object_ref import ObjectRef
from runtime.remote_function import RemoteFunction

__all__ = [
    "timeline",
    "nodes",
    "get_runtime_context",
    "cluster_resources",
    "cancel",
    "available_resources",
    "ActorClass",
    "ActorHandle",
    "ActorDiedError",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectRef",
    "ObjectRefGenerator",
    "DynamicObjectRefGenerator",
    "ObjectStoreFullError",
    "RayError",
    "RayTaskError",
    "RemoteFunction",
    "TaskCancelledError",
    "TaskUnschedulableError",
    "TwinrayError",
    "UnserializableArgumentError",
    "WorkerCrashedError",
    "get",
    "get_actor",
    "init",
    "is_initialized",
    "kill",
    "method",
    "put",
    "remote",
    "shutdown",
    "util",
    "wait",
]
