"""Serve over HTTP with a real client: JSON, text, Response, routing, errors, batching, 503."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from runtime import serve

CPU0 = {"num_cpus": 0}


@serve.deployment(ray_actor_options=CPU0)
class Echo:
    async def __call__(self, request: Request):
        path = request.url.path
        if path.endswith("/text"):
            return f"hello {request.query_params.get('name', 'you')}"
        if path.endswith("/response"):
            return PlainTextResponse("made here", status_code=201, headers={"x-made": "yes"})
        if path.endswith("/boom"):
            raise RuntimeError("the model fell over")
        if path.endswith("/exit"):
            os._exit(1)
        body = await request.json()
        return {"got": body, "method": request.method, "root": request.scope["root_path"]}


@serve.deployment(ray_actor_options=CPU0)
class Other:
    def __call__(self, request: Request) -> dict:
        return {"app": "other", "path": request.url.path}


def test_json_text_response_and_errors(client: httpx.Client) -> None:
    serve.run(Echo.bind(), name="echo", route_prefix="/echo")
    r = client.post("/echo", json={"a": [1, 2]})
    assert r.status_code == 200 and r.json() == {
        "got": {"a": [1, 2]},
        "method": "POST",
        "root": "/echo",
    }
    r = client.get("/echo/text", params={"name": "ada"})
    assert r.status_code == 200 and r.text == "hello ada"
    assert r.headers["content-type"].startswith("text/plain")
    r = client.get("/echo/response")
    assert (r.status_code, r.text, r.headers["x-made"]) == (201, "made here", "yes")
    r = client.post("/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.text
    r = client.get("/echo/boom")
    assert r.status_code == 500 and "RuntimeError: the model fell over" in r.text
    assert client.post("/echo", json=1).json()["got"] == 1  # the replica keeps serving
    assert client.get("/nowhere").status_code == 404
    assert client.get("/-/routes").json() == {"/echo": "echo"}
    serve.delete("echo")
    assert client.post("/echo", json=1).status_code == 404


def test_longest_route_prefix_wins(client: httpx.Client) -> None:
    serve.run(Other.bind(), name="root", route_prefix="/")
    serve.run(Echo.bind(), name="api", route_prefix="/api")
    assert client.post("/api", json=5).json()["got"] == 5
    assert client.post("/api/x", json=6).json()["got"] == 6
    assert client.get("/apix").json() == {"app": "other", "path": "/apix"}
    assert client.get("/").json()["app"] == "other"
    serve.delete("api")
    serve.delete("root")


@serve.deployment(ray_actor_options=CPU0, max_ongoing_requests=16)
class Batched:
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    async def predict(self, xs: list[int]) -> list[dict]:
        return [{"y": 2 * x, "batch": len(xs)} for x in xs]

    async def __call__(self, request: Request) -> dict:
        return await self.predict(int(request.query_params["x"]))


def test_concurrent_requests_are_batched(serve_url: str) -> None:
    serve.run(Batched.bind(), name="batched", route_prefix="/b")

    async def burst() -> list[dict]:
        async with httpx.AsyncClient(base_url=serve_url, timeout=60) as c:
            rs = await asyncio.gather(*[c.get("/b", params={"x": i}) for i in range(16)])
        return [r.json() for r in rs]

    out = asyncio.run(burst())
    assert [o["y"] for o in out] == [2 * i for i in range(16)]
    assert max(o["batch"] for o in out) > 1
    assert all(o["batch"] <= 8 for o in out)
    serve.delete("batched")


@serve.deployment(ray_actor_options=CPU0, max_ongoing_requests=1, max_queued_requests=1)
class Slow:
    async def __call__(self, request: Request) -> str:
        await asyncio.sleep(1.0)
        return "passed"


def test_full_queue_answers_503(serve_url: str) -> None:
    serve.run(Slow.bind(), name="slow", route_prefix="/slow")

    async def flood() -> tuple[httpx.Response, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=serve_url, timeout=60) as c:
            # one runs, one waits in the queue, the others are dropped at once
            waiting = [asyncio.ensure_future(c.get("/slow")) for _ in range(4)]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result(), await asyncio.gather(*waiting)

    first, all_ = asyncio.run(flood())
    assert first.status_code == 503 and "backpressure" in first.text
    codes = sorted(r.status_code for r in all_)
    assert set(codes) == {200, 503} and codes.count(200) >= 2
    serve.delete("slow")


def test_dead_replica_fails_its_requests_and_is_replaced(client: httpx.Client) -> None:
    serve.run(Echo.options(health_check_period_s=0.2).bind(), name="mortal", route_prefix="/mortal")
    r = client.get("/mortal/exit")
    assert r.status_code == 500 and "died while handling the request" in r.text
    # the replacement answers (requests wait in the queue until it runs)
    r = client.post("/mortal", json="again")
    assert r.status_code == 200 and r.json()["got"] == "again"
    st = serve.status().applications["mortal"].deployments["Echo"]
    assert st.status == "HEALTHY" and st.replica_states == {"RUNNING": 1}
    serve.delete("mortal")


def kill_unnoticed(app: str, dep: str) -> None:
    """Kill the app's one replica behind Serve's back and wait until the runtime knows."""
    import runtime
    from runtime.exceptions import ActorDiedError
    from runtime.serve import api

    (actor,) = api._serve.controller.apps[app].deps[dep].actors.values()
    runtime.kill(actor)
    with pytest.raises(ActorDiedError):
        runtime.get(actor.check_health.remote(), timeout=60)


def test_request_that_never_reached_a_dead_replica_is_retried(client: httpx.Client) -> None:
    # Ray Serve retries a request no replica accepted; one a replica died running fails
    serve.run(Echo.bind(), name="retried", route_prefix="/retried")
    assert client.post("/retried", json=0).status_code == 200
    kill_unnoticed("retried", "Echo")
    r = client.post("/retried", json="after")  # sent to the dead one, then to its replacement
    assert r.status_code == 200 and r.json()["got"] == "after"
    serve.delete("retried")


def test_replica_failing_health_check_is_replaced(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=CPU0, health_check_period_s=0.1, health_check_timeout_s=5)
    class Flaky:
        def __init__(self) -> None:
            self.sick = False

        def check_health(self) -> None:
            if self.sick:
                raise RuntimeError("unwell")

        def __call__(self, sick: bool) -> str:
            self.sick = self.sick or sick  # once sick, it stays sick
            return serve.get_replica_context().replica_id

    h = serve.run(Flaky.bind(), name="flaky", route_prefix=None)
    first = h.remote(True).result()
    # the sick replica is killed and replaced; calls meanwhile wait for the new one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            now = h.remote(False).result(timeout_s=60)
        except Exception as exc:  # the sick replica died with the call on it
            assert "died" in str(exc)
            continue
        if now != first:
            break
    assert now != first and now.startswith("flaky#Flaky#")
    serve.delete("flaky")


@pytest.mark.parametrize("body", [b"", b"[1, 2"])
def test_bad_bodies_are_400(client: httpx.Client, body: bytes) -> None:
    serve.run(Echo.bind(), name="bodies", route_prefix="/bodies")
    assert client.post("/bodies", content=body).status_code == 400
    serve.delete("bodies")
