"""Worker process: the loop that runs tasks sent by the driver, and the fork that starts one.

A worker reads batches of messages, runs them in order and answers once per batch (one
write). Functions arrive once (REGISTER_FUNCTION) and are cached by id. Arguments are
encoded values (see `protocol`); arena values are read zero-copy. Large results go into
the arena: the worker asks the driver for a range (ALLOC_REQUEST, blocking on ALLOC_REPLY)
because the allocator lives in the driver only; messages that arrive while it waits are
kept for after the current one. The worker exits on SHUTDOWN, on EOF (driver gone) and,
through PR_SET_PDEATHSIG, when its parent (the zygote, which dies with the driver) dies.
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import signal
import socket
import struct
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterable
from functools import partial
from types import GeneratorType
from typing import Any

from runtime import runtime_env
from runtime.core.ids import object_id
from runtime.exceptions import ObjectStoreFullError
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.arena import Arena
from runtime.real.serialization import (
    INLINE_THRESHOLD,
    deserialize_from_arena,
    loads,
    loads_function,
    serialize,
    write_to_arena,
)
from runtime.real.transport import Connection
from runtime.real.worker_generators import GeneratorRunnerMixin

__all__ = [
    "fork_worker",
    "set_parent_death_signal",
    "worker_main",
]

_PR_SET_PDEATHSIG = 1
_TASK_TAGS = (p.EXECUTE_TASK, p.EXECUTE_GENERATOR)  # messages a REVOKE can take back
_FLUSH_AFTER_S = 1e-3  # answer right away after a task this long, not at the end of the batch


class _DriverGone(BaseException):
    """The driver closed the connection: leave the loop (not catchable as a task error)."""


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent thread exits (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class _Worker(GeneratorRunnerMixin):
    """State of one worker loop: function cache, inbox, replies waiting for the next write."""

    __slots__ = (
        "conn",
        "arena",
        "worker_id",
        "threshold",
        "functions",
        "inbox",
        "replies",
        "actor",
        "client",
        "task_id",
        "actor_id",
        "in_body",
        "concurrent",
    )

    def __init__(self, conn: Connection, arena: Arena, worker_id: int, threshold: int) -> None:
        self.conn = conn
        self.arena = arena
        self.worker_id = worker_id
        self.threshold = threshold
        self.functions: dict[int, Any] = {}
        self.inbox: deque[tuple] = deque()
        self.replies: list[tuple] = []
        self.actor: Any = None
        self.client: Any = None
        self.task_id: Any = None
        self.actor_id: Any = None
        self.in_body = False
        self.concurrent: Any = None
        """The `ConcurrentActor` running this worker's async or threaded actor (else None)."""

    def run(self) -> None:
        """Process messages until SHUTDOWN or EOF."""
        handlers = {
            p.REGISTER_FUNCTION: self._register,
            p.EXECUTE_TASK: self._execute,
            p.CREATE_ACTOR: self._create_actor,
            p.CALL_ACTOR: self._call_actor,
            p.SHUTDOWN: self._shutdown,
            p.REVOKE: self.revoke,
            p.EXECUTE_GENERATOR: self._execute_generator,
        }
        inbox, conn = self.inbox, self.conn
        try:
            while True:
                if not inbox:
                    self._flush()
                    inbox.extend(self._recv())
                msg = inbox.popleft()
                if handlers[msg[0]](msg) is False:
                    self._flush()
                    return
        except _DriverGone:
            return
        finally:
            conn.close()

    def _recv(self) -> list[tuple]:
        try:
            return self.conn.recv_many()
        except (EOFError, ConnectionError) as exc:
            raise _DriverGone from exc

    def _flush(self) -> None:
        client = self.client
        if client is not None and (
            client.releases
            or client.unpins
            or client.borrows
            or client.lent
            or client.loans
            or client.stream_drops
        ):
            queue_bookkeeping(client, self.replies)
        if self.replies:
            try:
                self.conn.send_many(self.replies)
            except (BrokenPipeError, ConnectionError) as exc:
                raise _DriverGone from exc
            self.replies.clear()
            _flush_stdio()

    def revoke(self, msg: tuple) -> None:
        """Drop the named prefetched tasks still in the inbox; say which were dropped."""
        wanted = set(msg[1])
        kept = [m for m in self.inbox if not (m[0] in _TASK_TAGS and m[1] in wanted)]
        dropped = [m[1] for m in self.inbox if m[0] in _TASK_TAGS and m[1] in wanted]
        self.inbox.clear()
        self.inbox.extend(kept)
        self.replies.append(p.revoked(dropped))

    def _register(self, msg: tuple) -> None:
        _, fn_id, pickled = msg
        self.functions[fn_id] = loads_function(pickled)

    def _shutdown(self, msg: tuple) -> bool:
        return False

    def _execute(self, msg: tuple) -> None:
        _, task_id, fn_id, args, kwargs, n_returns, ticket, ctx = msg
        if ticket and not self.arena.claims.take(self.worker_id, ticket):
            return  # the host took it back and gave it to an idle worker
        fn = self.functions.get(fn_id)
        name = getattr(fn, "__qualname__", f"function#{fn_id}")
        if fn is None:
            fn = _unregistered(fn_id)
        if ctx is None:
            self._run(task_id, fn, name, args, kwargs, n_returns, False)
            return
        try:
            undo = _enter_context(ctx)  # the task's runtime_env and GPU ids, undone after it
        except OSError as exc:
            self._run(task_id, _raiser(exc), name, args, kwargs, n_returns, False)
            return
        try:
            self._run(task_id, fn, name, args, kwargs, n_returns, False)
        finally:
            runtime_env.leave(undo)

    def _create_actor(self, msg: tuple) -> bool | None:
        _, task_id, fn_id, args, kwargs, max_concurrency, ctx = msg
        self.actor_id = task_id  # an actor's id is its creation task's id
        cls = self.functions.get(fn_id)
        name = getattr(cls, "__qualname__", f"class#{fn_id}") + ".__init__"
        if cls is None:
            cls = _unregistered(fn_id)
        if ctx is not None:
            try:
                _enter_context(ctx)  # for the actor's lifetime: its worker is its own
            except OSError as exc:
                cls = _raiser(exc)
        self._run(task_id, cls, name, args, kwargs, 0, True)
        if self.actor is None:
            return None
        from runtime.real.concurrent_actor import ConcurrentActor, is_async_class

        is_async = is_async_class(type(self.actor))
        if not is_async and max_concurrency <= 1:
            return None
        # several calls at once: the main thread only reads the socket from now on
        sys.setswitchinterval(CONCURRENT_SWITCH_INTERVAL)
        self.concurrent = ConcurrentActor(self, max_concurrency, is_async)
        self._flush()
        self.concurrent.serve(self.inbox)
        return False

    def _call_actor(self, msg: tuple) -> None:
        _, task_id, method, args, kwargs, n_returns = msg
        actor = self.actor
        name = f"{type(actor).__qualname__}.{method}"
        try:
            fn = getattr(actor, method)
        except AttributeError as exc:
            fn = _raiser(exc)
        self._run(task_id, fn, name, args, kwargs, n_returns, False)

    def _run(
        self,
        task_id: Any,
        fn: Any,
        name: str,
        args: tuple,
        kwargs: dict,
        n_returns: int,
        keep: bool,
    ) -> None:
        """Run one body; answer with its encoded returns (``keep``: the result is the actor)."""
        if self.replies:
            # answers of earlier bodies go out first: this one may be long (pipelined
            # actor calls and prefetched tasks arrive while others run)
            self._flush()
        start = time.monotonic()  # the span of the body, sent with its answer
        self.task_id = task_id
        a: list[Any] | None = None
        kw: dict[str, Any] | None = None
        try:
            decode = self._decode
            a = [decode(v) for v in args]
            kw = {k: decode(v) for k, v in kwargs.items()} if kwargs else {}
            try:
                self.in_body = True
                try:
                    result = fn(*a, **kw)
                finally:
                    self.in_body = False
            except (Exception, KeyboardInterrupt) as exc:
                tb = exc.__traceback__
                tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb
                text = "".join(traceback.format_exception(type(exc), exc, tb))
                error = p.encode_error(exc, name, text)
                self.replies.append(p.task_result(task_id, False, error, start, time.monotonic()))
                return
            if keep:
                self.actor = result
                result = None
            values = _split_returns(result, n_returns)
            payload = self._encode_returns(values, task_id)
        except Exception as exc:
            text = traceback.format_exc()
            error = p.encode_error(exc, name, text)
            self.replies.append(p.task_result(task_id, False, error, start, time.monotonic()))
            return
        finally:
            a = kw = None  # drop argument views into the arena before answering
        end = time.monotonic()
        self.replies.append(p.task_result(task_id, True, payload, start, end))
        if keep or end - start > _FLUSH_AFTER_S:
            self._flush()

    def _decode(self, value: tuple) -> Any:
        if value[0] == p.VALUE_INLINE:
            return loads(value[1])
        return deserialize_from_arena(self.arena, value[1], value[2])

    def _encode_returns(self, values: tuple, task_id: Any) -> tuple:
        """Encode return values; refs pickled inside one are held by that object."""
        client = self.client
        if client is None:
            return tuple(self._encode(v, task_id) for v in values)
        encoded = []
        for i, value in enumerate(values):
            mark = len(client.lent)
            encoded.append(self._encode(value, task_id))
            if len(client.lent) > mark:
                client.lend_into(mark, object_id(task_id, i + 1))
        return tuple(encoded)

    def _encode(self, value: Any, task_id: Any) -> tuple:
        obj = serialize(value, "return value")
        if obj.total_size < self.threshold:
            return (p.VALUE_INLINE, obj.to_bytes())
        offset = self._allocate(task_id, obj.total_size)
        write_to_arena(self.arena, offset, obj)
        return (p.VALUE_ARENA, offset, obj.total_size)

    def _allocate(self, task_id: Any, nbytes: int) -> int:
        """Ask the driver for an arena range; keep other messages for later."""
        if self.concurrent is not None:
            return self.concurrent.allocate(task_id, nbytes)
        self.replies.append(p.alloc_request(task_id, nbytes))
        self._flush()
        offset = None
        while offset is None:
            for msg in self._recv():
                if msg[0] == p.ALLOC_REPLY and offset is None:
                    offset = msg[1]
                else:
                    self.inbox.append(msg)
        if offset < 0:
            raise ObjectStoreFullError(f"object store full: no room for a {nbytes}-byte result")
        return offset


def _enter_context(ctx: tuple) -> Any:
    """Set up a body's `(runtime_env, gpu_ids)`; return what `runtime_env.leave` undoes."""
    env, gpu_ids = ctx
    return runtime_env.enter(env, gpu_ids)


def _unregistered(fn_id: int) -> Any:
    """A body that fails: the function id was never registered with this worker."""
    return _raiser(KeyError(f"function id {fn_id} was never registered with this worker"))


def _raiser(exc: BaseException) -> Any:
    """A body that raises ``exc``."""

    def body(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return body


def _split_returns(result: Any, n_returns: int) -> tuple:
    """Turn a function result into a tuple of `n_returns` values (Ray's num_returns)."""
    if n_returns == 1:
        if type(result) is GeneratorType:  # a generator function with num_returns=1
            result = _first(result)
        return (result,)
    if n_returns == 0:
        return ()
    values = tuple(result)  # a generator function's yields fill num_returns values too
    if len(values) != n_returns:
        raise ValueError(f"task declared num_returns={n_returns} but returned {len(values)} values")
    return values


def _first(gen: Any) -> Any:
    """The value of a generator task with ``num_returns=1``: its first yield, as in Ray."""
    for value in gen:
        return value
    raise ValueError("task declared num_returns=1 but its generator yielded nothing")


CONCURRENT_SWITCH_INTERVAL = 5e-4
"""`sys.setswitchinterval` of a worker whose actor runs several calls at once (the driver's
too). With Python's 5 ms, the socket reader and the threads running calls each waited up
to 5 ms for the GIL while one body computed: a quick call took 5.4 ms instead of 0.2 ms.
Plain workers run one thread and keep the default."""


CANCEL_SIGNAL = signal.SIGUSR2
"""Sent by the driver to cancel the running task: it raises KeyboardInterrupt, as in Ray."""


CANCEL_SLOTS = 4096
"""Cancel-target slots in the arena (`Arena.control`); worker `i` reads slot `i % CANCEL_SLOTS`."""
_SLOT = struct.Struct("<q")


def cancel_slot(worker_id: int) -> int:
    """Byte offset of a worker's cancel-target slot within the control block."""
    return (worker_id % CANCEL_SLOTS) * _SLOT.size


def write_cancel_target(arena: Arena, worker_id: int, task_id: int) -> None:
    """Name the task a cancel signal to `worker_id` is meant for (driver side)."""
    if arena.control >= 0:
        _SLOT.pack_into(
            arena.writable_view(arena.control, CANCEL_SLOTS * _SLOT.size),
            cancel_slot(worker_id),
            task_id,
        )


def _interrupt(worker: _Worker, signum: int, frame: Any) -> None:
    """Raise KeyboardInterrupt in the task body the signal is meant for (else ignore it).

    With pipelined calls and prefetched tasks the worker may already run the next body
    when a signal for the previous one lands: the driver names its target in the arena.
    """
    if worker.concurrent is not None:  # several bodies at once: cancel the named one
        if worker.arena.control >= 0:
            view = worker.arena.view(worker.arena.control, CANCEL_SLOTS * _SLOT.size)
            worker.concurrent.cancel(_SLOT.unpack_from(view, cancel_slot(worker.worker_id))[0])
        return
    if not worker.in_body:
        return
    arena = worker.arena
    if arena.control >= 0:
        view = arena.view(arena.control, CANCEL_SLOTS * _SLOT.size)
        if _SLOT.unpack_from(view, cancel_slot(worker.worker_id))[0] != worker.task_id:
            return
    raise KeyboardInterrupt("the task was cancelled")


class _PrefixedStream(io.TextIOBase):
    """A text stream that writes whole lines to a file descriptor, each with a prefix."""

    def __init__(self, fd: int, prefix: str) -> None:
        self._fd = fd
        self._prefix = prefix
        self._partial = ""

    def writable(self) -> bool:
        """Always True."""
        return True

    def write(self, text: str) -> int:
        """Buffer `text`; write out every completed line with the prefix (one write)."""
        data = self._partial + text
        head, sep, tail = data.rpartition("\n")
        self._partial = tail
        if sep:
            lines = head.split("\n")
            out = "".join(f"{self._prefix}{line}\n" for line in lines)
            _write_all(self._fd, out.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        """Write a pending partial line."""
        if self._partial:
            data, self._partial = self._partial, ""
            _write_all(self._fd, f"{self._prefix}{data}\n".encode("utf-8", "replace"))

    def fileno(self) -> int:
        """The underlying descriptor."""
        return self._fd


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return
        data = data[n:]


def _prefix_output(worker_id: int) -> None:
    """Prefix this worker's print and logging output with `(worker N, pid P) ` (in a node
    process of a cluster: `(worker N, pid P, node I, ip A) `).

    The worker inherits the driver's stdout/stderr descriptors, so its output reaches the
    driver's terminal directly; replacing `sys.stdout`/`sys.stderr` (and the streams of
    logging handlers that point at the old ones) adds the prefix, line by line.
    """
    import logging

    where = os.environ.get("TWINRAY_LOG_NODE")  # set by a node process (runtime.real.logs)
    prefix = f"(worker {worker_id}, pid {os.getpid()}{', ' + where if where else ''}) "
    old = {id(sys.stdout): None, id(sys.stderr): None}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    out = _PrefixedStream(1, prefix)
    err = _PrefixedStream(2, prefix)
    replaced = {id(sys.stdout): out, id(sys.stderr): err}
    sys.stdout, sys.stderr = out, err
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in old:
                handler.setStream(replaced[id(stream)])


def _silence_unless_logging_to_driver() -> None:
    """`init(log_to_driver=False)`: this worker's output goes nowhere (as in Ray)."""
    if os.environ.pop("TWINRAY_LOG_TO_DRIVER", None) != "0":
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def queue_bookkeeping(client: Any, replies: list[tuple]) -> None:
    """Put `client`'s batched reference bookkeeping (a `WorkerClient`'s stream drops,
    releases, unpins, loans, borrows) in front of `replies`, as no-reply requests."""
    # all go before the replies; borrows and loans before releases
    if client.stream_drops:
        drops, client.stream_drops = client.stream_drops, []
        replies.insert(0, p.request(0, rq.STREAM_DROP, drops))
    if client.releases:
        oids, client.releases = client.releases, []
        replies.insert(0, p.request(0, rq.RELEASE, oids))
    if client.unpins:
        offsets, client.unpins = client.unpins, []
        replies.insert(0, p.request(0, rq.UNPIN, offsets))
    if client.lent:
        client.lend_into(0, 0)  # pickled outside any value of ours: the driver holds them
    if client.loans:
        loans, client.loans = client.loans, []
        replies.insert(0, p.request(0, rq.LEND, loans))
    if client.borrows:
        borrows, client.borrows = client.borrows, []
        replies.insert(0, p.request(0, rq.BORROW, borrows))


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def worker_main(
    conn: Connection, arena: Arena, worker_id: int, inline_threshold: int = INLINE_THRESHOLD
) -> None:
    """Run the worker loop on `conn` until SHUTDOWN or EOF; results above the threshold go
    into `arena`."""
    set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    worker = _Worker(conn, arena, worker_id, inline_threshold)
    signal.signal(CANCEL_SIGNAL, partial(_interrupt, worker))
    _prefix_output(worker_id)
    _silence_unless_logging_to_driver()
    import runtime.api as api
    from runtime.real.worker_client import WorkerClient

    worker.client = api._node = WorkerClient(worker)
    worker.run()


def fork_worker(
    arena: Arena,
    worker_id: int,
    close_in_child: Iterable[Connection | socket.socket] = (),
    inline_threshold: int = INLINE_THRESHOLD,
) -> tuple[int, Connection]:
    """Fork a worker process; return `(pid, driver-side Connection)`.

    Called by the zygote (`runtime.real.zygote`), a process without threads: forking one
    with threads can deadlock the child. `close_in_child` lists the forking process's
    other sockets so that the child does not hold them open (EOF must reach workers).
    The worker dies with its parent (PR_SET_PDEATHSIG).
    """
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            signal.signal(CANCEL_SIGNAL, signal.SIG_IGN)  # until the worker's handler is set
            set_parent_death_signal()
            if os.getppid() != parent:
                os._exit(0)  # the parent died before the death signal was armed
            parent_sock.close()
            for other in close_in_child:
                other.close()
            gc.freeze()  # keep the inherited heap shared copy-on-write
            worker_main(Connection(child_sock), arena, worker_id, inline_threshold)
        except BaseException:
            code = 1
            traceback.print_exc()
        finally:
            _flush_stdio()
            os._exit(code)
    child_sock.close()
    return pid, Connection(parent_sock)
