"""A project that moves: the default store is rewritten once for its new folder
(pipeline/training/store_root.py), and a moved project keeps working end to end."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline import layout
from pipeline.training import store_root, tracking
from tests.helpers import REPO, edit_params, point_at, write_batch


def test_rewrite_changes_whole_mentions_of_the_old_root_only():
    old, new = Path("/srv/proj"), Path("/home/me/my proj")
    moved = lambda text: store_root.rewrite(text, old, new)  # noqa: E731
    assert moved("/srv/proj/mlruns/0") == "/home/me/my proj/mlruns/0"
    assert moved("/srv/proj") == "/home/me/my proj"
    # a file URI stays a URI (percent-encoded, as MLflow writes it)
    assert moved((old / "mlruns" / "a b").as_uri()) == (new / "mlruns" / "a b").as_uri()
    assert moved('{"uri": "/srv/proj/data/x.npz"}') == '{"uri": "/home/me/my proj/data/x.npz"}'
    assert moved("database_uri = sqlite:////srv/proj/mlruns/server/a.db") == (
        "database_uri = sqlite:////home/me/my proj/mlruns/server/a.db"
    )
    for other in ("/srv/project/x", "/mnt/srv/proj/x", "file:///mnt/srv/proj/x", "/srv/proj2", "srv/proj/x"):
        assert moved(other) == other, other  # another folder, or the root's name inside another path
    unicode_old = Path("/srv/prój")
    escaped = '{"uri": "/srv/pr\\u00f3j/x"}'  # as json.dumps writes it
    assert store_root.rewrite(escaped, unicode_old, new) == '{"uri": "/home/me/my proj/x"}'
    assert store_root.rewrite(unicode_old.as_uri() + "/x", unicode_old, new) == (new / "x").as_uri()


def logged_run(root: Path) -> str:
    """A run with an artifact and a dataset input, in the project at `root` (the current one)."""
    with tracking.start_run("moving", "run", {}) as run:
        mlflow.log_text("hello", "notes/hello.txt")
        data = mlflow.data.from_numpy(np.zeros((2, 2)), source=str(root / "data" / "x.npz"))
        mlflow.log_input(data, context="training")
    return run.info.run_id


def store_mentions(root: Path, text: str) -> list[str]:
    """The files under root/mlruns whose bytes contain `text`."""
    needle = text.encode()
    return [str(p) for p in (root / "mlruns").rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("marker", [True, False], ids=["marker", "store-made-before-the-marker"])
@pytest.mark.filterwarnings("ignore:The specified dataset source")
def test_a_copied_store_is_rewritten_once_for_its_new_place(project, tmp_path, monkeypatch, marker):
    run_id = logged_run(project)
    assert store_root.recorded(project) == str(project)
    if not marker:
        layout.store_root_marker(project).unlink()
    copy = tmp_path.parent / f"moved-{tmp_path.name}"  # not a name that starts with the old one
    shutil.copytree(project, copy)
    shutil.rmtree(project)  # nothing may read or write the old folder
    point_at(monkeypatch, copy)

    assert store_root.follow(copy) == project
    assert store_root.recorded(copy) == str(copy)
    assert store_root.follow(copy) is None  # once
    assert store_mentions(copy, str(project)) == []
    tracking.configure()
    run = mlflow.get_run(run_id)
    assert run.info.artifact_uri.startswith(copy.as_uri() + "/")
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt") == "hello"
    (source,) = {d.dataset.source for d in run.inputs.dataset_inputs}
    assert str(copy / "data" / "x.npz") in source
    logged_run(copy)  # writes go to the new place
    assert not project.exists()


def test_a_new_store_and_an_unmoved_one_are_left_alone(bare_project):
    assert store_root.follow(bare_project) is None  # no store yet: it will be written for this folder
    assert store_root.recorded(bare_project) == str(bare_project)
    database = bare_project / "mlruns" / "mlflow.db"
    sqlite3.connect(database).close()
    before = database.stat().st_mtime_ns
    assert store_root.follow(bare_project) is None
    assert database.stat().st_mtime_ns == before


# -------------------------------------------------------------------- a whole project, moved
# What a user's checkout holds (their .venv aside: make rebuilds a moved one, tests/tools/test_makefile.py)
CHECKOUT = ("Makefile", "pyproject.toml", "requirements.lock", "params.yaml")
TINY = {"epochs": 1, "patience": 1, "limit": 200}


def checkout(root: Path) -> Path:
    """A project folder as a user has it, with two experiments: cnn-same (registered, gate open)
    and naive (a models-from-code model), each trained small."""
    root.mkdir(parents=True)
    for name in CHECKOUT:
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))

    def tiny(params):
        params["experiments"] = {k: params["experiments"][k] for k in ("cnn-same", "naive")}
        params["experiments"]["cnn-same"].setdefault("train", {}).update(TINY)
        params["retrain"]["gates"]["digits-classifier"].update(threshold=0.0, margin=-1.0)

    edit_params(root, tiny)
    (root / ".venv-ready").touch()  # stands in for .venv (make would pip install -e otherwise)
    return root


def user(root: Path, *command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`command` run in `root` as a user runs it: neither MLFLOW_TRACKING_URI nor PIPELINE_ROOT set,
    the project's own code (its folder first on sys.path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINE_"))}
    env.pop("PYTHONPATH", None)
    if command[0] == "make":
        command = (*command, f"PY={sys.executable}", "VENV_STAMP=.venv-ready")
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def digit_pngs(folder: Path, start: int, n: int = 20, ready: bool = False) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[start : start + n] / 16)[..., None], digits.target[start : start + n]
    return write_batch(folder, x, y, ready)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def run_count(root: Path) -> int:
    with sqlite3.connect(root / "mlruns" / "mlflow.db") as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


# runs, the champion's run and its artifacts, read through the Python API and MLflow (no TensorFlow:
# the champion is loaded in LOAD_PREDICT_THEN_RETRAIN's process)
READ_BACK = """
import mlflow, pipeline
assert list(pipeline.runs("digits-classification")["run"]) == ["cnn-same"]
champion = mlflow.MlflowClient().get_model_version_by_alias("digits-classifier", "champion")
run = mlflow.get_run(champion.run_id)
print("ARTIFACTS", len(mlflow.MlflowClient().list_artifacts(run.info.run_id)))
print("URI", run.info.artifact_uri)
"""

# the champion through the Python API, `pipeline predict --input FOLDER`, then `pipeline retrain`:
# one process (one TensorFlow start) runs all three
LOAD_PREDICT_THEN_RETRAIN = """
import sys, numpy, pipeline
from pipeline import cli
champion = pipeline.load_model("digits-classifier")
assert champion.predict(numpy.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)
sys.exit(cli.main(["predict", "--input", sys.argv[1]]) or cli.main(["retrain"]))
"""


@pytest.mark.slow
def test_a_moved_project_keeps_its_runs_models_and_make_state(tmp_path):
    original = checkout(tmp_path / "original")
    # in make's own process: the executor is not what is tested here (tests/workflows/test_fanout.py)
    user(original, "make", "train-all", "EXECUTOR=sequential")
    trained = run_count(original)
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(original, moved, symlinks=True)  # copy2: the files keep their times (as cp -a)
    os.chmod(original, 0o555)
    before = snapshot(original)

    read = user(moved, sys.executable, "-c", READ_BACK)  # the first MLflow access rewrites the store
    assert "the project moved from" in read.stderr
    assert f"URI {moved.as_uri()}/mlruns/artifacts/" in read.stdout and "ARTIFACTS 0" not in read.stdout
    assert snapshot(original) == before  # nothing written under the old folder
    os.chmod(original, 0o755)
    shutil.rmtree(original)

    nothing = user(moved, "make", "train-all")
    assert "test_accuracy" not in nothing.stdout + nothing.stderr and run_count(moved) == trained
    pngs = digit_pngs(moved / "in", 0)
    digit_pngs(moved / "data" / "incoming" / "digits" / "b1", 100, ready=True)
    out = user(moved, sys.executable, "-c", LOAD_PREDICT_THEN_RETRAIN, str(pngs)).stdout
    assert len((moved / "predictions.csv").read_text().splitlines()) == 21, out
    assert "retrain digits-classifier: batches b1 (+20 examples)" in out and run_count(moved) > trained

    assert not original.exists()  # nothing recreated it
    old = str(original).encode()
    left = [str(p) for p in moved.rglob("*") if p.is_file() and old in p.read_bytes()]
    assert left == []
