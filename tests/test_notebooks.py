"""Execute every tutorial notebook with nbclient; any cell error fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
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


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path: Path, kernel: str) -> None:
    before = set(os.listdir("/dev/shm"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=90,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on any error
    assert set(os.listdir("/dev/shm")) <= before
