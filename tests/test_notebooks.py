"""Execute every tutorial notebook with nbclient; any cell error fails the test.

The notebooks are committed with outputs (`python notebooks/build.py` runs them); here
they run again in memory, with this checkout first on the kernel's path, and the files
are not rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="session")
def kernel() -> str:
    """The `python3` kernelspec, installed for this user if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(user=True)
    return "python3"


def test_every_lesson_is_there() -> None:
    names = {p.name for p in PATHS}
    assert {
        "01_tasks_and_actors.ipynb",
        "02_object_store.ipynb",
        "03_simulating_a_cluster.ipynb",
        "04_scheduling_policies.ipynb",
        "05_sim_beside_real.ipynb",
    } <= names


@pytest.mark.timeout(480)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path: Path, kernel: str) -> None:
    before = set(os.listdir("/dev/shm"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=240,  # per cell: replicas importing Keras take long on a loaded machine
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    pythonpath = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    client.execute(env=env)  # raises CellExecutionError on any error
    assert set(os.listdir("/dev/shm")) <= before


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_committed_with_its_outputs(path: Path) -> None:
    """Every code cell ran (an execution count) and the lesson shows at least one plot."""
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), "run notebooks/build.py"
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs)
