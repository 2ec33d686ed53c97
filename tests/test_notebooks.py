"""The teaching notebooks (notebooks/): each .ipynb is its jupytext twin (the .py, percent
format: the one that is edited) converted, with no outputs stored; and each runs top to bottom
in a fresh Jupyter kernel, its own assertions included — a notebook that stops teaching the
truth fails here. Regenerate the .ipynb files after editing a .py with
``jupytext --to ipynb notebooks/*.py``."""

import pathlib
import time

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat (the dev extra) is not installed")
jupytext = pytest.importorskip("jupytext", reason="jupytext (the dev extra) is not installed")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
# A guard against a hung cell, not the notebooks' time budget (2 minutes each, docs/notebooks.md):
# that is a speed target, measured on a quiet machine by benchmarks/notebook_times.py. Asserted
# here, it failed the 40-s forgetting notebook on a machine running three other trainings.
CELL_TIMEOUT_S = 20 * 60


def test_there_are_notebooks_in_reading_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1)) and len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_its_twin_without_outputs(source):
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    expected = jupytext.read(source)
    assert [(c.cell_type, c.source) for c in stored.cells] == \
        [(c.cell_type, c.source) for c in expected.cells], \
        f"{source.with_suffix('.ipynb').name} is not {source.name}: run " \
        f"`jupytext --to ipynb notebooks/{source.name}`"
    for cell in stored.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{source.with_suffix('.ipynb').name}: outputs are stored; clear them"
    assert stored.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_runs_and_its_claims_hold(source, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="nbclient (the dev extra) is not installed")
    if source.stem.startswith("08"):
        pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    print(f"{source.stem}: {time.perf_counter() - started:.1f} s")
