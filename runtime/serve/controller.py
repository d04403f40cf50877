"""The driver-side Serve controller: apps, their deployments' replica sets, health checks.

It runs on the *serve loop*, one asyncio loop on its own thread in the driver, which also
runs the HTTP proxy and the driver's routers; program threads reach it with
``run_coroutine_threadsafe``. Decisions are the core's (`runtime.core.serve.ReplicaSet`
says which replicas to start and stop); this module carries them out with twinray actors and
pushes each change of a deployment's RUNNING replicas to every router that calls it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from runtime.core.serve.replicas import (
    HEALTHY,
    UNHEALTHY,
    ReplicaSet,
    StartReplica,
    StopReplica,
)
from runtime.serve import handle as _handle
from runtime.serve.deployment import Application, Deployment, DeploymentConfig, _apps_in
from runtime.serve.exceptions import DeploymentUnavailableError, RayServeException
from runtime.serve.status import (
    ApplicationStatusOverview,
    DeploymentStatusOverview,
    ServeStatus,
)


class ServeLoop:
    """An asyncio loop on a daemon thread of the driver; ``call`` runs a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="twinray-serve", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run `coro` on the loop and wait for its result (or its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop, join its thread, close it."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass(eq=False)
class _Dep:
    """One deployment of an app: its settings, replica set and replica actors."""

    app: str
    name: str
    deployment: Deployment
    config: DeploymentConfig
    args: tuple
    kwargs: dict
    replicas: ReplicaSet
    actors: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"{self.app}#{self.name}"

    def running(self) -> dict[str, Any]:
        return {r: self.actors[r] for r in self.replicas.running() if r in self.actors}

    def handle(self) -> _handle.DeploymentHandle:
        return _handle.DeploymentHandle(
            self.name,
            self.app,
            max_ongoing_requests=self.config.max_ongoing_requests,
            max_queued_requests=self.config.max_queued_requests,
            replicas=self.running(),
        )


@dataclass(eq=False)
class _App:
    """One application: its deployments (inner ones first), ingress and route prefix."""

    name: str
    route_prefix: str | None
    deps: dict[str, _Dep] = field(default_factory=dict)
    ingress: str = ""
    status: str = "DEPLOYING"
    message: str = ""
    deployed_at: float = field(default_factory=time.time)


class Controller:
    """Deploys, watches and deletes apps (every method but the constructor on the serve loop)."""

    def __init__(self, serve_loop: ServeLoop) -> None:
        self.serve_loop = serve_loop
        self.apps: dict[str, _App] = {}
        self._replica_class: Any = None

    # -- apps ---------------------------------------------------------------------------------
    async def deploy(self, target: Application, name: str, route_prefix: str | None) -> Any:
        """Deploy `target` as app `name` (replacing an app of that name); its ingress handle."""
        if name in self.apps:
            await self.delete(name)
        for other in self.apps.values():
            if route_prefix is not None and other.route_prefix == route_prefix:
                raise RayServeException(
                    f"Prefix {route_prefix} is being used by application {other.name!r}. "
                    f"Failed to deploy application {name!r}."
                )
        app = self.apps[name] = _App(name, route_prefix)
        built: dict[int, _Dep] = {}
        try:
            for node in target.walk():
                dep = self._make_dep(app, node, built)
                built[id(node)] = dep
                app.deps[dep.name] = dep
                self._reconcile(dep)
                await self._wait_deployed(dep)
        except BaseException as exc:
            app.status = "DEPLOY_FAILED"
            app.message = str(exc)
            await self._teardown(app)
            if isinstance(exc, RayServeException):
                raise
            raise RayServeException(f"Deploying application {name!r} failed: {exc}") from exc
        app.ingress = built[id(target)].name
        app.status = "RUNNING"
        return built[id(target)].handle()

    def _make_dep(self, app: _App, node: Application, built: dict[int, _Dep]) -> _Dep:
        base = node.deployment.name
        name, n = base, 0
        while name in app.deps:
            n += 1
            name = f"{base}_{n}"

        def substitute(value: Any) -> Any:
            if isinstance(value, Application):
                return built[id(value)].handle()
            if isinstance(value, list):
                return [substitute(v) for v in value]
            if isinstance(value, tuple):
                return tuple(substitute(v) for v in value)
            if isinstance(value, dict) and _apps_in(value):
                return {k: substitute(v) for k, v in value.items()}
            return value

        config = node.deployment.config
        return _Dep(
            app=app.name,
            name=name,
            deployment=node.deployment,
            config=config,
            args=tuple(substitute(a) for a in node.args),
            kwargs={k: substitute(v) for k, v in node.kwargs.items()},
            replicas=ReplicaSet(
                f"{app.name}#{name}",
                config.num_replicas,
                max_start_failures=config.max_constructor_retry_count,
            ),
        )

    async def _wait_deployed(self, dep: _Dep) -> None:
        while True:
            status = dep.replicas.status()
            if status == HEALTHY:
                break
            if status == UNHEALTHY:
                raise RayServeException(
                    f"Deploying deployment {dep.name!r} of application {dep.app!r} failed: "
                    f"its constructor raised {dep.config.max_constructor_retry_count} times; "
                    f"the last error: {dep.replicas.last_error}"
                )
            dep.changed.clear()
            await dep.changed.wait()
        health = asyncio.get_running_loop().create_task(self._health_loop(dep))
        dep.tasks.add(health)
        health.add_done_callback(dep.tasks.discard)

    async def delete(self, name: str) -> None:
        """Delete app `name` (its replicas stop; calls on its handles fail); no-op if unknown."""
        app = self.apps.get(name)
        if app is None:
            return
        app.status = "DELETING"
        await self._teardown(app)
        self.apps.pop(name, None)

    async def _teardown(self, app: _App) -> None:
        gone = RayServeException(f"application {app.name!r} was deleted")
        for dep in app.deps.values():
            for task in list(dep.tasks):
                task.cancel()
            router = _handle._Home.routers.pop(dep.key, None)
            _handle._Home.latest.pop(dep.key, None)
            _handle._Home.gone[dep.key] = gone
            if router is not None:
                router.set_unavailable(gone)
            dep.replicas.set_target(0)
            self._reconcile(dep)
            for actor in dep.actors.values():  # none should be left; make sure
                _kill(actor)
            dep.actors.clear()
        for dep in app.deps.values():
            if dep.tasks:
                await asyncio.gather(*dep.tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        """Delete every app."""
        for name in list(self.apps):
            await self.delete(name)

    # -- replicas -----------------------------------------------------------------------------
    def _reconcile(self, dep: _Dep) -> None:
        loop = asyncio.get_running_loop()
        for action in dep.replicas.reconcile():
            if isinstance(action, StartReplica):
                task = loop.create_task(self._start_replica(dep, action.replica_id))
                dep.tasks.add(task)
                task.add_done_callback(dep.tasks.discard)
            elif isinstance(action, StopReplica):
                actor = dep.actors.pop(action.replica_id, None)
                if actor is not None:
                    _kill(actor)
                dep.replicas.stopped(action.replica_id)
        dep.changed.set()

    def _actor_class(self) -> Any:
        if self._replica_class is None:
            import runtime
            from runtime.serve.replica import ServeReplica

            self._replica_class = runtime.remote(ServeReplica)
        return self._replica_class

    async def _start_replica(self, dep: _Dep, replica_id: str) -> None:
        options = dict(dep.config.ray_actor_options)
        options.setdefault("num_cpus", 1)
        # room for the controller's probes and pushes beside max_ongoing_requests requests
        options["max_concurrency"] = dep.config.max_ongoing_requests + 2
        actor = None
        try:
            actor = (
                self._actor_class()
                .options(**options)
                .remote(
                    replica_id,
                    dep.app,
                    dep.name,
                    dep.deployment.func_or_class,
                    dep.args,
                    dep.kwargs,
                    dep.config.user_config,
                )
            )
            await actor.ready.remote()
        except asyncio.CancelledError:
            if actor is not None:
                _kill(actor)
            raise
        except Exception as exc:
            if actor is not None:
                _kill(actor)
            if dep.replicas.state(replica_id) == "STARTING":
                cause = getattr(exc, "cause", None) or exc
                dep.replicas.start_failed(replica_id, f"{type(cause).__name__}: {cause}")
                self._reconcile(dep)
            dep.changed.set()
            return
        if dep.replicas.state(replica_id) != "STARTING":  # stopped meanwhile
            _kill(actor)
            return
        dep.actors[replica_id] = actor
        dep.replicas.started(replica_id)
        self._push(dep)
        dep.changed.set()

    def on_replica_died(self, key: str, replica_id: str) -> None:
        """A router saw `replica_id` of deployment `key` die: replace it (serve loop)."""
        app_name, _, dep_name = key.partition("#")
        app = self.apps.get(app_name)
        dep = app.deps.get(dep_name) if app is not None else None
        if dep is None or replica_id not in dep.actors:
            return
        _kill(dep.actors.pop(replica_id))
        dep.replicas.died(replica_id)
        self._push(dep)
        self._reconcile(dep)

    async def _health_loop(self, dep: _Dep) -> None:
        period = dep.config.health_check_period_s
        timeout = dep.config.health_check_timeout_s
        while True:
            await asyncio.sleep(period)
            for rid, actor in list(dep.running().items()):
                try:
                    await asyncio.wait_for(_awaited(actor.check_health.remote()), timeout)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.on_replica_died(dep.key, rid)

    def _push(self, dep: _Dep) -> None:
        """Tell every router of `dep`'s replicas: the driver's and those in the app's replicas."""
        running = dep.running()
        _handle.update_replicas(dep.key, running)
        if dep.replicas.status() == UNHEALTHY:
            router = _handle._Home.routers.get(dep.key)
            if router is not None:
                router.set_unavailable(
                    DeploymentUnavailableError(dep.key, dep.replicas.last_error or "")
                )
        app = self.apps.get(dep.app)
        if app is None:
            return
        for other in app.deps.values():
            for actor in other.running().values():
                try:
                    actor.update_replicas.remote(dep.key, running)
                except Exception:
                    pass  # that replica died: its own death is handled when it is seen

    # -- status -------------------------------------------------------------------------------
    def status(self) -> ServeStatus:
        """Ray's ServeStatus of every app and deployment (serve loop)."""
        apps = {}
        for app in self.apps.values():
            deps = {}
            for dep in app.deps.values():
                counts = dep.replicas.counts()
                states = {k: v for k, v in counts.items() if v and k != "DEAD"}
                status = dep.replicas.status()
                if status == UNHEALTHY and app.status == "DEPLOY_FAILED":
                    status = "DEPLOY_FAILED"
                deps[dep.name] = DeploymentStatusOverview(
                    status=status,
                    replica_states=states,
                    message=dep.replicas.last_error or "" if status != HEALTHY else "",
                )
            app_status = app.status
            if app_status == "RUNNING" and any(d.status == UNHEALTHY for d in deps.values()):
                app_status = "UNHEALTHY"
            apps[app.name] = ApplicationStatusOverview(
                status=app_status,
                message=app.message,
                last_deployed_time_s=app.deployed_at,
                deployments=deps,
            )
        return ServeStatus(applications=apps)

    def ingress_of(self, name: str) -> _Dep | None:
        """App `name`'s ingress deployment (None when no such app runs)."""
        app = self.apps.get(name)
        if app is None or not app.ingress:
            return None
        return app.deps[app.ingress]


async def _awaited(ref: Any) -> Any:
    """``await ref`` as a coroutine (for ``wait_for``; a timeout cancels only this wait)."""
    return await ref


def _kill(actor: Any) -> None:
    import runtime

    try:
        runtime.kill(actor)
    except Exception:
        pass  # already gone, or the runtime is stopping
