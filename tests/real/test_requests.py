"""The worker request protocol (`runtime.real.requests`): one description, used by both sides."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import runtime as ray
from runtime.api import _current_node
from runtime.real import requests as rq

REAL = Path(rq.__file__).parent


def _constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(rq).items()
        if name.isupper() and isinstance(value, str) and name in rq.__all__
    }


def test_every_op_constant_is_described_once() -> None:
    names = set(_constants().values())
    assert names == set(rq.OPS)
    for op in rq.OPS.values():
        assert op.fields and op.reply and op.doc, op.name


def _op_arguments() -> list[tuple[str, int, ast.expr]]:
    """The op argument of every request call in runtime/real: (file, line, expression)."""
    found = []
    for path in sorted(REAL.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr, args = node.func.attr, node.args
            if attr in ("request", "request_async") and args:
                # p.request(req_id, op, payload) / client.request(op, payload)
                op = (
                    args[1]
                    if isinstance(node.func.value, ast.Name) and node.func.value.id == "p"
                    else args[0]
                )
                found.append((path.name, node.lineno, op))
    return found


def test_senders_name_ops_through_the_constants() -> None:
    calls = _op_arguments()
    assert len(calls) > 20
    for filename, line, op in calls:
        if isinstance(op, ast.Name) and op.id == "op":
            continue  # a forwarding helper (`request(op, ...)`)
        assert isinstance(op, ast.Attribute) and isinstance(op.value, ast.Name), (filename, line)
        assert op.value.id == "rq" and op.attr in _constants(), (filename, line, ast.dump(op))


@ray.remote
def _gen(n):
    yield from range(n)


@ray.remote(num_returns="dynamic")
def _dyn(n):
    for i in range(n):
        yield i * 3


@ray.remote
class _Streamer:
    def items(self, n):
        for i in range(n):
            yield f"item-{i}"


@ray.remote
def _consume_all(streamer, n):
    streaming = [ray.get(r) for r in _gen.remote(n)]
    dynamic = [ray.get(r) for r in ray.get(_dyn.remote(n))]
    method = [ray.get(r) for r in streamer.items.remote(n)]
    return streaming, dynamic, method


@pytest.fixture(scope="module")
def node():
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    yield _current_node()
    ray.shutdown()


def test_the_node_answers_exactly_the_described_ops(node) -> None:
    assert set(node.nested.request_ops) == set(rq.OPS)


def test_generator_submissions_from_a_worker_go_through_submit_and_call_actor(node) -> None:
    streamer = _Streamer.remote()
    streaming, dynamic, method = ray.get(_consume_all.remote(streamer, 3), timeout=60)
    assert streaming == [0, 1, 2]
    assert dynamic == [0, 3, 6]
    assert method == ["item-0", "item-1", "item-2"]
