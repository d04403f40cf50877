"""Hosts read only the core's declared public interface (``runtime.core.interface``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.interface import PUBLIC
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from tests.core.fake_host import FakeHost

ROOT = Path(__file__).resolve().parents[2]

NAMES = {
    "raylet": "Raylet",
    "gcs": "Gcs",
    "owner": "Owner",
    "global_scheduler": "GlobalScheduler",
    "gs": "GlobalScheduler",
}
"""A name (variable or attribute) bound to a core component in host code, by convention."""

PLURALS = {"raylets": "Raylet", "owners": "Owner", "gcs_shards": "Gcs"}
"""Collections of components: their items (subscripts, loop variables) are components."""

NOT_COMPONENTS = frozenset({"snap.owners"})
"""Expressions named like a collection of components that hold something else."""


def _last_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _collection_kind(node: ast.AST) -> str | None:
    """The component kind of the items of ``node`` (``x.raylets``, ``owners.values()``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("values", "copy") or node.func.attr == "items":
            return _collection_kind(node.func.value)
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in ("list", "sorted", "tuple", "reversed") and node.args:
            return _collection_kind(node.args[0])
        return None
    if ast.unparse(node) in NOT_COMPONENTS:
        return None
    name = _last_name(node)
    return PLURALS.get(name) if name is not None else None


class _Scan(ast.NodeVisitor):
    """Collects ``(line, kind, attribute)`` for every attribute read on a component."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}
        self.found: list[tuple[int, str, str]] = []

    def _bind(self, target: ast.AST, kind: str | None, items: bool) -> None:
        if kind is None:
            return
        if isinstance(target, ast.Name):
            self.bound[target.id] = kind
        elif items and isinstance(target, ast.Tuple) and target.elts:
            self._bind(target.elts[-1], kind, False)  # `for addr, owner in x.items()`

    def visit_Assign(self, node: ast.Assign) -> None:
        kind = self._kind(node.value)
        for target in node.targets:
            self._bind(target, kind, False)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._bind(node.target, _collection_kind(node.iter), True)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._bind(node.target, _collection_kind(node.iter), True)
        self.generic_visit(node)

    def _kind(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Subscript):
            return _collection_kind(node.value)
        name = _last_name(node)
        if name is None:
            return None
        if isinstance(node, ast.Name) and name in self.bound:
            return self.bound[name]
        return NAMES.get(name)

    def visit_Call(self, node: ast.Call) -> None:
        func, args = node.func, node.args
        if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr") and len(args) >= 2:
            kind = self._kind(args[0])
            if kind is not None and isinstance(args[1], ast.Constant):
                self.found.append((node.lineno, kind, str(args[1].value)))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        kind = self._kind(node.value)
        if kind is not None:
            self.found.append((node.lineno, kind, node.attr))
        self.generic_visit(node)


def violations(source: str, name: str) -> list[str]:
    """Attribute reads on core components in ``source`` that are not declared public."""
    scan = _Scan()
    scan.visit(ast.parse(source, name))
    return [
        f"{name}:{line}: {kind}.{attr} is not in the public interface of {kind}"
        for line, kind, attr in scan.found
        if attr not in PUBLIC[kind]
    ]


def _host_files() -> list[Path]:
    files = sorted((ROOT / "sim").rglob("*.py")) + sorted((ROOT / "twin").rglob("*.py"))
    files += [p for p in sorted((ROOT / "runtime").rglob("*.py")) if "core" not in p.parts]
    return files


def test_hosts_touch_only_public_attributes_of_core_components() -> None:
    files = _host_files()
    assert len(files) > 20, "no host modules found?"
    problems = [v for f in files for v in violations(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


def test_the_checker_catches_internal_reads() -> None:
    bad = (
        "def f(node, sim):\n"
        "    node.raylet.running.values()\n"
        "    x = self.gcs.actors\n"
        "    for r in sim.raylets:\n"
        "        r.waiting\n"
        "    for addr, owner in sorted(view.owners.items()):\n"
        "        owner.pending\n"
        "    sim.raylets[0].blocked\n"
        "    old = sim.raylets[1]\n"
        "    old.waited\n"
        "    getattr(raylet, 'actors', {})\n"
    )
    found = violations(bad, "bad.py")
    assert len(found) == 7, found
    assert "Raylet.running" in found[0]
    ok = "def f(node):\n    node.raylet.handle(1, 0.0, [])\n    node.owner.submit\n"
    assert violations(ok, "ok.py") == []


CLASSES = {"Raylet": Raylet, "Gcs": Gcs, "Owner": Owner, "GlobalScheduler": GlobalScheduler}


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_every_declared_name_exists(kind: str) -> None:
    host = FakeHost(nodes=1)
    instance = {
        "Raylet": host.raylets[0],
        "Gcs": host.gcs,
        "Owner": host.owners[0],
        "GlobalScheduler": host.gs,
    }[kind]
    assert PUBLIC[kind], f"{kind} declares no public interface"
    missing = sorted(n for n in PUBLIC[kind] if not hasattr(instance, n))
    assert missing == []
    assert isinstance(instance, CLASSES[kind])
