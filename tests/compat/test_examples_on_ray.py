"""The README's and the notebooks' real-mode examples run unchanged on Ray, imports rewritten.

The first two tests run by default and need no Ray: every example that needs twinray-only
code is tagged `# twinray-only: <reason>` (else its rewrite for Ray fails), and the README's
"What carries over to Ray" lists exactly the tagged ones. The others run each untagged
README block (a program of its own: it starts and stops its own Ray) and each notebook
(one Ray per notebook, its tagged cells left out) on real Ray 2.60; like the other Ray
variants they run only with `TWINRAY_COMPAT_RAY=1` and Ray installed (the `peers` extra),
`RAY_ADDRESS=local` so that each starts a fresh local Ray whatever else runs here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.examples import (
    NOTEBOOKS,
    README,
    Example,
    UnmappedImportError,
    carry_over_list,
    expected_output,
    notebook_cells,
    notebook_paths,
    readme_examples,
    to_ray,
)

RAY_STARTUP_TIMEOUT = "The current node timed out during startup"
"""Ray 2.60 gives its raylet a fixed 30 s to register; on an overloaded machine it may not."""


def _all_examples() -> list[Example]:
    return readme_examples() + [c for p in notebook_paths() for c in notebook_cells(p)]


def test_every_example_that_needs_twinray_is_tagged() -> None:
    untagged = [e for e in _all_examples() if not e.twinray_only]
    assert len(untagged) >= 20  # the README's blocks and the notebooks' cells were found
    for example in untagged:
        code = to_ray(example)  # raises UnmappedImportError naming the example
        assert "import runtime" not in code and "from runtime" not in code, example.where


def test_the_rewrite_changes_imports_only() -> None:
    code = (
        "import runtime as ray\nimport runtime\nfrom runtime import tune, serve as s\n"
        "from runtime.util.queue import (\n    Full,\n    Queue,\n)\nimport os, runtime.util as u\n"
        "x = 'import runtime'\n"
    )
    assert to_ray(Example("t", code)) == (
        "import ray\nimport ray as runtime\nfrom ray import tune, serve as s\n"
        "from ray.util.queue import Full, Queue\nimport os, ray.util as u\n"
        "x = 'import runtime'\n"
    )
    with pytest.raises(UnmappedImportError, match="runtime.dataframe"):
        to_ray(Example("t", "import runtime.dataframe as pd\n"))
    with pytest.raises(UnmappedImportError, match="sim.runner"):
        to_ray(Example("t", "def f():\n    from sim.runner import run_scenario\n"))


def test_the_readme_lists_what_does_not_carry_over() -> None:
    text = README.read_text()
    assert "## What carries over to Ray" in text
    section = text.split("## What carries over to Ray", 1)[1].split("\n## ", 1)[0]
    assert carry_over_list() in section, "regenerate it: python -m tests.compat.examples"


def _ray_env() -> dict[str, str]:
    if os.environ.get("TWINRAY_COMPAT_RAY", "0") != "1":
        pytest.skip("real-Ray variant: set TWINRAY_COMPAT_RAY=1 to run it")
    pytest.importorskip("ray", reason="real Ray not installed (the peers extra)")
    return {**os.environ, "RAY_ADDRESS": "local", "RAY_DEDUP_LOGS": "0"}


RAY_BLOCKS = [e for e in readme_examples() if not e.twinray_only]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("example", RAY_BLOCKS, ids=[e.where.split(" (")[0] for e in RAY_BLOCKS])
def test_a_readme_block_runs_on_ray_and_prints_what_it_says(
    example: Example, tmp_path: Path
) -> None:
    env = _ray_env()
    code = to_ray(example)
    for _attempt in range(2):  # once more only when Ray itself failed to start
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=1500,
            env=env,
            cwd=tmp_path,
        )
        if RAY_STARTUP_TIMEOUT not in done.stderr:
            break
    assert done.returncode == 0, f"{example.where} failed on Ray:\n{done.stderr[-4000:]}"
    lines = iter(done.stdout.splitlines())
    for want in expected_output(example.code):  # in order, among Ray's own lines
        assert any(line == want for line in lines), f"{example.where}: no line {want!r}"


RAY_NOTEBOOKS = [p for p in notebook_paths() if any(not c.twinray_only for c in notebook_cells(p))]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", RAY_NOTEBOOKS, ids=[p.stem for p in RAY_NOTEBOOKS])
def test_a_notebook_runs_on_ray(path: Path) -> None:
    env = _ray_env()
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    kept = []
    for cell, example in zip(code, notebook_cells(path), strict=True):
        if not example.twinray_only:
            cell.source = to_ray(example)
            cell.outputs = []
            kept.append(cell)
    nb.cells = kept
    for attempt in range(2):  # once more only when Ray itself failed to start
        client = nbclient.NotebookClient(
            nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        try:
            client.execute(env=env)  # raises CellExecutionError naming the cell on any error
            return
        except nbclient.exceptions.CellExecutionError as exc:
            if attempt or RAY_STARTUP_TIMEOUT not in str(exc):
                raise
