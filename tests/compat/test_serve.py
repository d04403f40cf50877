"""Serve's handle API: the same programs under twinray's Serve and, opt-in, Ray Serve 2.60."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from types import ModuleType

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

CPU0 = {"num_cpus": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(ray_started: ModuleType) -> Iterator[ModuleType]:
    """`runtime.serve` or `ray.serve`, started with its proxy on a free port."""
    module = importlib.import_module(f"{ray_started.__name__}.serve")
    module.start(http_options={"host": "127.0.0.1", "port": _free_port()})
    yield module
    module.shutdown()


def test_handles_methods_composition_status_errors(serve: ModuleType) -> None:
    @serve.deployment(num_replicas=2, ray_actor_options=CPU0)
    class Adder:
        def __init__(self, k: int) -> None:
            self.k = k

        def __call__(self, x: int) -> int:
            return x + self.k

        async def twice(self, x: int) -> int:
            return 2 * x

    @serve.deployment(ray_actor_options=CPU0)
    class Front:
        def __init__(self, adder) -> None:
            self.adder = adder

        async def __call__(self, x: int) -> int:
            return await self.adder.twice.remote(self.adder.remote(x))

        def name(self) -> str:
            return "front"

    h = serve.run(Front.bind(Adder.bind(10)), name="calc", route_prefix=None)
    assert h.remote(1).result(timeout_s=60) == 22
    assert h.name.remote().result() == "front"
    assert h.options(method_name="name").remote().result() == "front"
    st = serve.status().applications["calc"]
    assert st.status == "RUNNING" and str(st.status) == "ApplicationStatus.RUNNING"
    assert {n: str(d.status).split(".")[-1] for n, d in st.deployments.items()} == {
        "Front": "HEALTHY",
        "Adder": "HEALTHY",
    }
    adder = serve.get_deployment_handle("Adder", app_name="calc")
    assert adder.remote(1).result() == 11
    assert adder.twice.remote(adder.remote(0)).result() == 20
    assert serve.get_app_handle("calc").remote(0).result() == 20
    serve.delete("calc")
    assert "calc" not in serve.status().applications

    @serve.deployment(ray_actor_options=CPU0)
    def checked(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 3

    h = serve.run(checked.bind(), name="fn", route_prefix=None)
    assert h.remote(2).result() == 6
    with pytest.raises(ValueError, match="negative"):
        h.remote(-1).result()
    assert h.remote(3).result() == 9  # still serving


def test_batched_handle_calls_and_refusals(serve: ModuleType) -> None:
    @serve.deployment(ray_actor_options=CPU0, max_ongoing_requests=16)
    class Model:
        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.5)
        async def __call__(self, xs: list[int]) -> list[tuple[int, int]]:
            return [(2 * x, len(xs)) for x in xs]

    h = serve.run(Model.bind(), name="batched", route_prefix=None)
    responses = [h.remote(i) for i in range(8)]
    out = [r.result(timeout_s=60) for r in responses]
    assert [y for y, _ in out] == [2 * i for i in range(8)]
    assert max(n for _, n in out) > 1 and all(n <= 4 for _, n in out)

    @serve.deployment(ray_actor_options=CPU0)
    class M:
        def __call__(self) -> int:
            return 1

    with pytest.raises(RuntimeError):
        M()
    with pytest.raises(Exception, match="does not exist"):
        serve.get_app_handle("no-such-app")
