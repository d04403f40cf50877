"""DeploymentHandle and DeploymentResponse: calls routed to replicas by the core router.

Every process that calls a deployment (the driver, or a replica holding a handle to
another deployment) has one ``_Router`` per deployment, bound to that process's *home loop*
(the driver's serve loop thread; a replica's own actor loop). The router wraps the core
`PowerOfTwoChoicesRouter` (the decision) with the replicas' actor handles and the futures of
queued requests; it is only touched on its home loop, so it needs no lock. A call made on
another thread (the driver's program thread, or a user's own event loop) hops to the home
loop with one ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Callable
from typing import Any

from runtime.core.serve.router import ASSIGNED, REJECTED, Assignment, PowerOfTwoChoicesRouter
from runtime.core.task import CALL_NOT_STARTED
from runtime.exceptions import ActorDiedError, InvalidOptionError, RayTaskError
from runtime.serve.exceptions import (
    BackPressureError,
    RayServeException,
    ReplicaDiedError,
    ServeOptionNotSupportedError,
)

# -- the process's home loop and routers -----------------------------------------------------


class _Home:
    """This process's home loop for serve calls and its routers (one per deployment key)."""

    loop: asyncio.AbstractEventLoop | None = None
    in_replica = False
    routers: dict[str, _Router] = {}
    #: the latest replica lists pushed by the controller, for routers made later
    latest: dict[str, dict[str, Any]] = {}
    #: deployments deleted here (driver): their handles' calls fail with this error
    gone: dict[str, Exception] = {}
    #: the driver's controller hook: called on the home loop as (key, replica_id) on a death
    on_replica_died: Callable[[str, str], None] | None = None


def home_loop() -> asyncio.AbstractEventLoop:
    """The loop serve calls of this process run on; raises when Serve is not running here."""
    loop = _Home.loop
    if loop is None or loop.is_closed():
        raise RayServeException(
            "Serve is not running in this process: call serve.run(...) (or serve.start()) first"
        )
    return loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Router:
    """One deployment's replicas as seen from this process, routed by the core router."""

    def __init__(self, key: str, max_ongoing: int, max_queued: int) -> None:
        self.key = key
        self.core = PowerOfTwoChoicesRouter(random.Random(), max_ongoing, max_queued)
        self.actors: dict[str, Any] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.unavailable: Exception | None = None
        self._next_request = 0

    def set_replicas(self, replicas: dict[str, Any]) -> None:
        """The deployment's RUNNING replicas changed (home loop)."""
        self.unavailable = None
        self.actors = dict(replicas)
        self._place(self.core.update_replicas(list(replicas)))

    def set_unavailable(self, error: Exception) -> None:
        """The deployment failed or was deleted: queued and future requests get `error`."""
        self.unavailable = error
        waiters, self.waiters = self.waiters, {}
        for rid, fut in waiters.items():
            self.core.cancel(rid)
            if not fut.done():
                fut.set_exception(error)

    async def acquire(self) -> str:
        """A replica with room for one more request (waits in the queue; may raise 503's error)."""
        if self.unavailable is not None:
            raise self.unavailable
        request = self._next_request
        self._next_request += 1
        decision = self.core.route(request)
        if decision.outcome == ASSIGNED:
            assert decision.replica_id is not None
            return decision.replica_id
        if decision.outcome == REJECTED:
            raise BackPressureError(self.core.queue_len, self.core.max_queued_requests)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[request] = fut
        try:
            return await fut
        except asyncio.CancelledError:
            placed = not self.core.cancel(request) and fut.done() and not fut.cancelled()
            if placed and fut.exception() is None:
                self.release(fut.result())
            self.waiters.pop(request, None)
            raise

    def release(self, replica_id: str) -> None:
        """A request on `replica_id` ended."""
        self._place(self.core.release(replica_id))

    def replica_died(self, replica_id: str) -> None:
        """`replica_id` died: stop routing to it here and tell the controller (driver)."""
        if replica_id in self.actors:
            del self.actors[replica_id]
            self._place(self.core.update_replicas(list(self.actors)))
        hook = _Home.on_replica_died
        if hook is not None:
            hook(self.key, replica_id)

    def _place(self, assignments: list[Assignment]) -> None:
        for a in assignments:
            fut = self.waiters.pop(a.request_id, None)  # type: ignore[call-overload]
            if fut is None or fut.done():
                self.release(a.replica_id)
            else:
                fut.set_result(a.replica_id)


def router_for(key: str, max_ongoing: int, max_queued: int, replicas: dict[str, Any]) -> _Router:
    """This process's router for `key`, made (with `replicas`) on first use."""
    router = _Home.routers.get(key)
    if router is None:
        router = _Home.routers[key] = _Router(key, max_ongoing, max_queued)
        gone = _Home.gone.get(key)
        if gone is not None:
            router.set_unavailable(gone)
            return router
        replicas = _Home.latest.get(key, replicas)
        if replicas:
            router.set_replicas(replicas)
    return router


def update_replicas(key: str, replicas: dict[str, Any]) -> None:
    """The controller's push (home loop): `key`'s RUNNING replicas are now `replicas`."""
    _Home.latest[key] = replicas
    _Home.gone.pop(key, None)
    router = _Home.routers.get(key)
    if router is not None:
        router.set_replicas(replicas)


def is_replica_death(exc: BaseException) -> bool:
    """True when `exc` says the replica's actor itself died (not an error raised inside it)."""
    return isinstance(exc, ActorDiedError) and not isinstance(exc, RayTaskError)


def is_unstarted_death(exc: BaseException) -> bool:
    """True when the replica died before the call reached it (safe to send elsewhere).

    The core marks a dead actor's calls that were still unsent or queued (never given to
    its worker); Ray Serve retries the same case, a replica that died before accepting.
    """
    return is_replica_death(exc) and CALL_NOT_STARTED in str(exc)


# -- calls ------------------------------------------------------------------------------------


class _Request:
    """One call's state on the home loop: the ObjectRef of its result once it is sent."""

    __slots__ = ("ref",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ref: asyncio.Future = loop.create_future()
        # The call's error reaches its caller through the response's own future; this one
        # only feeds calls the response is passed to. Mark its error seen, so that dropping
        # an unpassed failed response logs nothing ("Future exception was never retrieved",
        # logged from the garbage collector at any point of the program).
        self.ref.add_done_callback(_seen)


def _seen(future: asyncio.Future) -> None:
    """Mark a settled future's exception as retrieved."""
    if not future.cancelled():
        future.exception()


async def _resolve_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Top-level DeploymentResponse arguments become their results' ObjectRefs (as in Ray)."""
    if any(isinstance(a, DeploymentResponse) for a in args):
        args = tuple(
            [await a._object_ref() if isinstance(a, DeploymentResponse) else a for a in args]
        )
    if any(isinstance(v, DeploymentResponse) for v in kwargs.values()):
        kwargs = {
            k: (await v._object_ref() if isinstance(v, DeploymentResponse) else v)
            for k, v in kwargs.items()
        }
    return args, kwargs


async def _call(router: _Router, method: str, args: tuple, kwargs: dict, request: _Request) -> Any:
    """Route one call, send it to the replica, await its result (home loop).

    A replica that died before the call reached it (see `is_unstarted_death`) is dropped
    and the call routed again, as Ray Serve retries a request no replica accepted; one that
    died with the call on it fails the call with `ReplicaDiedError` (it may have had effects).
    """
    try:
        args, kwargs = await _resolve_args(args, kwargs)
    except BaseException as exc:
        request.ref.set_exception(exc)
        raise
    while True:
        try:
            replica_id = await router.acquire()
        except BaseException as exc:
            request.ref.set_exception(exc)
            raise
        try:
            ref = router.actors[replica_id].handle_request.remote(method, *args, **kwargs)
        except BaseException as exc:
            router.release(replica_id)
            request.ref.set_exception(exc)
            raise
        request.ref.set_result(ref)
        try:
            return await ref
        except ActorDiedError as exc:
            if not is_replica_death(exc):
                raise
            router.replica_died(replica_id)
            if is_unstarted_death(exc):
                # the retry's ref, for calls this response is passed to from now on (one
                # that took the first ref already sees the death, as without the retry)
                request.ref = asyncio.get_running_loop().create_future()
                request.ref.add_done_callback(_seen)
                continue
            raise ReplicaDiedError(replica_id, str(exc)) from exc
        finally:
            router.release(replica_id)


class DeploymentResponse:
    """The future result of one handle call: ``.result(timeout_s=)``, ``await``, or pass it
    to another handle call (the result goes replica to replica, as in Ray)."""

    def __init__(self, future: Any, request: _Request, loop: asyncio.AbstractEventLoop) -> None:
        self._future = future  # an asyncio.Task on the home loop, or a concurrent Future
        self._request = request
        self._loop = loop

    def result(self, timeout_s: float | None = None) -> Any:
        """Block until the result is there (or raise its error); TimeoutError past `timeout_s`."""
        if _running_loop() is self._loop:
            raise RuntimeError(
                "DeploymentResponse.result() would block the event loop it waits on; "
                "use `await response` inside async code"
            )
        fut = self._future
        if isinstance(fut, asyncio.Future):
            fut = asyncio.run_coroutine_threadsafe(_await(fut), self._loop)
        try:
            return fut.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the response was not ready within {timeout_s} s") from None

    def __await__(self) -> Any:
        fut = self._future
        if isinstance(fut, asyncio.Future):
            if _running_loop() is self._loop:
                return fut.__await__()
            fut = asyncio.run_coroutine_threadsafe(_await(fut), self._loop)
        return asyncio.wrap_future(fut).__await__()

    def cancel(self) -> None:
        """Cancel the call if it has not finished (a queued call never reaches a replica)."""
        fut = self._future
        if isinstance(fut, asyncio.Future):
            self._loop.call_soon_threadsafe(fut.cancel)
        else:
            fut.cancel()

    async def _object_ref(self) -> Any:
        """The ObjectRef of the result (home loop), once the call is sent."""
        return await self._request.ref

    async def _to_object_ref(self) -> Any:
        """Ray's name: the ObjectRef the result is (await it from async code)."""
        return await self._request.ref


async def _await(fut: asyncio.Future) -> Any:
    return await fut


# -- the handle -------------------------------------------------------------------------------

#: Handle options of Ray's `.options()` twinray refuses.
_REFUSED_HANDLE_OPTIONS = {
    "stream": "streaming responses (DeploymentResponseGenerator)",
    "multiplexed_model_id": "model multiplexing",
    "request_priority": "request priorities",
}


class DeploymentHandle:
    """Calls a deployment's replicas: ``handle.remote(...)``, ``handle.method.remote(...)``,
    ``handle.options(method_name=...)``. Picklable: a replica given one routes with its own
    router, kept current by the controller."""

    def __init__(
        self,
        deployment_name: str,
        app_name: str,
        *,
        method_name: str = "__call__",
        max_ongoing_requests: int = 5,
        max_queued_requests: int = -1,
        replicas: dict[str, Any] | None = None,
    ) -> None:
        self.deployment_name = deployment_name
        self.app_name = app_name
        self.method_name = method_name
        self._max_ongoing = max_ongoing_requests
        self._max_queued = max_queued_requests
        self._replicas = replicas or {}

    @property
    def _key(self) -> str:
        return f"{self.app_name}#{self.deployment_name}"

    def options(self, *, method_name: str | None = None, **kwargs: Any) -> DeploymentHandle:
        """A handle to the same deployment calling `method_name` (Ray's other options refused)."""
        for key, value in kwargs.items():
            if key == "use_new_handle_api":
                continue
            if key in _REFUSED_HANDLE_OPTIONS:
                if value in (None, False, ""):
                    continue
                raise ServeOptionNotSupportedError(
                    f"handle option {key}={value!r}: twinray's Serve does not provide "
                    f"{_REFUSED_HANDLE_OPTIONS[key]}"
                )
            raise InvalidOptionError(f"unknown DeploymentHandle option {key!r}")
        if method_name is not None and (not isinstance(method_name, str) or not method_name):
            raise InvalidOptionError(f"method_name must be a non-empty str, got {method_name!r}")
        return DeploymentHandle(
            self.deployment_name,
            self.app_name,
            method_name=method_name or self.method_name,
            max_ongoing_requests=self._max_ongoing,
            max_queued_requests=self._max_queued,
            replicas=self._replicas,
        )

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse:
        """Send a call to one replica (two sampled, the less busy wins); returns at once."""
        loop = home_loop()
        if _running_loop() is loop:
            return self._start(loop, args, kwargs)
        box: concurrent.futures.Future = concurrent.futures.Future()
        started: concurrent.futures.Future = concurrent.futures.Future()

        def start() -> None:
            try:
                resp = self._start(loop, args, kwargs)
            except BaseException as exc:
                box.set_exception(exc)
                started.set_exception(exc)
                return
            resp._future.add_done_callback(lambda t: _copy_outcome(t, box))
            started.set_result(resp)

        loop.call_soon_threadsafe(start)
        return _CrossThreadResponse(box, started, loop)

    def _start(
        self, loop: asyncio.AbstractEventLoop, args: tuple, kwargs: dict
    ) -> DeploymentResponse:
        router = router_for(self._key, self._max_ongoing, self._max_queued, self._replicas)
        request = _Request(loop)
        task = loop.create_task(_call(router, self.method_name, args, kwargs, request))
        return DeploymentResponse(task, request, loop)

    def __reduce__(self) -> tuple:
        return (
            _rebuild_handle,
            (
                self.deployment_name,
                self.app_name,
                self.method_name,
                self._max_ongoing,
                self._max_queued,
                self._current_replicas(),
            ),
        )

    def _current_replicas(self) -> dict[str, Any]:
        router = _Home.routers.get(self._key)
        return dict(router.actors) if router is not None else dict(self._replicas)

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"


def _rebuild_handle(
    deployment_name: str,
    app_name: str,
    method_name: str,
    max_ongoing: int,
    max_queued: int,
    replicas: dict[str, Any],
) -> DeploymentHandle:
    return DeploymentHandle(
        deployment_name,
        app_name,
        method_name=method_name,
        max_ongoing_requests=max_ongoing,
        max_queued_requests=max_queued,
        replicas=replicas,
    )


def _copy_outcome(task: asyncio.Future, box: concurrent.futures.Future) -> None:
    if box.done():
        return
    if task.cancelled():
        box.cancel()
    elif task.exception() is not None:
        box.set_exception(task.exception())
    else:
        box.set_result(task.result())


class _CrossThreadResponse(DeploymentResponse):
    """A response started from another thread than the home loop's: a concurrent future."""

    def __init__(
        self,
        box: concurrent.futures.Future,
        started: concurrent.futures.Future,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._future = box
        self._started = started
        self._loop = loop

    async def _object_ref(self) -> Any:
        resp = await asyncio.wrap_future(self._started)
        return await resp._request.ref

    async def _to_object_ref(self) -> Any:
        return await self._object_ref()

    def cancel(self) -> None:
        """Cancel the call if it has not finished (a queued call never reaches a replica)."""

        def cancel_task(started: concurrent.futures.Future) -> None:
            if not started.cancelled() and started.exception() is None:
                self._loop.call_soon_threadsafe(started.result()._future.cancel)

        self._started.add_done_callback(cancel_task)
