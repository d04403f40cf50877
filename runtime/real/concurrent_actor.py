"""Actors that run several calls at once in their worker: asyncio actors and threaded actors.

A worker whose actor is *async* (its class has an ``async def`` method) or was created with
``max_concurrency > 1`` leaves the one-body-at-a-time loop of `runtime.real.worker` once
its constructor has run. Its main thread becomes the socket's only reader
(`ConcurrentActor.serve`): method calls go to an asyncio event loop in its own thread
(async actors; sync methods run on that thread too, as in Ray) or to a pool of
``max_concurrency`` threads (threaded actors), and replies to the API calls that bodies
make (``get``, ``put``, ``.remote``, ...) go back to whichever thread or coroutine asked,
by request id. Writes to the socket are serialized by one lock. At most
``max_concurrency`` calls run at once; calls beyond that wait in arrival order (the raylet
dispatches the limit plus its pipeline depth, see `Raylet._run_next_call`).
"""

from __future__ import annotations

import _thread
import asyncio
import inspect
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from runtime.actor import is_async_class
from runtime.exceptions import GetTimeoutError, ObjectStoreFullError, RayError
from runtime.real import protocol as p
from runtime.real import requests as rq

__all__ = ["ConcurrentActor", "is_async_class"]

ASYNC_THREAD_NAME = "AsyncIO Thread: default"
"""The name of the thread running an async actor's event loop (Ray's name)."""


class _Slot:
    """One request waiting for its REPLY: a latch for a thread, or a callback."""

    __slots__ = ("lock", "reply", "callback")

    def __init__(self, callback: Callable[[tuple], None] | None = None) -> None:
        self.callback = callback
        self.reply: tuple | None = None
        self.lock: Any = None
        if callback is None:
            self.lock = _thread.allocate_lock()
            self.lock.acquire()

    def deliver(self, msg: tuple) -> None:
        """Hand the reply to the waiting thread or run the callback (reader thread)."""
        if self.callback is not None:
            self.callback(msg)
            return
        self.reply = msg
        self.lock.release()


class ConcurrentActor:
    """The concurrent execution of one worker's actor (see the module docstring)."""

    def __init__(self, worker: Any, limit: int, is_async: bool) -> None:
        self.worker = worker
        self.limit = limit
        self.is_async = is_async
        self.send_lock = threading.Lock()
        self.slots: dict[int, _Slot] = {}
        self.alloc_lock = threading.Lock()
        """Held by the one body waiting for an ALLOC_REPLY (the driver answers in order)."""
        self.alloc_slot: _Slot | None = None
        self.tasks: dict[Any, Any] = {}
        """Running calls by task id: the asyncio task (async actors) or the thread ident."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.calls: queue.SimpleQueue[tuple | None] | None = None
        """Calls waiting for one of a threaded actor's threads (None: stop)."""
        self.threads: list[threading.Thread] = []
        self.loop_thread: threading.Thread | None = None
        self._running = 0
        self._waiting: deque[tuple] = deque()
        self._out: list[tuple] = []
        self._flush_scheduled = False
        self.out_lock = threading.Lock()
        self._pending: list[tuple] = []
        """Answers of pool threads waiting for the thread that writes (`_send_threaded`)."""
        self._writing = False
        if is_async:
            self.loop = asyncio.new_event_loop()
            self.loop_thread = threading.Thread(
                target=self._run_loop, name=ASYNC_THREAD_NAME, daemon=True
            )
            self.loop_thread.start()
        else:
            self.calls = queue.SimpleQueue()
            for i in range(limit):  # started on demand would save little: they only block
                thread = threading.Thread(target=self._serve_calls, name=f"actor_{i}", daemon=True)
                self.threads.append(thread)
                thread.start()

    # -- the reader (main thread) ------------------------------------------------------

    def serve(self, inbox: deque[tuple]) -> None:
        """Handle `inbox`, then read messages until SHUTDOWN; raises the worker's
        `_DriverGone` on EOF."""
        w = self.worker
        try:
            msgs = list(inbox)
            inbox.clear()
            while self._dispatch_batch(msgs):
                msgs = w._recv()
        finally:
            self.close()

    def _dispatch_batch(self, msgs: list[tuple]) -> bool:
        """Route a batch of messages (its calls handed to the loop at once); False on SHUTDOWN."""
        calls: list[tuple] = []
        going = True
        for msg in msgs:
            if msg[0] == p.CALL_ACTOR:
                calls.append(msg)
            elif not self._dispatch(msg):
                going = False
                break
        if calls:
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self._admit_many, calls)  # one wakeup
            else:
                for msg in calls:
                    self.submit(msg)
        return going

    def _dispatch(self, msg: tuple) -> bool:
        """Route one message from the driver; False on SHUTDOWN."""
        tag = msg[0]
        if tag == p.REPLY:
            slot = self.slots.pop(msg[1], None)
            if slot is not None:
                slot.deliver(msg)
        elif tag == p.CALL_ACTOR:
            self.submit(msg)
        elif tag == p.ALLOC_REPLY:
            slot, self.alloc_slot = self.alloc_slot, None
            if slot is not None:
                slot.deliver(msg)
        elif tag == p.REGISTER_FUNCTION:
            self.worker._register(msg)
        elif tag == p.REVOKE:  # an actor has no prefetched tasks: none to give back
            with self.send_lock:  # (never the pickling lock: a body may hold it for an alloc)
                self.worker.conn.send_many([p.revoked([])])
        elif tag == p.EXECUTE_GENERATOR:  # generator methods stream from the main loop only
            error = NotImplementedError(
                f"generator method {msg[3]!r} of an async or threaded actor: streaming "
                "generators run on actors with max_concurrency=1 only"
            )
            text = f"NotImplementedError: {error}\n"
            with self.send_lock:
                now = time.monotonic()  # it never ran: an empty span
                self.worker.conn.send_many([_error_reply(msg[1], error, str(msg[3]), text, now)])
        elif tag == p.SHUTDOWN:
            return False
        return True

    def close(self) -> None:
        """Stop the event loop or thread pool (running bodies are abandoned: the process exits)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self.calls is not None:
            for _ in self.threads:
                self.calls.put(None)

    # -- sending -------------------------------------------------------------------------

    def send(self, msgs: list[tuple]) -> None:
        """Write `msgs` (and the client's pending releases, borrows, ...) in one write."""
        w = self.worker
        with w.client.pickling, self.send_lock:  # no body is between pickling and `lent`
            w.replies.extend(msgs)
            w._flush()

    def request(self, op: str, payload: Any, timeout: float | None = None) -> Any:
        """One API call from a body, on any thread: send it, block for its reply."""
        w = self.worker
        client = w.client
        slot = _Slot()
        with client.pickling, self.send_lock:
            req_id = next(client._req_ids)
            self.slots[req_id] = slot
            w.replies.append(p.request(req_id, op, payload))
            w._flush()
        if timeout is None:
            slot.lock.acquire()
        elif not slot.lock.acquire(True, max(timeout, 0.0)):
            with client.pickling, self.send_lock:
                gone = self.slots.pop(req_id, None)
                if gone is not None:
                    w.replies.append(p.request(0, rq.UNWAIT, req_id))
                    w._flush()
            if gone is not None:
                raise GetTimeoutError(f"timed out after {timeout} s")
            slot.lock.acquire()  # the reply raced the timeout: it is here
        return _reply_value(slot.reply)

    def request_async(self, op: str, payload: Any, callback: Callable[[tuple], None]) -> None:
        """Send an API call whose reply runs `callback(reply)` on the reader thread."""
        w = self.worker
        client = w.client
        with client.pickling, self.send_lock:
            req_id = next(client._req_ids)
            self.slots[req_id] = _Slot(callback)
            w.replies.append(p.request(req_id, op, payload))
            w._flush()

    def allocate(self, task_id: Any, nbytes: int) -> int:
        """Ask the driver for an arena range for a result (one request at a time)."""
        with self.alloc_lock:
            slot = _Slot()
            self.alloc_slot = slot
            self.send([p.alloc_request(task_id, nbytes)])
            slot.lock.acquire()
        assert slot.reply is not None
        offset = slot.reply[1]
        if offset < 0:
            raise ObjectStoreFullError(f"object store full: no room for a {nbytes}-byte result")
        return offset

    # -- running calls -------------------------------------------------------------------

    def submit(self, msg: tuple) -> None:
        """A CALL_ACTOR arrived: start it now or when a running call ends."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._admit, msg)
        else:
            assert self.calls is not None
            self.calls.put(msg)

    def _run_loop(self) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.close()
            except Exception:
                pass

    def _admit_many(self, msgs: list[tuple]) -> None:
        for msg in msgs:
            self._admit(msg)

    def _admit(self, msg: tuple) -> None:
        """Loop thread: run `msg` if under the limit, else queue it."""
        if self._running >= self.limit:
            self._waiting.append(msg)
            return
        self._running += 1
        loop = self.loop
        assert loop is not None
        task = loop.create_task(self._run_async(msg))
        self.tasks[msg[1]] = task

    async def _run_async(self, msg: tuple) -> None:
        task_id = msg[1]
        try:
            reply = await self._call_async(msg)
        finally:
            self.tasks.pop(task_id, None)
            self._running -= 1
            if self._waiting:
                self._admit(self._waiting.popleft())
        self._out.append(reply)
        if not self._flush_scheduled:  # answers of one loop iteration go in one write
            self._flush_scheduled = True
            loop = self.loop
            assert loop is not None
            loop.call_soon(self._flush_out)

    def _flush_out(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out:
            self.send(out)

    async def _call_async(self, msg: tuple) -> tuple:
        _, task_id, method, args, kwargs, n_returns = msg
        start = time.monotonic()  # the call's span, sent with its answer
        w = self.worker
        name = f"{type(w.actor).__qualname__}.{method}"
        try:
            fn = getattr(w.actor, method)
            a = [w._decode(v) for v in args]
            kw = {k: w._decode(v) for k, v in kwargs.items()} if kwargs else {}
        except Exception as exc:
            return _error_reply(task_id, exc, name, traceback.format_exc(), start)
        try:
            result = fn(*a, **kw)
            if inspect.isawaitable(result):
                result = await result
        except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
            return _error_reply(task_id, exc, name, _format_body_error(exc), start)
        finally:
            a = kw = None  # drop argument views into the arena before answering
        return self._result_reply(task_id, result, n_returns, name, start)

    def _serve_calls(self) -> None:
        """A threaded actor's thread: run calls until told to stop."""
        calls = self.calls
        assert calls is not None
        while True:
            msg = calls.get()
            if msg is None:
                return
            try:
                self._run_threaded(msg)
            except BaseException:  # the driver is gone (or the process is exiting)
                return

    def _run_threaded(self, msg: tuple) -> None:
        _, task_id, method, args, kwargs, n_returns = msg
        w = self.worker
        name = f"{type(w.actor).__qualname__}.{method}"
        start = time.monotonic()  # the call's span, sent with its answer
        self.tasks[task_id] = threading.get_ident()
        try:
            try:
                fn = getattr(w.actor, method)
                a = [w._decode(v) for v in args]
                kw = {k: w._decode(v) for k, v in kwargs.items()} if kwargs else {}
            except Exception as exc:
                reply = _error_reply(task_id, exc, name, traceback.format_exc(), start)
            else:
                try:
                    result = fn(*a, **kw)
                except (Exception, KeyboardInterrupt) as exc:
                    reply = _error_reply(task_id, exc, name, _format_body_error(exc), start)
                else:
                    a = kw = None
                    reply = self._result_reply(task_id, result, n_returns, name, start)
        finally:
            self.tasks.pop(task_id, None)
        self._send_threaded(reply)

    def _send_threaded(self, reply: tuple) -> None:
        """Queue a pool thread's answer; the first thread to find no writer writes every
        answer queued meanwhile (answers of concurrent calls share writes)."""
        with self.out_lock:
            self._pending.append(reply)
            if self._writing:
                return
            self._writing = True
        while True:
            with self.out_lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._writing = False
                    return
            self.send(batch)

    def _result_reply(
        self, task_id: Any, result: Any, n_returns: int, name: str, start: float
    ) -> tuple:
        """The TASK_RESULT of a call that began at `start` (`time.monotonic()`) and ends now."""
        from runtime.real.worker import _split_returns

        w = self.worker
        try:
            values = _split_returns(result, n_returns)
            with w.client.pickling:
                payload = w._encode_returns(values, task_id)
        except Exception as exc:
            return _error_reply(task_id, exc, name, traceback.format_exc(), start)
        return p.task_result(task_id, True, payload, start, time.monotonic())

    # -- cancellation --------------------------------------------------------------------

    def cancel(self, task_id: Any) -> None:
        """Cancel an async call, running or waiting for its turn (called by the signal
        handler on the main thread); threaded calls run on, as in Ray."""
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self._cancel_in_loop, task_id)

    def _cancel_in_loop(self, task_id: Any) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.cancel()
            return
        for msg in self._waiting:
            if msg[1] == task_id:
                self._waiting.remove(msg)
                error = asyncio.CancelledError("the call was cancelled before it started")
                name = f"{type(self.worker.actor).__qualname__}.{msg[2]}"
                # it never ran: an empty span at the moment it was dropped
                self._out.append(_error_reply(task_id, error, name, "", time.monotonic()))
                self._flush_out()
                return


def _format_body_error(exc: BaseException) -> str:
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _error_reply(task_id: Any, exc: BaseException, name: str, text: str, start: float) -> tuple:
    """The TASK_RESULT of a call that began at `start` (`time.monotonic()`) and failed now."""
    return p.task_result(task_id, False, p.encode_error(exc, name, text), start, time.monotonic())


def _reply_value(msg: tuple | None) -> Any:
    """The value of a REPLY, raising its error."""
    assert msg is not None
    _, _, ok, value = msg
    if not ok:
        raise value if isinstance(value, BaseException) else RayError(str(value))
    return value
