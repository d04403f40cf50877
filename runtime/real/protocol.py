"""Driver <-> worker wire messages: plain tuples tagged by a small int, all defined here.

Messages are tuples, not dataclasses, because plain pickle of a tuple round-trips in about
0.9 us against 6.6 us for a slots dataclass (measured here); the wire format is read in one
place: this module. Element 0 is the tag; the rest is listed per message below. Build
messages with the helper functions so call sites stay readable.

Values (task arguments and results) are encoded as

    (VALUE_INLINE, data: bytes)              serialization.dumps() output
    (VALUE_ARENA, offset: int, size: int)    a layout in the node arena

Driver -> worker
    (REGISTER_FUNCTION, fn_id, pickled_fn)                 cache a function by id
    (EXECUTE_TASK, task_id, fn_id, args, kwargs, n_returns, ticket, ctx)
                                                           run it; args: tuple of values,
                                                            kwargs: dict name -> value;
                                                            ticket: a prefetched task's claim
                                                            ticket, taken before it runs
                                                            (0: none; `runtime.real.claims`);
                                                            ctx: None, or (runtime_env,
                                                            gpu_ids) set up around the body
    (ALLOC_REPLY, offset)                                  offset >= 0, or -1 if the store is full
    (SHUTDOWN,)                                            exit the loop
    (REPLY, req_id, ok, value)                             the answer to a REQUEST (value is
                                                            the exception when not ok)
    (CREATE_ACTOR, task_id, fn_id, args, kwargs, max_concurrency, ctx)
                                                           build the actor (fn_id: its class);
                                                            answered by TASK_RESULT with ();
                                                            calls run up to max_concurrency
                                                            at once; ctx as for EXECUTE_TASK,
                                                            kept for the actor's lifetime
    (CALL_ACTOR, task_id, method, args, kwargs, n_returns) run a method of this worker's actor
    (EXECUTE_GENERATOR, task_id, kind, fn, args, kwargs, mode, skip, ticket)
                                                           run a generator task (kind TASK: fn
                                                            is a function id; ACTOR_METHOD: a
                                                            method name); mode: GEN_* of
                                                            runtime.core.task; skip: items not
                                                            to send again (a re-run)

Worker -> driver
    (TASK_RESULT, task_id, True, values, start, end)
                                                values: tuple of n_returns encoded values;
                                                start, end: time.monotonic() when the worker
                                                began and finished the body (CLOCK_MONOTONIC
                                                is system-wide: the driver's clock agrees)
    (TASK_RESULT, task_id, False, error, start, end)
                                                error: see `encode_error`
    (REQUEST, req_id, op, payload)              an API call from code in the worker (nested
                                                task, get, put, wait, actors); op names the
                                                handler in the driver; req_id 0: no reply
    (ALLOC_REQUEST, task_id, nbytes)            block until ALLOC_REPLY; the driver owns the
                                                allocator, the range belongs to task_id
    (GENERATOR_ITEM, task_id, index, True, value)   a generator task yielded item `index`
    (GENERATOR_ITEM, task_id, index, False, error)  ... or raised there (see `encode_error`);
                                                the task's TASK_RESULT follows its last item

Node process -> connected driver
    (LOG, stream, data)                         lines its workers (or those of another node)
                                                wrote: stream 1 (stdout) or 2 (stderr), data
                                                whole prefixed lines as bytes
                                                (`runtime.real.logs`)
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from runtime.exceptions import RayTaskError

__all__ = [
    "ALLOC_REPLY",
    "ALLOC_REQUEST",
    "CALL_ACTOR",
    "CREATE_ACTOR",
    "EXECUTE_GENERATOR",
    "EXECUTE_TASK",
    "GENERATOR_ITEM",
    "LOG",
    "REGISTER_FUNCTION",
    "REPLY",
    "REQUEST",
    "SHUTDOWN",
    "TASK_RESULT",
    "VALUE_ARENA",
    "VALUE_INLINE",
    "alloc_reply",
    "alloc_request",
    "call_actor",
    "create_actor",
    "decode_error",
    "encode_error",
    "execute_generator",
    "execute_task",
    "register_function",
    "reply",
    "request",
    "revoke",
    "revoked",
    "shutdown",
    "task_result",
]

# value encodings
VALUE_INLINE = 0
VALUE_ARENA = 1

# driver -> worker
REGISTER_FUNCTION = 1
EXECUTE_TASK = 2
ALLOC_REPLY = 3
SHUTDOWN = 4
CREATE_ACTOR = 5
CALL_ACTOR = 6
REPLY = 7
REVOKE = 8
EXECUTE_GENERATOR = 9

# worker -> driver
TASK_RESULT = 10
ALLOC_REQUEST = 11
REQUEST = 12
REVOKED = 13
GENERATOR_ITEM = 14

# node process -> connected driver
LOG = 40


def register_function(fn_id: int, pickled_fn: bytes) -> tuple:
    """Build a REGISTER_FUNCTION message."""
    return (REGISTER_FUNCTION, fn_id, pickled_fn)


def execute_task(
    task_id: Any,
    fn_id: int,
    args: tuple,
    kwargs: dict[str, tuple],
    n_returns: int = 1,
    ticket: int = 0,
    ctx: tuple | None = None,
) -> tuple:
    """Build an EXECUTE_TASK message (args/kwargs hold encoded values).

    `ticket`: a prefetched task's claim ticket; the worker takes it (`Claims.take`) before
    running the task and skips the task if the host took it back. `ctx`: None, or
    `(runtime_env, gpu_ids)` that the worker sets up for the body and undoes after it.
    """
    return (EXECUTE_TASK, task_id, fn_id, args, kwargs, n_returns, ticket, ctx)


def execute_generator(
    task_id: Any,
    kind: int,
    fn: Any,
    args: tuple,
    kwargs: dict[str, tuple],
    mode: int,
    skip: int = 0,
    ticket: int = 0,
) -> tuple:
    """Build an EXECUTE_GENERATOR message (a generator task or actor method call)."""
    return (EXECUTE_GENERATOR, task_id, kind, fn, args, kwargs, mode, skip, ticket)


def create_actor(
    task_id: Any,
    fn_id: int,
    args: tuple,
    kwargs: dict[str, tuple],
    max_concurrency: int = 1,
    ctx: tuple | None = None,
) -> tuple:
    """Build a CREATE_ACTOR message (args/kwargs hold encoded values).

    `max_concurrency`: how many calls the actor runs at once (an async actor, or a sync one
    above 1, runs them concurrently; see `runtime.real.concurrent_actor`). `ctx` as for
    EXECUTE_TASK, kept for the actor's lifetime."""
    return (CREATE_ACTOR, task_id, fn_id, args, kwargs, max_concurrency, ctx)


def call_actor(
    task_id: Any, method: str, args: tuple, kwargs: dict[str, tuple], n_returns: int = 1
) -> tuple:
    """Build a CALL_ACTOR message (args/kwargs hold encoded values)."""
    return (CALL_ACTOR, task_id, method, args, kwargs, n_returns)


def alloc_reply(offset: int) -> tuple:
    """Build an ALLOC_REPLY message (-1 means the store is full)."""
    return (ALLOC_REPLY, offset)


def shutdown() -> tuple:
    """Build a SHUTDOWN message."""
    return (SHUTDOWN,)


def task_result(task_id: Any, ok: bool, payload: tuple, start: float, end: float) -> tuple:
    """Build a TASK_RESULT message; `start`/`end`: the body's run, by `time.monotonic()`."""
    return (TASK_RESULT, task_id, ok, payload, start, end)


def request(req_id: int, op: str, payload: Any) -> tuple:
    """Build a REQUEST message (worker -> driver API call)."""
    return (REQUEST, req_id, op, payload)


def reply(req_id: int, ok: bool, value: Any) -> tuple:
    """Build a REPLY message (driver -> worker)."""
    return (REPLY, req_id, ok, value)


def revoke(task_ids: list[Any]) -> tuple:
    """Build a REVOKE message: drop these prefetched tasks if they have not started."""
    return (REVOKE, task_ids)


def revoked(task_ids: list[Any]) -> tuple:
    """Build a REVOKED message: the prefetched tasks the worker dropped unstarted."""
    return (REVOKED, task_ids)


def alloc_request(task_id: Any, nbytes: int) -> tuple:
    """Build an ALLOC_REQUEST message."""
    return (ALLOC_REQUEST, task_id, nbytes)


def encode_error(exc: BaseException, function_name: str, traceback_str: str) -> tuple:
    """Encode a task exception as `(function_name, type_name, message, traceback, pickled)`.

    `pickled` is the pickled exception, or None if it cannot be pickled (then the driver
    rebuilds the error from the type name and message).
    """
    try:
        pickled = cloudpickle.dumps(exc, protocol=5)
    except Exception:
        pickled = None
    return (function_name, type(exc).__name__, str(exc), traceback_str, pickled)


def decode_error(error: tuple) -> RayTaskError:
    """Turn an encoded error into the exception `get` raises (an instance of the cause's class
    when possible)."""
    function_name, type_name, message, traceback_str, pickled = error
    cause: BaseException | None = None
    if pickled is not None:
        try:
            cause = pickle.loads(pickled)
        except Exception:
            cause = None
    if isinstance(cause, RayTaskError):  # a nested task error: keep the innermost cause
        return cause.as_instanceof_cause()
    err = RayTaskError(function_name, traceback_str, cause, type_name)
    if cause is None:
        err.args = (f"{type_name}: {message}",)
    return err.as_instanceof_cause()
