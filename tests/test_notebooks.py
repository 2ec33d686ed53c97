"""The teaching notebooks (notebooks/): each .ipynb is its jupytext twin (the .py, percent
format: the one that is edited) converted, with no outputs stored; and each runs top to bottom
in a fresh Jupyter kernel, its own assertions included — a notebook that stops teaching the
truth fails here. Regenerate the .ipynb files after editing a .py with
``jupytext --to ipynb notebooks/*.py``."""

import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat (the dev extra) is not installed")
jupytext = pytest.importorskip("jupytext", reason="jupytext (the dev extra) is not installed")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
sys.path.insert(0, str(ROOT / "benchmarks"))


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
    pytest.importorskip("nbclient", reason="nbclient (the dev extra) is not installed")
    if source.stem.startswith("08"):
        pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")
    # Executed as benchmarks/notebook_times.py executes it, with only a hung-cell guard: the
    # 2-minute budget (docs/notebooks.md) is a speed target, measured there on a quiet machine.
    # Asserted here, it failed the 40-s forgetting notebook on a machine running three trainings.
    from notebook_times import execute

    print(f"{source.stem}: {execute(source.with_suffix('.ipynb'), tmp_path):.1f} s")
