"""The worker side of generator tasks: run the body, send each item to the driver as it is yielded."""

from __future__ import annotations

import time
import traceback
from typing import Any

from runtime.core.ids import generator_item_id
from runtime.core.task import ACTOR_METHOD, GEN_DYNAMIC
from runtime.generators import DynamicItems
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.serialization import dumps

__all__ = ["GeneratorRunnerMixin", "WorkerStreamMixin"]

_NONE = dumps(None, "a generator's completion")


class GeneratorRunnerMixin:
    """Methods of the worker loop (`runtime.real.worker._Worker`) for EXECUTE_GENERATOR."""

    __slots__ = ()

    def _execute_generator(self: Any, msg: tuple) -> None:
        _, task_id, kind, fn_ref, args, kwargs, mode, skip, ticket = msg
        if ticket and not self.arena.claims.take(self.worker_id, ticket):
            return  # the host took it back and gave it to an idle worker
        if kind == ACTOR_METHOD:
            actor = self.actor
            name = f"{type(actor).__qualname__}.{fn_ref}"
            fn = getattr(actor, fn_ref, None)
            if fn is None:
                fn = _raiser(AttributeError(f"actor {type(actor).__qualname__} has no {fn_ref}"))
        else:
            fn = self.functions.get(fn_ref)
            name = getattr(fn, "__qualname__", f"function#{fn_ref}")
            if fn is None:
                fn = _raiser(KeyError(f"function id {fn_ref} was never registered"))
        self._run_generator(task_id, fn, name, args, kwargs, mode, skip)

    def _run_generator(
        self: Any, task_id: int, fn: Any, name: str, args: tuple, kwargs: dict, mode: int, skip: int
    ) -> None:
        """Run a generator body; each item goes out at once (GENERATOR_ITEM), then the end.

        Items below ``skip`` were delivered by an earlier run: they are computed again (the
        body must get back to where it was) but not sent. An exception from the body is
        sent as the item where it was raised, and the task then ends normally, as in Ray;
        a cancellation (KeyboardInterrupt) fails the task itself.
        """
        if self.replies:
            self._flush()
        start = time.monotonic()  # the span of the body, sent with its end
        self.task_id = task_id
        index = 0
        try:
            decode = self._decode
            a = [decode(v) for v in args]
            kw = {k: decode(v) for k, v in kwargs.items()} if kwargs else {}
            self.in_body = True
            try:
                it = fn(*a, **kw)
            finally:
                self.in_body = False
            a = kw = None  # type: ignore[assignment]
            if not hasattr(it, "__next__"):
                raise TypeError(
                    f"{name} was called as a generator task but returned "
                    f"{type(it).__name__}, not a generator"
                )
            while True:
                self.in_body = True
                try:
                    value = next(it)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    self._send_item_error(task_id, index, exc, name)
                    index += 1  # the error is an item (a dynamic generator counts it)
                    break
                finally:
                    self.in_body = False
                if index >= skip:
                    try:
                        enc = self._encode_item(value, task_id, index)
                    except Exception as exc:
                        self._send_item_error(task_id, index, exc, name)
                        index += 1
                        break
                    value = None
                    self.replies.append((p.GENERATOR_ITEM, task_id, index, True, enc))
                    self._flush()
                index += 1
        except (Exception, KeyboardInterrupt) as exc:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            error = p.encode_error(exc, name, text)
            self.replies.append(p.task_result(task_id, False, error, start, time.monotonic()))
            self._flush()
            return
        if mode == GEN_DYNAMIC:
            done = (p.VALUE_INLINE, dumps(DynamicItems(task_id, index), "dynamic items"))
        else:
            done = (p.VALUE_INLINE, _NONE)
        end = time.monotonic()
        self.replies.append(p.task_result(task_id, True, (done,), start, end))
        if end - start > 1e-3:
            self._flush()

    def _send_item_error(
        self: Any, task_id: int, index: int, exc: BaseException, name: str
    ) -> None:
        tb = exc.__traceback__
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        self.replies.append(
            (p.GENERATOR_ITEM, task_id, index, False, p.encode_error(exc, name, text))
        )
        self._flush()

    def _encode_item(self: Any, value: Any, task_id: int, index: int) -> tuple:
        """Encode one item; refs pickled inside it are held by the item's object."""
        client = self.client
        if client is None:
            return self._encode(value, task_id)
        mark = len(client.lent)
        enc = self._encode(value, task_id)
        if len(client.lent) > mark:
            client.lend_into(mark, generator_item_id(task_id, index))
        return enc


def _raiser(exc: BaseException) -> Any:
    def body(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return body


class WorkerStreamMixin:
    """Generators consumed by code running in a worker (`WorkerClient`), via the driver."""

    stream_drops: list[tuple[int, int]]

    def _generator_of(self: Any, oid: int, mode: int) -> Any:
        """What a generator task or call returns here, given its return 1 `oid`: an
        `ObjectRefGenerator` (streaming) or the ref of return 1 (dynamic)."""
        from runtime.core.task import GEN_STREAMING
        from runtime.generators import ObjectRefGenerator
        from runtime.object_ref import ObjectRef

        ref = ObjectRef(oid, self)
        return ObjectRefGenerator(ref, self) if mode == GEN_STREAMING else ref

    def stream_next(self: Any, gen: Any, timeout: float | None) -> Any:
        """The next item of `gen` (the driver lends this worker's CPU out while it waits)."""
        if timeout is None:
            return self._stream_take(
                gen, self.request(rq.STREAM_NEXT, (gen._task_id(), gen._index, True))
            )
        deadline = time.monotonic() + timeout
        while True:  # bounded waits poll: the driver answers a peek at once
            answer = self.request(rq.STREAM_NEXT, (gen._task_id(), gen._index, False))
            if answer is not None:
                return self._stream_take(gen, answer)
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))

    def _stream_take(self: Any, gen: Any, answer: tuple) -> Any:
        from runtime.object_ref import ObjectRef

        kind, value = answer
        if kind == "item":
            gen._index += 1
            return ObjectRef(value, self)
        if value and not gen._raised:
            gen._raised = True
            return gen._ref  # the task failed: its error is the last item, as in Ray
        raise StopIteration

    def stream_ready(self: Any, gen: Any) -> bool:
        """Would ``next(gen)`` return (or stop) without waiting?"""
        return self.request(rq.STREAM_NEXT, (gen._task_id(), gen._index, False)) is not None

    def stream_finished(self: Any, gen: Any) -> bool:
        """Would ``next(gen)`` raise ``StopIteration``?"""
        answer = self.request(rq.STREAM_NEXT, (gen._task_id(), gen._index, False))
        return answer is not None and answer[0] == "end" and (not answer[1] or gen._raised)

    def drop_stream(self: Any, gen: Any) -> None:
        """`gen` was garbage collected: tell the driver with the next message."""
        self.stream_drops.append((gen._task_id(), gen._index))

    def adopt_stream_items(self: Any, task_id: int, count: int) -> list[Any]:
        """Refs to the items of dynamic generator `task_id` (its value was unpickled here)."""
        from runtime.core.ids import generator_item_id
        from runtime.real.streams import owner_addr_of_task

        owner = owner_addr_of_task(task_id)
        return [self.adopt_ref(generator_item_id(task_id, i), owner) for i in range(count)]

    def wait_mixed(
        self: Any, items: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """`wait` over refs and generators in a worker (polls the driver every few ms)."""
        from runtime.generators import ObjectRefGenerator

        if len({id(x) for x in items}) != len(items):
            raise ValueError("wait() got duplicate ObjectRefs or generators")
        deadline = None if timeout is None else time.monotonic() + timeout
        refs = [x for x in items if not isinstance(x, ObjectRefGenerator)]
        while True:
            done = {id(r) for r in self.wait(refs, len(refs), 0)[0]} if refs else set()
            flags = [
                self.stream_ready(x) if isinstance(x, ObjectRefGenerator) else id(x) in done
                for x in items
            ]
            if sum(flags) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
                ready: list[Any] = []
                rest: list[Any] = []
                for x, flag in zip(items, flags):
                    (ready if flag and len(ready) < num_returns else rest).append(x)
                return ready, rest
            time.sleep(0.005)
