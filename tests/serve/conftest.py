"""Serve tests: one runtime and one Serve (proxy on a free port) per test module."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
pytest.importorskip("starlette", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx", reason="the test extra is not installed")

import runtime  # noqa: E402
from runtime import serve  # noqa: E402


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """Runtime (2 CPUs) and Serve running for the module; the proxy's base URL."""
    runtime.init(num_cpus=2)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    runtime.shutdown()


@pytest.fixture
def client(serve_url: str) -> Iterator[httpx.Client]:
    """An httpx client on the proxy (generous timeout: the machine may be loaded)."""
    with httpx.Client(base_url=serve_url, timeout=60) as c:
        yield c
