"""Serve's options, refusals, failed deploys and clean shutdown (no leaked thread or port)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

import runtime
from runtime import serve
from runtime.exceptions import InvalidOptionError
from runtime.serve.api import _check_http_options
from runtime.serve.exceptions import RayServeException, ServeOptionNotSupportedError

from .conftest import free_port


class Model:
    def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize(
    "options",
    [
        {"autoscaling_config": {"min_replicas": 1}},
        {"num_replicas": "auto"},
        {"placement_group_bundles": [{"CPU": 1}]},
        {"graceful_shutdown_timeout_s": 5},
        {"version": "2"},
    ],
)
def test_refused_deployment_options(options: dict) -> None:
    with pytest.raises(ServeOptionNotSupportedError):
        serve.deployment(**options)(Model)
    with pytest.raises(ServeOptionNotSupportedError):
        serve.deployment(Model).options(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"num_replicas": -1},
        {"max_ongoing_requests": 0},
        {"max_queued_requests": -5},
        {"ray_actor_options": {"num_cpu": 1}},
        {"ray_actor_options": "cpu"},
        {"health_check_period_s": 0},
        {"no_such_option": 1},
    ],
)
def test_bad_deployment_options(options: dict) -> None:
    with pytest.raises(InvalidOptionError):
        serve.deployment(**options)(Model)


def test_other_refusals_and_misuse() -> None:
    with pytest.raises(InvalidOptionError):
        serve.batch(max_batch_size=0)
    with pytest.raises(ServeOptionNotSupportedError):
        serve.batch(batch_size_fn=len)
    with pytest.raises(ServeOptionNotSupportedError, match="async"):
        serve.batch(lambda xs: xs)
    d = serve.deployment(Model)
    with pytest.raises(RuntimeError, match="bind"):
        d(1)
    with pytest.raises(TypeError, match="application"):
        serve.run(d)
    with pytest.raises(ServeOptionNotSupportedError):
        serve.run(d.bind(), logging_config={"level": "DEBUG"})
    with pytest.raises(InvalidOptionError):
        serve.run(d.bind(), route_prefix="no-slash")
    with pytest.raises(ServeOptionNotSupportedError):
        serve.start(grpc_options={"port": 9000})
    with pytest.raises(ServeOptionNotSupportedError):
        serve.start(http_options={"request_timeout_s": 3})
    handle = serve.DeploymentHandle("Model", "default")
    with pytest.raises(ServeOptionNotSupportedError):
        handle.options(stream=True)
    with pytest.raises(InvalidOptionError):
        handle.options(bogus=1)
    with pytest.raises(RayServeException, match="not running"):
        handle.remote(1)
    with pytest.raises(RayServeException, match="only be called from within"):
        serve.get_replica_context()
    assert serve.status().applications == {}


def test_default_http_options_are_rays() -> None:
    assert _check_http_options(None, None) == ("127.0.0.1", 8000, True)
    assert _check_http_options({"port": 0, "host": "0.0.0.0"}, None) == ("0.0.0.0", 0, True)
    assert _check_http_options(None, "Disabled")[2] is False
    with pytest.raises(InvalidOptionError):
        _check_http_options({"port": 70000}, None)


def test_batch_works_on_plain_asyncio_functions() -> None:
    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.5)
    async def sizes(xs: list[int]) -> list[int]:
        return [len(xs)] * len(xs)

    async def main() -> list[int]:
        return await asyncio.gather(*[sizes(i) for i in range(10)])

    assert asyncio.run(main()) == [4] * 8 + [2] * 2

    @serve.batch(max_batch_size=2, batch_wait_timeout_s=5.0)
    async def wrong(xs: list[int]) -> list[int]:
        return xs[:1]

    async def bad() -> None:
        await asyncio.gather(*[wrong(i) for i in range(2)])

    with pytest.raises(RayServeException, match="preserve batch size"):
        asyncio.run(bad())


def _serve_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "twinray-serve"]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_failed_deploy_and_shutdown_through_runtime_leave_nothing() -> None:
    runtime.init(num_cpus=2)
    try:
        port = free_port()
        serve.start(http_options={"port": port})
        assert not _port_is_free(port)

        @serve.deployment(ray_actor_options={"num_cpus": 0}, max_constructor_retry_count=2)
        class Broken:
            def __init__(self) -> None:
                raise ValueError("no weights file")

        with pytest.raises(RayServeException, match="no weights file"):
            serve.run(Broken.bind(), name="broken", route_prefix="/broken")
        assert serve.status().applications["broken"].status == "DEPLOY_FAILED"

        ok = serve.run(serve.deployment(Model, ray_actor_options={"num_cpus": 0}).bind())
        assert ok.remote(7).result() == 7
        with pytest.raises(RayServeException, match="is being used"):
            serve.run(serve.deployment(Model).bind(), name="second", route_prefix="/")
        # serve.shutdown frees the port and the thread; Serve starts again on the same port
        serve.shutdown()
        assert _serve_threads() == [] and _port_is_free(port)
        serve.start(http_options={"port": port})
        again = serve.run(serve.deployment(Model, ray_actor_options={"num_cpus": 0}).bind())
        assert again.remote(8).result() == 8
    finally:
        runtime.shutdown()  # stops Serve first: its thread, proxy and replicas
    assert _serve_threads() == []
    assert _port_is_free(port)
    assert serve.status().applications == {}


def test_imports_stay_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runtime; assert 'runtime.serve' not in sys.modules; "
        "from runtime import serve; "
        "heavy = [m for m in ('starlette', 'uvicorn', 'httpx') if m in sys.modules]; "
        "assert not heavy, heavy; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
