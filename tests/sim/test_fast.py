"""The compiled simulator's loader (`sim.fast`): a stale build is never used; compiled = pure.

Nothing here compiles (a build takes minutes): the loader is tested on a fake source tree
with placeholder extension files, and when a real build of the current source exists
(``python -m sim.build_fast``) a small scenario runs compiled and pure and must write the
same metrics.json byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim import fast

ROOT = Path(__file__).resolve().parents[2]


def _fake_tree(root: Path) -> None:
    """A source tree shaped like the real one: two core modules and the compiled sim ones."""
    for rel in ("runtime/core/__init__.py", "runtime/core/messages.py", "runtime/core/zz_new.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    for name in fast.SIM_COMPILED:
        path = fast.module_path(name, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {name}\n")


def _fake_build(root: Path, cache: Path) -> Path:
    """Placeholder extension files and a manifest for the tree's current digest."""
    digest = fast.source_digest(root)
    where = cache / digest
    files = {}
    for name in fast.compiled_modules(root):
        rel = name.replace(".", "/") + ".so"
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_bytes(b"")
        files[name] = rel
    (where / fast.MANIFEST).write_text(json.dumps({"digest": digest, "files": files}))
    return where


def test_loader_finds_only_a_complete_build_of_the_current_source(tmp_path, monkeypatch):
    monkeypatch.delenv(fast.PURE_ENV, raising=False)
    root, cache = tmp_path / "src", tmp_path / "cache"
    _fake_tree(root)
    assert fast.compiled_modules(root) == [
        "runtime.core.messages",
        "runtime.core.zz_new",
        *fast.SIM_COMPILED,
    ]
    assert fast.find_build(root, cache) is None
    where = _fake_build(root, cache)
    found = fast.find_build(root, cache)
    assert found is not None and found.files["runtime.core.zz_new"].is_file()

    (where / "runtime/core/zz_new.so").unlink()  # incomplete: refused
    assert fast.find_build(root, cache) is None
    (where / "runtime/core/zz_new.so").write_bytes(b"")

    # the source changes (even a module that is not compiled): the build is stale
    (root / "sim" / "report.py").write_text("# edited\n")
    assert fast.find_build(root, cache) is None
    assert fast.enable(root, cache) == fast.Status(
        False, "pure Python (no build of this source: python -m sim.build_fast)"
    )
    _fake_build(root, cache)
    assert fast.find_build(root, cache) is not None

    # a module of the build already imported interpreted: the pure Python stays
    import runtime.core.messages  # noqa: F401

    status = fast.enable(root, cache)
    assert not status.compiled and "runtime.core.messages was imported" in status.reason
    assert fast.active() is None
    monkeypatch.setenv(fast.PURE_ENV, "1")
    assert fast.enable(root, cache).reason == f"pure Python ({fast.PURE_ENV} is set)"


SCENARIOS = ["chain.yaml", "fault_node.yaml", "placement_groups.yaml", "actors.yaml"]
"""Small shipped scenarios over the compiled paths: tasks, faults, placement groups, actors."""

RUN = """
import sys
from pathlib import Path
from sim import fast
status = fast.enable()
print(status.reason)
from sim.metrics import write_json
from sim.runner import build
from sim.scenario import load_scenario
out = Path(sys.argv[1])
for name in sys.argv[2:]:
    write_json(out / (name + ".json"), build(load_scenario("scenarios/" + name)).run())
"""


def _metrics(out: Path, pure: bool) -> dict[str, bytes]:
    """Each scenario's metrics.json bytes, from a fresh process compiled or `pure`."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop(fast.PURE_ENV, None)
    if pure:
        env[fast.PURE_ENV] = "1"
    out.mkdir()
    cmd = [sys.executable, "-c", RUN, str(out), *SCENARIOS]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("pure Python" if pure else "compiled"), proc.stdout[:200]
    return {name: (out / (name + ".json")).read_bytes() for name in SCENARIOS}


@pytest.mark.skipif(fast.find_build() is None, reason="no compiled build of this source")
def test_compiled_and_pure_write_identical_metrics(tmp_path):
    compiled = _metrics(tmp_path / "compiled", pure=False)
    assert compiled == _metrics(tmp_path / "pure", pure=True)


def test_without_a_compiler_the_build_says_so_in_one_line(monkeypatch, capsys):
    from sim import build_fast

    monkeypatch.setattr(build_fast.shutil, "which", lambda name: None)
    assert "no C compiler found" in (build_fast.toolchain_problem() or "")
    with pytest.raises(build_fast.ToolchainMissing):
        build_fast.build()
    assert build_fast.main([]) == build_fast.EXIT_NO_TOOLCHAIN
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "the simulator runs as pure Python" in out[0]


def test_the_summary_says_which_simulator_ran(tmp_path, capsys):
    from sim.cli import main

    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "small_independent.yaml"
    assert main([str(scenario), "--no-progress", "--out", str(tmp_path)]) == 0
    # No build is enabled inside pytest (only `python -m sim.cli` / `run-scenario` enable one).
    assert fast.active() is None
    assert "simulator           pure Python" in capsys.readouterr().out
