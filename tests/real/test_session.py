"""`NodeLike`: the driver's Node and a worker's WorkerClient both offer everything it declares."""

from __future__ import annotations

import inspect

import pytest

from runtime._session import NodeLike, session_node
from runtime.real.node import Node
from runtime.real.worker_client import WorkerClient

_METHODS = sorted(
    name for name, value in vars(NodeLike).items() if inspect.isfunction(value) and name[0] != "_"
)
_DATA = sorted(NodeLike.__annotations__)


def test_the_protocol_declares_the_api_surface() -> None:
    assert {"submit", "get", "put", "future_of", "reduce_ref", "adopt_ref"} <= set(_METHODS)
    assert {"session", "closed", "in_worker"} <= set(_DATA)


@pytest.mark.parametrize("cls", [Node, WorkerClient])
@pytest.mark.parametrize("name", _METHODS)
def test_both_nodes_implement_each_method(cls: type, name: str) -> None:
    impl = getattr(cls, name, None)
    assert callable(impl), f"{cls.__name__} lacks {name}()"
    wanted = [p for p in inspect.signature(getattr(NodeLike, name)).parameters][1:]
    got = [p for p in inspect.signature(impl).parameters][1:]
    assert got[: len(wanted)] == wanted, f"{cls.__name__}.{name}{got} != {wanted}"


def test_in_worker_tells_them_apart() -> None:
    assert Node.in_worker is False
    assert WorkerClient.in_worker is True


def test_no_session_node_outside_a_session() -> None:
    import runtime as ray

    if ray.is_initialized():
        pytest.skip("a session is running in this process")
    assert session_node() is None
