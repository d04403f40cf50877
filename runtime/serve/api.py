"""Serve's entry points with Ray Serve's names: start, run, delete, status, shutdown, handles."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from runtime.exceptions import InvalidOptionError
from runtime.serve import handle as _handle
from runtime.serve.deployment import Application
from runtime.serve.exceptions import RayServeException, ServeOptionNotSupportedError
from runtime.serve.http import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, Proxy, Route
from runtime.serve.status import ServeStatus

logger = logging.getLogger("runtime.serve")

SERVE_DEFAULT_APP_NAME = "default"
_PROXY_LOCATIONS = ("HeadOnly", "EveryNode", "Disabled", "NoServer")
_HTTP_KEYS = ("host", "port", "location")
_lock = threading.Lock()


class _Serve:
    """This driver's running Serve: the serve loop, the controller and the proxy (if any)."""

    def __init__(self, host: str, port: int, with_proxy: bool) -> None:
        from runtime.serve.controller import Controller, ServeLoop

        self.serve_loop = ServeLoop()
        self.controller = Controller(self.serve_loop)
        self.http = (host, port, with_proxy)
        self.proxy: Proxy | None = None
        _handle._Home.loop = self.serve_loop.loop
        _handle._Home.on_replica_died = self.controller.on_replica_died
        if with_proxy:
            proxy = Proxy(host, port)
            try:
                self.serve_loop.call(proxy.start())
            except BaseException:
                self.serve_loop.stop()
                _handle._Home.loop = None
                raise
            self.proxy = proxy

    def refresh_routes(self) -> None:
        """Give the proxy the apps with a route prefix (serve loop)."""
        if self.proxy is None:
            return
        routes = []
        for app in self.controller.apps.values():
            dep = self.controller.ingress_of(app.name)
            if app.route_prefix is None or dep is None:
                continue
            routes.append(
                Route(
                    app.route_prefix,
                    app.name,
                    dep.key,
                    dep.config.max_ongoing_requests,
                    dep.config.max_queued_requests,
                )
            )
        self.proxy.app.set_routes(routes)

    def stop(self) -> None:
        async def stop_all() -> None:
            if self.proxy is not None:
                self.proxy.app.set_routes([])
            await self.controller.shutdown()
            if self.proxy is not None:
                await self.proxy.stop()

        try:
            self.serve_loop.call(stop_all(), timeout=60)
        finally:
            self.serve_loop.stop()
            _handle._Home.loop = None
            _handle._Home.on_replica_died = None
            _handle._Home.routers.clear()
            _handle._Home.latest.clear()
            _handle._Home.gone.clear()


_serve: _Serve | None = None


def _check_http_options(http_options: Any, proxy_location: Any) -> tuple[str, int, bool]:
    if http_options is None:
        http_options = {}
    elif not isinstance(http_options, dict):
        if hasattr(http_options, "__dict__"):
            http_options = {k: v for k, v in vars(http_options).items() if v is not None}
        else:
            raise InvalidOptionError(
                f"http_options must be a dict, got {type(http_options).__name__}"
            )
    unknown = sorted(set(http_options) - set(_HTTP_KEYS))
    if unknown:
        raise ServeOptionNotSupportedError(
            f"http_options {unknown}: twinray's proxy takes only {list(_HTTP_KEYS)}"
        )
    host = http_options.get("host", DEFAULT_HTTP_HOST)
    port = http_options.get("port", DEFAULT_HTTP_PORT)
    if not isinstance(host, str) or not host:
        raise InvalidOptionError(f"http_options host must be a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidOptionError(f"http_options port must be an int in 0..65535, got {port!r}")
    location = http_options.get("location", proxy_location or "HeadOnly")
    location = getattr(location, "value", location)
    if location not in _PROXY_LOCATIONS:
        raise InvalidOptionError(
            f"proxy location must be one of {list(_PROXY_LOCATIONS)}, got {location!r}"
        )
    return host, port, location not in ("Disabled", "NoServer")


def start(
    proxy_location: Any = None,
    http_options: Any = None,
    grpc_options: Any = None,
    logging_config: Any = None,
    **kwargs: Any,
) -> None:
    """Start Serve in this driver: the serve loop and the HTTP proxy (127.0.0.1:8000 unless
    ``http_options={"host": ..., "port": ...}``); ``runtime.init()`` first if needed.

    Serve already running: a warning, as in Ray, when other HTTP options are asked for.
    """
    global _serve
    if kwargs:
        raise InvalidOptionError(f"serve.start() got unknown keywords {sorted(kwargs)}")
    if grpc_options is not None:
        raise ServeOptionNotSupportedError("grpc_options: twinray's Serve has no gRPC proxy")
    if logging_config is not None:
        raise ServeOptionNotSupportedError(
            "logging_config: twinray's Serve logs through the `runtime.serve` logger"
        )
    wanted = _check_http_options(http_options, proxy_location)
    if _handle._Home.in_replica:
        raise RayServeException("serve.start()/serve.run() cannot be called inside a replica")
    import runtime

    if not runtime.is_initialized():
        runtime.init()
    with _lock:
        if _serve is not None:
            if http_options is not None and wanted != _serve.http:
                logger.warning(
                    "Serve is already running with HTTP options %s; %s is ignored "
                    "(serve.shutdown() first to change them)",
                    _serve.http,
                    wanted,
                )
            return
        _serve = _Serve(*wanted)
        runtime.api._add_shutdown_hook(shutdown)


def _check_route_prefix(route_prefix: Any) -> None:
    if route_prefix is None:
        return
    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise InvalidOptionError(f"route_prefix must start with '/', got {route_prefix!r}")
    if route_prefix != "/" and route_prefix.endswith("/"):
        raise InvalidOptionError(
            f"route_prefix may not end with '/' unless it is '/', got {route_prefix!r}"
        )
    if "{" in route_prefix or "}" in route_prefix:
        raise InvalidOptionError(f"route_prefix may not contain wildcards, got {route_prefix!r}")


def run(
    target: Application,
    blocking: bool = False,
    name: str = SERVE_DEFAULT_APP_NAME,
    route_prefix: str | None = "/",
    logging_config: Any = None,
    _local_testing_mode: bool = False,
    external_scaler_enabled: bool = False,
    controller_options: Any = None,
) -> _handle.DeploymentHandle:
    """Deploy `target` as app `name` at `route_prefix` (None: handles only); returns the
    handle of its ingress deployment once every replica runs. Starts Serve if needed.

    ``blocking=True`` then sleeps until Ctrl-C and shuts Serve down, as Ray does.
    """
    if not isinstance(target, Application):
        raise TypeError(
            f"serve.run() takes an application (Deployment.bind(...)), got {type(target).__name__}"
        )
    if not isinstance(name, str) or not name:
        raise InvalidOptionError(f"name must be a non-empty str, got {name!r}")
    _check_route_prefix(route_prefix)
    for option, value, default in (
        ("logging_config", logging_config, None),
        ("_local_testing_mode", _local_testing_mode, False),
        ("external_scaler_enabled", external_scaler_enabled, False),
        ("controller_options", controller_options, None),
    ):
        if value != default:
            raise ServeOptionNotSupportedError(
                f"serve.run({option}={value!r}) is not provided by twinray's Serve"
            )
    start()
    serve = _require_serve()

    async def deploy() -> _handle.DeploymentHandle:
        try:
            return await serve.controller.deploy(target, name, route_prefix)
        finally:
            serve.refresh_routes()

    handle = serve.serve_loop.call(deploy())
    if blocking:
        try:
            while True:
                time.sleep(10)
        except KeyboardInterrupt:
            logger.info("Received KeyboardInterrupt, shutting down Serve.")
            shutdown()
    return handle


def _require_serve() -> _Serve:
    serve = _serve
    if serve is None:
        raise RayServeException("Serve is not running: call serve.run(...) or serve.start()")
    return serve


def delete(name: str, _blocking: bool = True) -> None:
    """Delete app `name`: its replicas stop, its route goes (no error if there is no such app)."""
    serve = _serve
    if serve is None:
        return

    async def remove() -> None:
        try:
            await serve.controller.delete(name)
        finally:
            serve.refresh_routes()

    serve.serve_loop.call(remove())


def status() -> ServeStatus:
    """Every app's and deployment's status (empty ServeStatus when Serve is not running)."""
    serve = _serve
    if serve is None:
        return ServeStatus()

    async def read() -> ServeStatus:
        return serve.controller.status()

    return serve.serve_loop.call(read())


def shutdown() -> None:
    """Delete every app, stop the proxy and the serve loop (no-op when Serve is not running)."""
    global _serve
    with _lock:
        serve, _serve = _serve, None
    if serve is not None:
        serve.stop()


def get_app_handle(name: str) -> _handle.DeploymentHandle:
    """The handle of app `name`'s ingress deployment; RayServeException if there is no such app."""
    serve = _require_serve_for_handles()

    async def find() -> _handle.DeploymentHandle:
        dep = serve.controller.ingress_of(name)
        if dep is None:
            raise RayServeException(f"Application '{name}' does not exist.")
        return dep.handle()

    return serve.serve_loop.call(find())


def get_deployment_handle(
    deployment_name: str, app_name: str | None = None
) -> _handle.DeploymentHandle:
    """A handle to deployment `deployment_name` of app `app_name` (default: the only app)."""
    serve = _require_serve_for_handles()

    async def find() -> _handle.DeploymentHandle:
        apps = serve.controller.apps
        name = app_name
        if name is None:
            if len(apps) != 1:
                raise RayServeException(
                    "get_deployment_handle() needs app_name when there is not exactly one app"
                )
            name = next(iter(apps))
        app = apps.get(name)
        if app is None or deployment_name not in app.deps:
            raise RayServeException(
                f"Deployment '{deployment_name}' in application '{name}' does not exist."
            )
        return app.deps[deployment_name].handle()

    return serve.serve_loop.call(find())


def _require_serve_for_handles() -> _Serve:
    if _handle._Home.in_replica:
        raise ServeOptionNotSupportedError(
            "looking up handles inside a replica: pass the deployment's bound app to the "
            "constructor instead (composition)"
        )
    serve = _serve
    if serve is None:
        raise RayServeException("There is no Serve instance running on this cluster.")
    return serve
