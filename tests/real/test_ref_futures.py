"""`ObjectRef.future()` at the edges of a session: a pending future fails at shutdown."""

from __future__ import annotations

import time

import pytest

import runtime as ray

WAIT = 60.0


def test_a_future_pending_at_shutdown_fails_instead_of_hanging() -> None:
    ray.init(num_cpus=1)
    try:

        @ray.remote
        def slow():
            time.sleep(WAIT)

        fut = slow.remote().future()
        assert not fut.done()
    finally:
        ray.shutdown()
    with pytest.raises(ray.RayError):
        fut.result(timeout=WAIT)


def test_future_outside_a_session_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="session"):
        ray.ObjectRef(1, None).future()
