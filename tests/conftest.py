"""Shared fixtures and session settings: every test works in a throw-away project folder with its
own MLflow store. The helpers the tests and these fixtures call are in tests/helpers.py."""

from __future__ import annotations

import collections
import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# One BLAS thread per test process, set before NumPy loads OpenBLAS (children inherit it):
# pytest-xdist already runs a worker per core, and OpenBLAS threads spinning for a core the other
# worker holds slow statsmodels and scikit-learn many times over.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    CHAMPION_SETTINGS,
    CHROMEDRIVER,
    CHROMIUM,
    NO_CHROMIUM,
    REPO,
    built_once,
    edit_params,
    free_port,
    new_project,
    point_at,
    relocate_project,
    train,
)

# subprocesses (`python -m pipeline` in a project folder) import the code under test, also from a
# git worktree whose venv's editable install points at another checkout
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
# A test process trains hundreds of models and its heap holds millions of objects: Python's full
# collections, each walking all of it, may come a tenth as often. Nothing here depends on when
# garbage is collected.
gc.set_threshold(*gc.get_threshold()[:2], 100)


def pytest_collection_modifyitems(items):
    """The modules with the most slow tests run first, each module's tests together (its fixtures
    are made once): pytest-xdist's workers then end on quick tests, instead of one worker running
    a long end-to-end test at the end while the other waits."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: file order among equals


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish():
    """At the end, pytest's unraisable-exception check collects garbage five times (unconfigure) on a
    heap of millions of objects while the run waits for the last worker. Frozen, the heap is skipped;
    what a test left unreachable is still collected up to here, as always."""
    gc.freeze()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its schema and nothing in it, made once per test process: the
    `project` fixture copies the file, much cheaper than creating the schema again."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    subprocess.run(  # in a child, so this process's MLflow keeps no engine on the file
        [
            sys.executable,
            "-c",
            f"import mlflow; mlflow.MlflowClient({f'sqlite:///{path}'!r}).search_experiments()",
        ],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def bare_project(tmp_path, monkeypatch):
    """A copy of params.yaml in a temp folder, used as the project root; its store (mlruns/) is
    empty: the first MLflow call creates it, as on a user's first run."""
    point_at(monkeypatch, new_project(tmp_path))
    return tmp_path


@pytest.fixture
def project(bare_project, empty_store):
    """bare_project with the store's schema already in place (what `make store` makes)."""
    shutil.copy(empty_store, bare_project / "mlruns" / "mlflow.db")
    return bare_project


@pytest.fixture(scope="session")
def retrain_template(tmp_path_factory, empty_store):
    """The folder retrain_project copies: params for 1-epoch challengers and a champion (v1),
    trained once per test run (built_once) instead of once per test."""

    def build(root):
        new_project(root, empty_store)
        quick = {"epochs": 1, "patience": 1, "limit": 200}
        edit_params(root, lambda p: p["experiments"]["cnn-same"].setdefault("train", {}).update(quick))
        edit_params(root, lambda p: p["retrain"]["gates"]["digits-classifier"].update(threshold=0.0))
        with pytest.MonkeyPatch.context() as patch:
            point_at(patch, root)
            train("cnn-same")
        (root / ".build" / "retrain.lock").unlink(missing_ok=True)  # each copy takes its own lock

    return built_once(tmp_path_factory, "retrain-template", build)


@pytest.fixture
def retrain_project(project, retrain_template):
    """A project whose `make retrain` trains 1-epoch challengers on 200 original examples (merged
    batches are always kept), with a gate threshold of 0 and a champion (v1) in place: a copy of
    retrain_template (the champion trained once per test run), relocated to this project."""
    relocate_project(retrain_template, project)
    return project


@pytest.fixture(scope="session")
def published_module(tmp_path_factory):
    """`pretrain` trained once per test run (small and short, built_once) in its own project; its
    hub module is reused."""

    def build(root):
        new_project(root)
        with pytest.MonkeyPatch.context() as patch:
            point_at(patch, root)
            run_id = train("pretrain", ["train.limit=300", "train.epochs=2"]).run_id
        (root / "run_id.json").write_text(json.dumps(run_id))

    root = built_once(tmp_path_factory, "pretrained", build)
    run_id = json.loads((root / "run_id.json").read_text())
    return {"root": root, "module": root / "models" / "hub" / "digits-0-4", "run_id": run_id}


@pytest.fixture
def transfer_project(project, published_module):
    """A project whose default hub module (pretrain's output) is in place."""
    shutil.copytree(published_module["module"], project / "models" / "hub" / "digits-0-4")
    return project


@pytest.fixture
def postgres_uri():
    """A throw-away PostgreSQL database on loopback (skipped where PostgreSQL is not installed)."""
    pytest.importorskip("psycopg2", reason="the postgres extra is not installed")
    from tests import postgres

    with postgres.cluster(free_port()) as uri:
        yield uri


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs per test module (ray.init is slow); the commands join it."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from pipeline.workflows import ray_session

    started = ray_session.init(num_cpus=2)
    yield
    if started:
        ray_session.shutdown()


@pytest.fixture(scope="session")
def champions(tmp_path_factory, empty_store) -> Path:
    """A project root in which cnn-same (digits-classifier) and lstm (co2-forecaster) are trained
    once per test run (300 examples, 2 epochs, built_once) and promoted to champion, gates open.
    Tests only read it (its registered models, their runs and drift profiles) or copy it
    (relocate_project). Use point_at to make it the current project."""

    def open_gates(params):
        params["retrain"]["gates"]["digits-classifier"].update(threshold=0.0)
        params["retrain"]["gates"]["co2-forecaster"].update(threshold=1e6)

    def build(root):
        new_project(root, empty_store)
        with pytest.MonkeyPatch.context() as patch:
            point_at(patch, root)
            edit_params(root, open_gates)
            for name in ("cnn-same", "lstm"):
                assert train(name, CHAMPION_SETTINGS).decision.promoted, name

    return built_once(tmp_path_factory, "champions", build)


@pytest.fixture
def browser():
    """Headless Chromium driven by selenium (tests using it are marked needs_chromium; in CI a
    missing Chromium fails them)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(f"{NO_CHROMIUM} (CI is set: a browser test must run here, not be skipped)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
