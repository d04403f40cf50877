"""Starting Serve's HTTP proxy leaves the program's logging alone.

uvicorn's default configuration (``logging.config.dictConfig``) shuts every existing
handler down first; a handler that closes its stream then (absl's, once TensorFlow or JAX
is imported) closed whatever it wrote to: in the test suite, pytest's capture.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

import runtime
from runtime import serve
from tests.serve.conftest import free_port


class _ClosingHandler(logging.StreamHandler):
    """A handler that closes its stream when it is closed (as absl's does)."""

    def close(self) -> None:
        self.stream.close()
        super().close()


@pytest.fixture
def handler() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    stream = io.StringIO()
    handler = _ClosingHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler, stream
    root.removeHandler(handler)


def test_starting_the_proxy_keeps_the_programs_handlers_and_streams(
    handler: tuple[logging.Handler, io.StringIO],
) -> None:
    installed, stream = handler
    runtime.init(num_cpus=1)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        assert installed in logging.getLogger().handlers and not stream.closed
        logging.getLogger("twinray.test").warning("still here")
        assert "still here" in stream.getvalue()
    finally:
        serve.shutdown()
        runtime.shutdown()
