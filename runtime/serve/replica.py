"""The replica actor: hosts one instance of a deployment's class (or its function) and runs
its requests, from handles (``handle_request``) and from the HTTP proxy (``handle_http``)."""

from __future__ import annotations

import asyncio
import inspect
import json
import traceback
from dataclasses import dataclass
from typing import Any

from runtime.serve import handle as _handle
from runtime.serve.exceptions import RayServeException

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class ReplicaContext:
    """What ``serve.get_replica_context()`` returns inside a replica (Ray's fields)."""

    app_name: str
    deployment: str
    replica_tag: str

    @property
    def replica_id(self) -> str:
        """The replica's id (the same string as ``replica_tag``)."""
        return self.replica_tag


_context: ReplicaContext | None = None


def get_replica_context() -> ReplicaContext:
    """The running replica's context; RayServeException outside a replica (as in Ray)."""
    if _context is None:
        raise RayServeException(
            "`serve.get_replica_context()` may only be called from within a Ray Serve deployment."
        )
    return _context


class BadRequestBodyError(RayServeException, ValueError):
    """The HTTP request's body is not valid JSON (``await request.json()``): answered with 400."""


class _FunctionDeployment:
    """A function deployment's callable: ``__call__`` runs the function."""

    def __init__(self, func: Any, args: tuple, kwargs: dict) -> None:
        if args or kwargs:
            raise RayServeException(
                f"function deployment {func.__name__!r} takes its arguments per request; "
                "bind() it without arguments"
            )
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)


_request_class: Any = None


def _serve_request_class() -> Any:
    """starlette's Request with a ``json()`` that answers 400 on a malformed body (made once)."""
    global _request_class
    if _request_class is None:
        from starlette.requests import Request

        class ServeRequest(Request):
            """A starlette Request whose ``json()`` raises BadRequestBodyError (HTTP 400)."""

            async def json(self) -> Any:
                try:
                    return await super().json()
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise BadRequestBodyError(
                        f"the request body is not valid JSON: {exc}"
                    ) from None

        _request_class = ServeRequest
    return _request_class


def _make_request(scope: dict, body: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # like a connection that stays open: never returns
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return _serve_request_class()(scope, receive)


def encode_result(result: Any) -> tuple[int, list, bytes]:
    """A deployment's HTTP result as (status, headers, body): JSON, text, or a starlette Response."""
    from starlette.responses import Response, StreamingResponse

    if isinstance(result, StreamingResponse):
        return (
            500,
            _TEXT,
            b"twinray's Serve does not stream HTTP responses (StreamingResponse)",
        )
    if isinstance(result, Response):
        return result.status_code, list(result.raw_headers), bytes(result.body)
    if isinstance(result, str):
        return 200, _TEXT, result.encode()
    if isinstance(result, (bytes, bytearray)):
        return 200, [(b"content-type", b"application/octet-stream")], bytes(result)
    try:
        payload = json.dumps(result)
    except (TypeError, ValueError) as exc:
        return 500, _TEXT, f"the result cannot be sent as JSON: {exc}".encode()
    return 200, _JSON, payload.encode()


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class ServeReplica:
    """One replica of a deployment (an async actor; ``max_concurrency`` bounds its requests)."""

    def __init__(
        self,
        replica_id: str,
        app_name: str,
        deployment_name: str,
        target: Any,
        init_args: tuple,
        init_kwargs: dict,
        user_config: Any,
    ) -> None:
        global _context
        _context = ReplicaContext(app_name, deployment_name, replica_id)
        self._user_config = user_config
        if inspect.isclass(target):
            self._instance = target(*init_args, **init_kwargs)
        else:
            self._instance = _FunctionDeployment(target, init_args, init_kwargs)

    async def ready(self) -> str:
        """Called once after the constructor: bind the home loop, run ``reconfigure``."""
        _handle._Home.loop = asyncio.get_running_loop()
        _handle._Home.in_replica = True
        if self._user_config is not None:
            reconfigure = getattr(self._instance, "reconfigure", None)
            if reconfigure is None:
                raise RayServeException(
                    "user_config was given but the deployment has no reconfigure() method"
                )
            await _maybe_await(reconfigure(self._user_config))
        return "ok"

    async def handle_request(self, method_name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run one handle call: the method's result, or its error."""
        try:
            method = getattr(self._instance, method_name)
        except AttributeError:
            raise RayServeException(
                f"deployment {_context.deployment if _context else '?'!r} has no method "
                f"{method_name!r}"
            ) from None
        return await _maybe_await(method(*args, **kwargs))

    async def handle_http(self, scope: dict, body: bytes) -> tuple[int, list, bytes]:
        """Run one HTTP request through ``__call__(request)``: (status, headers, body)."""
        request = _make_request(scope, body)
        try:
            result = await _maybe_await(self._instance(request))
        except BadRequestBodyError as exc:
            return 400, _TEXT, str(exc).encode()
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
            return 500, _TEXT, text.encode()
        return encode_result(result)

    async def check_health(self) -> bool:
        """The controller's periodic probe: the deployment's own ``check_health`` if it has one."""
        user_check = getattr(self._instance, "check_health", None)
        if user_check is not None:
            await _maybe_await(user_check())
        return True

    async def update_replicas(self, key: str, replicas: dict[str, Any]) -> None:
        """The controller's push: deployment `key`'s RUNNING replicas changed."""
        _handle.update_replicas(key, replicas)
