"""``@serve.batch``: calls of an async function gathered into list-in, list-out batches.

The decision of which calls form a batch and when it starts is the core's
(`runtime.core.serve.batcher.Batcher`, fed with the event loop's clock); this module only
keeps the futures and a timer for the batcher's next deadline. One queue per decorated
function, or per instance for a method, bound to the event loop that first calls it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from runtime.core.serve.batcher import Batch, Batcher
from runtime.core.serve.errors import ServeConfigError
from runtime.exceptions import InvalidOptionError
from runtime.serve.exceptions import RayServeException, ServeOptionNotSupportedError


class _BatchQueue:
    """The futures of one batched function's waiting calls, and the timer for its deadline."""

    def __init__(self, func: Callable, instance: Any, batcher: Batcher) -> None:
        self.func = func
        self.instance = instance  # the instance for a method, None for a function
        self.batcher = batcher
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None

    def submit(self, args: tuple, kwargs: dict) -> asyncio.Future:
        fut = self.loop.create_future()
        self._launch(self.batcher.add((args, kwargs, fut), self.loop.time()))
        self._arm()
        return fut

    def _arm(self) -> None:
        deadline = self.batcher.next_deadline()
        if deadline == self.timer_at:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = deadline
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        self._launch(self.batcher.poll(self.loop.time()))
        self._arm()

    def _launch(self, batches: list[Batch]) -> None:
        for batch in batches:
            self.loop.create_task(self._run(batch))

    async def _run(self, batch: Batch) -> None:
        items = [item for item in batch.items if not item[2].cancelled()]
        try:
            if items:
                await self._call(items)
        finally:
            self._launch(self.batcher.finished(batch.batch_id, self.loop.time()))
            self._arm()

    async def _call(self, items: list[tuple]) -> None:
        futures = [fut for _, _, fut in items]
        first_args, first_kwargs = items[0][0], items[0][1]
        try:
            for args, kwargs, _ in items:
                if len(args) != len(first_args) or kwargs.keys() != first_kwargs.keys():
                    raise RayServeException(
                        "calls of a @serve.batch function must pass the same arguments "
                        "(positions and keywords) to be batched together"
                    )
            cols = [[args[i] for args, _, _ in items] for i in range(len(first_args))]
            kcols = {k: [kw[k] for _, kw, _ in items] for k in first_kwargs}
            call_args = (self.instance, *cols) if self.instance is not None else tuple(cols)
            results = await self.func(*call_args, **kcols)
            if not isinstance(results, (list, tuple)) or len(results) != len(items):
                got = len(results) if isinstance(results, (list, tuple)) else type(results)
                raise RayServeException(
                    "Batched function doesn't preserve batch size. The input list has "
                    f"length {len(items)} but the returned list has length {got}."
                )
        except BaseException as exc:
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for fut, value in zip(futures, results):
            if not fut.done():
                fut.set_result(value)


def batch(
    _func: Callable | None = None,
    /,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.01,
    max_concurrent_batches: int = 1,
    batch_size_fn: Callable | None = None,
) -> Any:
    """Ray Serve's ``@serve.batch``: the decorated async function takes lists, returns lists.

    Each call passes one item (per argument) and awaits its own result; calls are gathered
    into batches of up to ``max_batch_size``, waiting at most ``batch_wait_timeout_s`` after
    a batch's first call, with at most ``max_concurrent_batches`` batches running.
    """
    if batch_size_fn is not None:
        raise ServeOptionNotSupportedError(
            "@serve.batch(batch_size_fn=...): custom batch sizes are not provided; "
            "batches count calls"
        )
    try:  # check the settings now, as Ray does
        Batcher(max_batch_size, batch_wait_timeout_s, max_concurrent_batches)
    except ServeConfigError as exc:
        raise InvalidOptionError(str(exc)) from None

    def decorate(func: Callable) -> Callable:
        if not inspect.iscoroutinefunction(func):
            raise ServeOptionNotSupportedError(
                f"@serve.batch on {getattr(func, '__name__', func)!r}: twinray batches "
                "async functions only (declare it `async def`)"
            )
        params = list(inspect.signature(func).parameters)
        is_method = bool(params) and params[0] == "self"
        attr = f"__serve_batch_queue_{func.__name__}"
        shared: dict[str, _BatchQueue] = {}

        def queue_for(instance: Any) -> _BatchQueue:
            q = shared.get("q") if instance is None else instance.__dict__.get(attr)
            if q is None or q.loop is not asyncio.get_running_loop():
                q = _BatchQueue(
                    func,
                    instance,
                    Batcher(max_batch_size, batch_wait_timeout_s, max_concurrent_batches),
                )
                if instance is None:
                    shared["q"] = q
                else:
                    instance.__dict__[attr] = q
            return q

        if is_method:

            @functools.wraps(func)
            async def method_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                return await queue_for(self).submit(args, kwargs)

            wrapper: Callable = method_wrapper
        else:

            @functools.wraps(func)
            async def function_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await queue_for(None).submit(args, kwargs)

            wrapper = function_wrapper
        wrapper._serve_batch = (max_batch_size, batch_wait_timeout_s)  # type: ignore[attr-defined]
        return wrapper

    if _func is not None:
        return decorate(_func)
    return decorate
