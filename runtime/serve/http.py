"""The HTTP proxy: a uvicorn server running a small ASGI app on the serve loop.

A request is matched to an app by the longest route prefix, then routed with the same
per-deployment router the driver's handles use (the core's power-of-two choices); its body
is read in full and sent with a trimmed ASGI scope to the replica, which builds the starlette
``Request``, calls ``__call__`` and answers ``(status, headers, body)``. Every queue full
answers 503, a dead replica 500 (and it is replaced), an unknown path 404.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

from runtime.serve import handle as _handle
from runtime.serve.exceptions import BackPressureError, RayServeException, ReplicaDiedError

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_SCOPE_KEYS = (
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "headers",
    "client",
    "server",
)


@dataclass
class Route:
    """An app reachable over HTTP: its prefix and its ingress deployment's routing settings."""

    prefix: str
    app: str
    key: str
    max_ongoing: int
    max_queued: int


class ProxyApp:
    """The ASGI application: route prefix -> ingress router -> replica's ``handle_http``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []  # longest prefix first

    def set_routes(self, routes: list[Route]) -> None:
        """Replace the route table (serve loop)."""
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)

    def match(self, path: str) -> Route | None:
        """The route with the longest prefix that `path` is under."""
        for route in self.routes:
            p = route.prefix
            if p == "/" or path == p or path.startswith(p + "/"):
                return route
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        path = scope["path"]
        if path == "/-/healthz":
            return await _reply(send, 200, _TEXT, b"success")
        if path == "/-/routes":
            table = {r.prefix: r.app for r in self.routes}
            return await _reply(
                send, 200, [(b"content-type", b"application/json")], json.dumps(table).encode()
            )
        route = self.match(path)
        if route is None:
            text = f"Path '{path}' not found. Ping http://.../-/routes for available routes."
            return await _reply(send, 404, _TEXT, text.encode())
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sub = {k: scope[k] for k in _SCOPE_KEYS if k in scope}
        sub["root_path"] = scope.get("root_path", "") + (
            "" if route.prefix == "/" else route.prefix
        )
        router = _handle.router_for(route.key, route.max_ongoing, route.max_queued, {})
        while True:
            try:
                replica_id = await router.acquire()
            except BackPressureError as exc:
                return await _reply(send, 503, _TEXT, str(exc).encode())
            except RayServeException as exc:
                return await _reply(send, 503, _TEXT, str(exc).encode())
            try:
                ref = router.actors[replica_id].handle_http.remote(sub, body)
                status, headers, payload = await ref
            except Exception as exc:
                if _handle.is_replica_death(exc):
                    router.replica_died(replica_id)
                    if _handle.is_unstarted_death(exc):  # it never reached the replica: again
                        continue
                    exc = ReplicaDiedError(replica_id, str(exc))
                status, headers, payload = 500, _TEXT, f"{type(exc).__name__}: {exc}".encode()
            finally:
                router.release(replica_id)
            return await _reply(send, status, headers, payload)


async def _reply(send: Any, status: int, headers: list, body: bytes) -> None:
    if not any(k.lower() == b"content-length" for k, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Proxy:
    """The uvicorn server on (host, port), started and stopped on the serve loop."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.app = ProxyApp()
        self._server: Any = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the port (an error at once if it is taken) and serve until ``stop``."""
        try:
            import uvicorn
        except ImportError as exc:
            raise RayServeException(
                "Serve's HTTP proxy needs uvicorn and starlette: pip install 'twinray[serve]'"
            ) from exc
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections
        # only for sockets whose proto says TCP (a 0 proto costs a 40 ms delayed-ACK stall
        # per keep-alive request: Nagle holds the body behind the headers)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RayServeException(
                f"Serve's HTTP proxy cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(  # log_config None: the program's logging stays as it is
            self.app,  # (uvicorn's own would replace every handler, closing their streams)
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RayServeException("Serve's HTTP proxy stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving, close the socket."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, Exception):
                self._task.cancel()
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
