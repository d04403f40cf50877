"""The core must stay sans-I/O: no clock, threads, processes, sockets, files, SimPy or global randomness."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "runtime" / "core"

FORBIDDEN_MODULES = {
    "asyncio", "concurrent", "datetime", "io", "mmap", "multiprocessing", "os", "pathlib",
    "random", "select", "selectors", "shutil", "signal", "simpy", "socket", "subprocess",
    "sys", "tempfile", "threading", "time", "uuid",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "print", "input", "hash"}


def _violations(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            mods = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""]
        else:
            mods = []
        for mod in mods:
            if mod.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{name}:{node.lineno}: imports {mod}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{name}:{node.lineno}: calls {node.func.id}()")
    return found


def test_core_imports_nothing_that_does_io_or_reads_the_clock() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert files, "runtime/core has no modules?"
    problems = [v for f in files for v in _violations(f.read_text(), str(f.relative_to(CORE)))]
    assert problems == []


def test_the_checker_catches_forbidden_imports() -> None:
    bad = "import time\nfrom threading import Thread\nimport random\nx = open('f')\n"
    assert len(_violations(bad, "bad.py")) == 4
    assert _violations("from runtime.core.ids import object_id\n", "ok.py") == []
