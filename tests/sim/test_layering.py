"""The simulated world's layering: no import cycle inside `sim/`, nothing from real workers.

An AST reading of every module under `sim/`, lazy imports inside functions included
(imports under `if TYPE_CHECKING:` never run and are left out). An import of `a.b.c`
runs `a`, `a.b` and `a.b.c`, so the graph has an edge to each package on the way
(but none from a module to the packages above it: they run before it, not because of it).
`sim/` may use the control plane (`runtime.core`) but not the real runtime: not
`runtime` itself (the Ray-style API), `runtime.real`, the twin harness, nor modules
that start processes. Running scenarios on real workers lives in `twin/`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]

BANNED = ("runtime.real", "twin", "multiprocessing", "subprocess", "concurrent.futures")
"""Module prefixes `sim/` must not import: the real runtime, the harness, process starters."""

ALLOWED = {
    ("sim.sweep", "concurrent.futures"): "sweep points are simulations run in a pool",
    ("sim.build_fast", "subprocess"): "runs mypyc (and the C compiler) on the sources",
}
"""(importer, banned prefix) pairs allowed, with the reason: no real worker is involved."""


def module_name(path: Path, root: Path) -> str:
    """`sim/scenario/models.py` -> `sim.scenario.models`; a package's `__init__` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an `if` test is `TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of `tree` except those under `if TYPE_CHECKING:` (the `else` branch stays)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_names(path: Path, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(dotted module name, line) of everything `path` imports, at any depth, lazily or not.

    `from a import b` yields `a.b` (b may be a submodule or a name; either way `a` runs);
    relative imports are resolved against `module`.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[str, int]] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _executed(name: str) -> list[str]:
    """The modules that importing `name` runs: each package on the way, then `name`."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _is_ancestor_or_self(package: str, name: str) -> bool:
    """Whether `package` is `name` or a package above it: already running when `name` runs."""
    return name == package or name.startswith(package + ".")


def import_graph(package: Path) -> tuple[nx.DiGraph, dict[str, list[tuple[str, int]]]]:
    """The graph of imports among the modules of `package`, and every module's imports."""
    root = package.parent
    paths = {module_name(p, root): p for p in sorted(package.rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(paths)
    imports: dict[str, list[tuple[str, int]]] = {}
    for name, path in paths.items():
        imports[name] = imported_names(path, name, path.name == "__init__.py")
        for target, _ in imports[name]:
            for executed in _executed(target):
                if executed in paths and not _is_ancestor_or_self(executed, name):
                    graph.add_edge(name, executed)
    return graph, imports


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The strongly connected sets of more than one module (each one is an import cycle)."""
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def _banned(target: str) -> str | None:
    """The banned prefix `target` falls under, if any (`runtime` alone is the real API)."""
    for prefix in BANNED:
        if target == prefix or target.startswith(prefix + "."):
            return prefix
    if target == "runtime" or (target.startswith("runtime.") and target.split(".")[1] != "core"):
        return "runtime (the real API)"
    return None


def forbidden_imports(imports: dict[str, list[tuple[str, int]]]) -> list[str]:
    """`module:line imports target` for every import outside what `sim/` may use."""
    problems = []
    for module, targets in sorted(imports.items()):
        for target, line in targets:
            prefix = _banned(target)
            if prefix is not None and (module, prefix) not in ALLOWED:
                problems.append(f"{module}:{line} imports {target} ({prefix})")
    return sorted(set(problems))


# --- the checks on sim/ ---------------------------------------------------------------------


def test_no_import_cycle_inside_sim() -> None:
    graph, _ = import_graph(ROOT / "sim")
    assert len(graph) > 20, "the sim package was not found"
    assert cycles(graph) == []


def test_sim_imports_nothing_that_runs_real_workers() -> None:
    _, imports = import_graph(ROOT / "sim")
    assert forbidden_imports(imports) == []


def test_importing_every_sim_module_loads_no_real_runtime() -> None:
    """The same, at run time: no module of the real runtime or the harness gets loaded."""
    names = sorted(module_name(p, ROOT) for p in (ROOT / "sim").rglob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('runtime.real', 'twin'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the checker itself finds what it must ---------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A package `pkg` whose modules tests fill in."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    return tmp_path / "pkg"


def test_the_checker_sees_a_lazy_cycle_through_a_package_init(fake: Path) -> None:
    (fake / "sub").mkdir()
    (fake / "sub" / "__init__.py").write_text("from .inner import X\n")
    (fake / "sub" / "inner.py").write_text("from pkg import leaf\nX = 1\n")
    (fake / "leaf.py").write_text("def f():\n    from pkg.sub.inner import X\n    return X\n")
    graph, _ = import_graph(fake)
    assert cycles(graph) == [["pkg.leaf", "pkg.sub", "pkg.sub.inner"]]


def test_the_checker_skips_type_checking_imports(fake: Path) -> None:
    (fake / "a.py").write_text("import pkg.b\n")
    (fake / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    graph, _ = import_graph(fake)
    assert cycles(graph) == []


def test_the_checker_names_forbidden_imports(fake: Path) -> None:
    (fake / "a.py").write_text(
        "import runtime.core.ids\n"
        "from runtime.core import task\n"
        "from runtime import core\n"
        "def run():\n"
        "    import runtime as ray\n"
        "    from runtime.real import node\n"
        "    import multiprocessing.pool\n"
        "    from twin.real_mode import run_real\n"
        "    from subprocess import run\n"
    )
    _, imports = import_graph(fake)
    assert forbidden_imports(imports) == [
        "pkg.a:5 imports runtime (runtime (the real API))",
        "pkg.a:6 imports runtime.real.node (runtime.real)",
        "pkg.a:7 imports multiprocessing.pool (multiprocessing)",
        "pkg.a:8 imports twin.real_mode.run_real (twin)",
        "pkg.a:9 imports subprocess.run (subprocess)",
    ]
