"""Exception types raised by the public API, with Ray's names so `except ray.X` ports over."""

from __future__ import annotations

__all__ = [
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "AuthenticationError",
    "GetTimeoutError",
    "InitOptionError",
    "InvalidOptionError",
    "MultiNodeNotAvailableError",
    "OptionNotSupportedError",
    "RuntimeEnvNotSupportedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "OwnerDiedError",
    "ObjectStoreFullError",
    "ObjectTransferError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "TaskCancelledError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "TwinrayError",
    "UnserializableArgumentError",
    "WorkerCrashedError",
]


class RayError(Exception):
    """Base class of every error the runtime raises on its own behalf."""


TwinrayError = RayError


class RayTaskError(RayError):
    """Raised by `get` when the task (or one it depends on) raised an exception remotely.

    Carries the remote formatted traceback, the original exception type name and, when it
    could be unpickled, the original exception as `cause`. `str()` shows the remote
    traceback. `as_instanceof_cause()` returns an instance that is also an instance of the
    original exception class, so `except ValueError:` catches a remote `ValueError`.
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None = None,
        cause_type_name: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        if cause_type_name is None:
            cause_type_name = type(cause).__name__ if cause is not None else "Exception"
        self.cause_type_name = cause_type_name
        super().__init__(function_name, traceback_str, cause, cause_type_name)

    def __str__(self) -> str:
        header = f"{self.cause_type_name} raised in task {self.function_name}()"
        return f"{header}\n{self.traceback_str.rstrip()}"

    def __reduce__(self):
        return (
            RayTaskError,
            (self.function_name, self.traceback_str, self.cause, self.cause_type_name),
        )

    def as_instanceof_cause(self) -> RayTaskError:
        """Return an error that is both a `RayTaskError` and an instance of the cause's class.

        Falls back to `self` when there is no cause or the classes cannot be combined
        (for example a built-in exception with an incompatible instance layout).
        """
        cause = self.cause
        if cause is None:
            return self
        cause_cls = type(cause)
        if issubclass(RayTaskError, cause_cls) or isinstance(cause, RayTaskError):
            return self
        try:
            combined = _combined_class(cause_cls)
            err = combined.__new__(combined, *cause.args)
        except TypeError:
            return self
        try:  # let the cause's class fill its own fields (errno, ...) from the same args
            cause_cls.__init__(err, *cause.args)
        except Exception:
            err.args = cause.args
        err.function_name = self.function_name
        err.traceback_str = self.traceback_str
        err.cause = cause
        err.cause_type_name = self.cause_type_name
        return err


_COMBINED: dict[type, type] = {}


def _combined_class(cause_cls: type) -> type:
    """Return (and cache) a class deriving from `RayTaskError` and `cause_cls`."""
    cls = _COMBINED.get(cause_cls)
    if cls is None:
        name = f"RayTaskError({cause_cls.__name__})"
        cls = type(
            name,
            (RayTaskError, cause_cls),
            {
                "__init__": RayTaskError.__init__,
                "__str__": RayTaskError.__str__,
                "__reduce__": RayTaskError.__reduce__,
                "__getattr__": _getattr_from_cause,
                "__module__": __name__,
                "__qualname__": name,
            },
        )
        _COMBINED[cause_cls] = cls
    return cls


def _getattr_from_cause(self: RayTaskError, name: str):
    """Forward attribute lookups that the combined class lacks to the original exception."""
    if name == "cause":
        raise AttributeError(name)
    return getattr(self.cause, name)


class GetTimeoutError(RayError, TimeoutError):
    """Raised by `get`/`wait` callers when the objects are not ready within `timeout`."""


class ObjectStoreFullError(RayError):
    """Raised when the node's shared-memory arena has no free range big enough for an object."""


class ObjectLostError(RayError):
    """Raised by `get` when an object's value was lost (node/worker died) and cannot be rebuilt."""


class ObjectReconstructionFailedError(ObjectLostError):
    """Raised by `get` when every copy of an object was lost and its owner cannot recompute
    it: no lineage (``put``), or its task's retries are spent (``max_retries=0`` included),
    as Ray's error of that name (a subclass of `ObjectLostError`)."""


class OwnerDiedError(ObjectLostError):
    """Raised by `get` when the object's owner died, taking what it knew of the object with
    it (as Ray's; a connected driver's owner lives on the head: a head restart ends it)."""


class ActorDiedError(RayError):
    """Raised by `get` on a result of an actor method when the actor process died.

    When the actor died because its constructor raised, `cause` is that error (a
    `RayTaskError` carrying the remote traceback, also set as ``__cause__``) and
    `actor_init_failed` is True, as in Ray.
    """

    BASE_ERROR_MSG = "The actor died unexpectedly before finishing this task."

    def __init__(self, message: str = BASE_ERROR_MSG, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.actor_init_failed = cause is not None
        self.__cause__ = cause

    def __reduce__(self):
        return (type(self), (str(self), self.cause))


class ActorAlreadyExistsError(ValueError, RayError):
    """Raised by `.remote()` when a named actor of that name already exists (as in Ray,
    also a `ValueError`)."""


class WorkerCrashedError(RayError):
    """Raised by `get` when the worker running the task died (crash, kill) and retries ran out."""


class TaskUnschedulableError(RayError):
    """Raised when a task asks for resources no node in the cluster can ever provide."""


class RaySystemError(RayError):
    """Raised when the control plane refuses a request (e.g. a placement group name in use)."""


class TaskPlacementGroupRemoved(RayError):
    """Raised by `get` on a task (or `pg.ready()`) whose placement group was removed."""


class TaskCancelledError(RayError):
    """Raised by `get` on the result of a task that was cancelled before it finished."""


class UnserializableArgumentError(RayError, TypeError):
    """Raised at `.remote()`/`put` time when a value cannot be pickled; names the argument."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        self.argument = argument
        super().__init__(message)


class InvalidOptionError(RayError, TypeError, ValueError):
    """A keyword of `remote`, `.options()` or `method` is unknown, or its value is bad.

    Ray raises `ValueError` for unknown option names and bad values and `TypeError` for
    values of the wrong type: this error is both, so either `except` clause catches it.
    """


class InitOptionError(InvalidOptionError, RuntimeError):
    """An unknown keyword (or a bad value) passed to `init`; also a `RuntimeError`, as in Ray."""


class OptionNotSupportedError(RayError, NotImplementedError):
    """A Ray option twinray knows but does not provide (yet): raised where it is passed.

    The message names the option, the value given and, where one is planned, which part of
    twinray will provide it.
    """


class RuntimeEnvNotSupportedError(OptionNotSupportedError):
    """A `runtime_env` field twinray cannot honour on this node (`pip`, `conda`, `container`,
    `uv`, `image_uri`): raised by the call that passes it, before anything runs."""


class MultiNodeNotAvailableError(RayError, ConnectionError):
    """`init(address=...)` cannot join a cluster: none answers at that address (or, for
    "auto", none runs on this machine), the address is malformed, or it is a `ray://`
    client address (twinray has no client mode). A `ConnectionError`, as Ray's failed
    connect is."""


class AuthenticationError(RayError, ConnectionError):
    """A network peer failed the cluster's token handshake (wrong or missing token, malformed,
    oversized or late handshake input), or no token could be found to connect with.

    Raised by `runtime.net` before anything the peer sent is deserialized; the socket is
    closed. A `ConnectionError`, so code that retries connections sees it as one. `lost` is
    True when the connection dropped (closed, reset) before either side gave a verdict: the
    peer may have died rather than refused, and dialling again may succeed.
    """

    def __init__(self, message: str, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost

    def __reduce__(self):
        return (type(self), (str(self), self.lost))


class ObjectTransferError(RayError, ConnectionError):
    """Pulling an object's bytes from another node failed: the peer died, stalled past the
    idle timeout, or (`missing` True) does not hold the object. Whatever had been written
    of the destination was released."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing

    def __reduce__(self):
        return (type(self), (str(self), self.missing))
