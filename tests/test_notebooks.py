"""The lecture's notebooks (notebooks/): each is paired with its .py (jupytext's percent format),
committed without outputs, and runs headless from start to end (nbclient) with small settings in a
throw-away project and store. Needs the `notebooks` extra (`make test` installs it)."""

import time
from pathlib import Path

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: make test")
jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed: make test")

FOLDER = REPO / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
# what each notebook's parameters cell becomes in the tests: a few epochs on a small subset
SMALL = {
    "01_perceptron_losses_depth": "EPOCHS = 3\nLIMIT = 300",
    "02_convolutional_networks": "EPOCHS = 2\nLIMIT = 200",
    "03_transfer_learning": "EPOCHS = 2\nLIMIT = 200\nSIZES = [1, 5]",
    "04_sequences": "EPOCHS = 2\nLIMIT = 200",
    "05_autoencoders": "EPOCHS = 2\nLIMIT = 200",
}
CELL_TIMEOUT = 300  # seconds per cell: a stuck cell fails the test instead of hanging the suite


def test_the_five_notebooks_are_there_in_the_lectures_order():
    assert [n.stem for n in NOTEBOOKS] == list(SMALL)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_and_its_py_pair_agree(notebook: Path):
    pair = notebook.with_suffix(".py")
    assert pair.exists(), f"{pair.name} is missing: jupytext --sync {notebook.name}"
    as_py = jupytext.writes(jupytext.read(notebook), fmt="py:percent")
    assert as_py == pair.read_text(), f"{notebook.name} and {pair.name} differ: jupytext --sync one of them"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_committed_without_outputs(notebook: Path):
    cells = nbformat.read(notebook, as_version=4).cells
    run = [i for i, c in enumerate(cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not run, f"{notebook.name}: cells {run} have outputs (clear them before committing)"


def parameterised(notebook: Path, settings: str):
    """The notebook with `settings` in a cell right after its `parameters` cell (papermill's way)."""
    nb = nbformat.read(notebook, as_version=4)
    (at,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(settings, metadata={"tags": ["injected-parameters"]}))
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_from_start_to_end(notebook: Path, project, capsys):
    """In the test's project and store (the kernel inherits PIPELINE_ROOT and MLFLOW_TRACKING_URI),
    every cell runs without an error, and every figure shows inline."""
    from nbclient import NotebookClient

    nb = parameterised(notebook, SMALL[notebook.stem])
    started = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(project)}},
    )
    client.execute()
    with capsys.disabled():
        print(f"\n{notebook.name}: {time.perf_counter() - started:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown inline"
    assert any("workflowType=machine_learning" in o.get("text", "") for o in outputs), "no link to its runs"
