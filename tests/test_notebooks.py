"""The lecture's notebooks (notebooks/): each is paired with its .py (jupytext's percent format),
committed without outputs, rendered as a current page under docs/notebooks/, and runs headless
from start to end (nbclient) with small settings in a throw-away project and store — 02 and 03 in
a trained one, which they must leave as they found it (registry, hub module, report);
JupyterLab serves them to a headless Chromium. Needs the `notebooks` extra (`make test` installs it)."""

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.lecture import render
from tests.helpers import REPO, free_port, needs_chromium, relocate_project

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: make test")
jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed: make test")

FOLDER = REPO / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
# what each notebook's parameters cell becomes in the tests: a few epochs on a small subset
SMALL = {
    "01_perceptron_losses_depth": "EPOCHS = 2\nLIMIT = 200",
    "02_convolutional_networks": "EPOCHS = 2\nLIMIT = 200",
    "03_transfer_learning": "EPOCHS = 2\nLIMIT = 200\nSIZES = [2]",
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


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebooks_rendered_page_is_current(notebook: Path):
    """docs/notebooks/<notebook>.md was rendered from the .py as it is now, and its figures are there."""
    source = notebook.with_suffix(".py")
    page = REPO / render.PAGES / f"{notebook.stem}.md"
    assert page.exists(), (
        f"{page.relative_to(REPO)} is missing: make notebooks-render NOTEBOOKS={notebook.stem}"
    )
    found = render.HEADER.match(page.read_text())
    assert found and found["source"] == f"notebooks/{source.name}", f"{page.name}: no render header"
    assert found["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest(), (
        f"{page.name} is older than {source.name}: make notebooks-render NOTEBOOKS={notebook.stem}"
    )
    figures = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", page.read_text())
    assert figures and all((page.parent / f).exists() for f in figures), f"{page.name}: a figure is missing"


def run_notebook(notebook: Path, project: Path, capsys):
    """The notebook run from start to end with small settings in `project` (the kernel inherits
    PIPELINE_ROOT and MLFLOW_TRACKING_URI): every cell without an error, figures shown inline."""
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
    assert any("```python" in o.get("data", {}).get("text/markdown", "") for o in outputs), "no Keras code"
    assert any("Trainable params" in str(o.get("data", o.get("text", ""))) for o in outputs), "no summary"
    return nb


IN_A_TRAINED_PROJECT = ("02_convolutional_networks", "03_transfer_learning")


@pytest.mark.slow
@pytest.mark.parametrize(
    "notebook", [n for n in NOTEBOOKS if n.stem not in IN_A_TRAINED_PROJECT], ids=lambda p: p.stem
)
def test_a_notebook_runs_from_start_to_end(notebook: Path, project, capsys):
    run_notebook(notebook, project, capsys)


def production(project: Path) -> dict:
    """What a notebook must not change: the registry's versions and aliases, the published hub
    modules' bytes, `make report`'s tables (less its date), make's stamps."""
    import mlflow

    from pipeline.tools import report

    client = mlflow.MlflowClient()
    registry = {
        model.name: (
            sorted(v.version for v in client.search_model_versions(f"name = '{model.name}'")),
            model.aliases,
        )
        for model in client.search_registered_models()
    }
    hub = project / "models" / "hub"
    modules = {str(p.relative_to(hub)): p.read_bytes() for p in sorted(hub.rglob("*")) if p.is_file()}
    report.main(log=False)
    summary = (project / "reports" / "summary.md").read_text()
    stamps = sorted(str(p.relative_to(project)) for p in (project / ".build").rglob("*.done"))
    return {
        "registry": registry,
        "modules": modules,
        "report": re.sub(r"generated .*", "", summary),
        "stamps": stamps,
    }


@pytest.mark.slow
@pytest.mark.parametrize("notebook", IN_A_TRAINED_PROJECT)
def test_a_students_notebook_run_leaves_production_as_it_was(
    notebook, project, champions, published_module, capsys
):
    """Notebooks 02 (cnn-same: a registered model) and 03 (pretrain: the hub module the transfer
    experiments read) run as a student runs them, in a trained project: champions in the registry,
    the hub module published. Registry, module and report are the same after; the transfer runs
    read the module the notebook's own pretrain published to its sandbox."""
    import mlflow

    relocate_project(champions, project)
    shutil.copytree(published_module["module"], project / "models" / "hub" / "digits-0-4")
    before = production(project)
    assert "champion" in before["registry"]["digits-classifier"][1]
    nb = run_notebook(FOLDER / f"{notebook}.ipynb", project, capsys)
    after = production(project)
    assert after == before
    sandboxed = mlflow.search_runs(search_all_experiments=True, filter_string="tags.sandbox = 'true'")
    assert len(sandboxed) >= 3 and set(sandboxed["status"]) == {"FINISHED"}
    if notebook == "03_transfer_learning":
        feature = sandboxed[sandboxed["tags.mlflow.runName"] == "transfer-feature"]
        assert "/.build/sandbox/" in feature["params.model.hub_handle"].iloc[0]
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "pretrain: hub module published to .build/sandbox/" in text


# where the browser test keeps its screenshot (reports/ is generated and ignored by git)
SCREENSHOT = REPO / "reports" / "tests" / "notebook-in-jupyterlab.png"
SHOWN = "02_convolutional_networks"  # opened in the browser, its cells up to the first figure run


def run_up_to_first_figure(notebook: Path, folder: Path, project: Path) -> Path:
    """The notebook's cells run in a kernel up to the first that shows a figure, saved in `folder`."""
    from nbclient import NotebookClient

    nb = parameterised(notebook, SMALL[notebook.stem])
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
            if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
                break
    path = folder / notebook.name
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def jupyterlab(folder: Path, home: Path):
    """JupyterLab serving `folder` on 127.0.0.1 (a free port, a random token) until the block ends;
    its settings, workspaces and runtime files under `home`."""
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip",
        "127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={folder}",
        f"--IdentityProvider.token={token}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    log = home / "jupyterlab.log"  # a file, not a pipe: a full pipe would stall the server
    home.mkdir(exist_ok=True)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"jupyter lab exited: {log.read_text()[-2000:]}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            assert time.monotonic() < deadline, "jupyter lab did not answer within 120 s"
            time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
@needs_chromium
def test_jupyterlab_serves_the_notebooks_and_one_opens_with_its_figure_inline(project, tmp_path, browser):
    pytest.importorskip("jupyterlab", reason="the notebooks extra is not installed: make test")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = tmp_path / "notebooks"
    folder.mkdir()
    opened = run_up_to_first_figure(FOLDER / f"{SHOWN}.ipynb", folder, project)
    with jupyterlab(folder, tmp_path / "jupyter") as (base, token):
        browser.get(f"{base}/lab/tree/{opened.name}?token={token}")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"))
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "Convolutional networks" in text and "cross-correlation" in text
        image = browser.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output img")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", image)
        wait.until(lambda _: image.size["width"] > 100)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000
