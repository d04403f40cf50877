"""twinray's public API: Ray's names (`import runtime as ray`) over the one shared control plane."""

from runtime.api import get, init, is_initialized, put, remote, shutdown, wait
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
from runtime.object_ref import ObjectRef
from runtime.remote_function import RemoteFunction

__all__ = [
    "ActorDiedError",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectRef",
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
    "init",
    "is_initialized",
    "put",
    "remote",
    "shutdown",
    "wait",
]
