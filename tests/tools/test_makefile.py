"""The Makefile spine: generated rules, no-op reruns, and retraining only what changed (make -n/-q)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import UserError
from pipeline.tools import makefile
from tests.helpers import REPO, edit_params, make

# every experiment of the repository's params.yaml, and those trained on `digits`
PARAMS = config.load_params(REPO / "params.yaml")
EXPERIMENTS = config.experiment_names(PARAMS)
ON_DIGITS = sorted(n for n in EXPERIMENTS if config.resolve_experiment(PARAMS, n).dataset == "digits")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

TRANSFER = ["pretrain", "transfer-feature", "transfer-finetune", "transfer-scratch"]


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, empty_store):
    """The code, the generated rules and `make data`'s output, made once: each test copies them."""
    root = tmp_path_factory.mktemp("prepared")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, root / name)
    (root / "mlruns").mkdir()
    shutil.copy(empty_store, root / "mlruns" / "mlflow.db")
    (root / ".venv-ready").touch()  # stands in for the installed .venv (else make would pip install -e)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_ROOT", str(root))
        patch.delenv("PIPELINE_PARAMS", raising=False)
        makefile.write_makefile(".build/pipeline.mk")
    assert make(root, "data").returncode == 0
    return root


@pytest.fixture
def built(project, prepared):
    """A project whose data is prepared and whose experiments are marked trained (stamps)."""
    shutil.copytree(prepared, project, dirs_exist_ok=True)  # copy2: the files keep their times
    (project / ".venv-ready").touch()  # stands in for the installed .venv
    (project / "mlruns" / ".initialized").touch()
    # backdate everything, stamps a little less: later edits are newer even on a coarse clock
    now = time.time()
    for path in project.rglob("*"):
        os.utime(path, (now - 100, now - 100))
    for name in EXPERIMENTS:
        stamp = project / ".build" / "runs" / f"{name}.done"
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
        os.utime(stamp, (now - 50, now - 50))
    return project


def trainings(root: Path) -> list[str]:
    """Run `make train-all` (trainings stubbed) and return the experiments it trained."""
    out = make(root, "train-all")
    assert out.returncode == 0, out.stderr
    return [line.split()[1] for line in out.stdout.splitlines() if line.startswith("TRAINED ")]


@pytest.mark.slow
def test_generated_rules_cover_every_experiment(project):
    text = makefile.write_makefile(".build/pipeline.mk").read_text()
    for name in ("mlp", "cnn-same", "cnn-valid", "svc"):
        assert f"train-{name}: .build/runs/{name}.done" in text
        assert f"-m pipeline train {name}" in text
    assert "data/processed/digits/manifest.json" in text


@pytest.mark.slow
def test_make_refuses_an_unknown_executor_in_one_line_before_training(built):
    out = make(built, "train-all", "EXECUTOR=bogus")
    assert out.returncode == 2 and out.stdout == "", out.stdout
    (line,) = out.stderr.strip().splitlines()
    assert "EXECUTOR=bogus: expected one of processes sequential ray" in line
    assert not (built / ".build" / "train-queue").exists()


@pytest.mark.slow
def test_nothing_changed_means_nothing_to_train(built):
    assert trainings(built) == []
    assert trainings(built) == []


@pytest.mark.slow
def test_core_code_change_retrains_all_but_family_code_only_its_own(built):
    (built / "pipeline" / "models" / "svc.py").touch()
    assert trainings(built) == ["svc"]
    time.sleep(0.05)  # file times come from a coarse clock: the touch must land after svc's stamp
    (built / "pipeline" / "training" / "run.py").touch()
    assert sorted(trainings(built)) == sorted(EXPERIMENTS)


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_an_objective_retrains_the_experiments_it_scores(built):
    (built / "pipeline" / "objectives" / "forecasting.py").touch()
    assert sorted(trainings(built)) == ["dense-window", "lstm", "naive", "rnn", "sarimax", "seasonal-naive"]


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_a_shared_model_helper_retrains_the_families_that_import_it(built):
    (built / "pipeline" / "models" / "forecast_baselines.py").touch()
    assert sorted(trainings(built)) == ["naive", "sarimax", "seasonal-naive"]


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_the_recurrent_front_end_retrains_the_network_forecasters_only(built):
    (built / "pipeline" / "models" / "windows.py").touch()
    assert sorted(trainings(built)) == ["dense-window", "lstm", "rnn"]


@pytest.mark.parametrize(
    "module",
    [
        "tools/report.py",
        "tools/predict.py",
        "serving/app.py",
        "serving/scoring.py",
        "serving/follow.py",
        "monitoring/reference.py",
        "tools/ui.py",
        "lecture/run.py",
        "lecture/examples.py",
        "tools/retrieve.py",
        "cli.py",
    ],
)
@pytest.mark.slow
def test_tools_that_read_the_store_retrain_nothing(built, module):
    (built / "pipeline" / module).touch()
    out = make(built, "-n", "train-all")
    assert out.returncode == 0, out.stderr
    assert "pipeline train " not in out.stdout and ">> .build/train-queue" not in out.stdout, out.stdout


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_runs_with_train_flags_are_not_marked_up_to_date(built):
    (built / ".build" / "runs" / "mlp.done").unlink()
    assert make(built, "train-mlp", "TRAIN_FLAGS=--set train.epochs=1").returncode == 0
    assert not (built / ".build" / "runs" / "mlp.done").exists()
    assert trainings(built) == ["mlp"]
    assert (built / ".build" / "runs" / "mlp.done").exists()


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_one_experiments_params_retrain_that_experiment_only(built):
    edit_params(built, lambda p: p["experiments"]["cnn-valid"]["model"].__setitem__("dropout", 0.5))
    assert trainings(built) == ["cnn-valid"]
    assert trainings(built) == []  # and once trained, it is up to date


@pytest.mark.slow
def test_dataset_params_retrain_its_experiments(built):
    edit_params(built, lambda p: p["data"]["digits"].__setitem__("seed", 5))
    assert sorted(trainings(built)) == ON_DIGITS


@pytest.mark.slow
def test_unchanged_data_rerun_keeps_experiments_fresh(built):
    (built / "pipeline" / "data" / "versions.py").touch()  # data code touched, output identical
    assert trainings(built) == []


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_needs_trains_upstream_first_and_retrains_downstream(built):
    text = (built / ".build" / "pipeline.mk").read_text()
    rule = next(line for line in text.splitlines() if line.startswith(".build/runs/transfer-feature.done:"))
    assert ".build/runs/pretrain.done" in rule
    (built / "pipeline" / "models" / "pretrain.py").touch()  # a new hub module is published...
    trained = trainings(built)
    assert trained[0] == "pretrain" and sorted(trained) == TRANSFER  # ...and every consumer retrains
    assert trainings(built) == []


def test_needs_must_name_other_experiments_without_loops(project):
    edit_params(project, lambda p: p["experiments"]["mlp"].__setitem__("needs", ["pretrian"]))
    with pytest.raises(
        UserError, match="experiments.mlp.needs: 'pretrian' is not another experiment.*pretrain"
    ):
        makefile.write_makefile(".build/pipeline.mk")
    edit_params(project, lambda p: p["experiments"]["mlp"].__setitem__("needs", ["svc"]))
    edit_params(project, lambda p: p["experiments"]["svc"].__setitem__("needs", ["mlp"]))
    with pytest.raises(UserError, match="loop: (mlp -> svc -> mlp|svc -> mlp -> svc)"):
        makefile.write_makefile(".build/pipeline.mk")


@pytest.mark.integration  # make runs `python -m pipeline makefile`
def test_transfer_curve_target_trains_pretrain_first(built):
    (built / ".build" / "runs" / "pretrain.done").unlink()
    out = make(built, "transfer-curve")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("TRAINED ") or line == "CURVE"]
    assert lines == ["TRAINED pretrain", "CURVE"]


@pytest.mark.slow
def test_any_csv_path_a_user_can_type_works_in_make(built):
    name = "my data's $HOME #1: 50%.csv"
    rows = ["f1,f2,label"] + [f"{i},{i * 2},{'yes' if i % 2 else 'no'}" for i in range(20)]
    (built / "data" / "raw").mkdir(parents=True, exist_ok=True)
    (built / "data" / "raw" / name).write_text("\n".join(rows) + "\n")
    entry = {"source": "csv-table", "path": f"data/raw/{name}", "target": "label"}
    entry |= {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    edit_params(built, lambda p: p["data"].__setitem__("table", entry))
    out = make(built, "data-table")
    assert out.returncode == 0, out.stderr
    assert (built / "data" / "processed" / "table" / "manifest.json").exists()
    assert make(built, "-q", "data-table").returncode == 0  # up to date: make found the file
    time.sleep(0.05)
    (built / "data" / "raw" / name).write_text("\n".join([*rows, "99,1,no"]) + "\n")
    assert make(built, "-q", "data-table").returncode == 1  # and sees it change


def test_make_predict_passes_paths_with_quotes_intact(project):
    for name in ("pyproject.toml", "requirements.lock", ".venv-ready"):  # an installed venv
        (project / name).touch()
        time.sleep(0.02)
    folder = project / 'it\'s "here" $HOME'
    folder.mkdir()
    out = make(project, "predict", f"INPUT={folder}", "OUTPUT=out put's.csv", "MODEL=models:/m@champion")
    assert out.returncode == 0, out.stderr
    args = [line.removeprefix("ARG ") for line in out.stdout.splitlines() if line.startswith("ARG ")]
    assert args == [
        "--model", "models:/m@champion", "--input", str(folder), "--output", "out put's.csv",
        "--max-unreadable", "0",
    ]  # fmt: skip


def test_a_venv_copied_from_another_folder_is_made_again(tmp_path):
    """A .venv copied along with the project runs the old folder's code: make sees where python's
    venv made it (pyvenv.cfg) and makes it again, without starting a process to find out."""
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, tmp_path / name)
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".installed").touch()  # installed, and newer than pyproject.toml and the lock
    made = lambda folder: f"home = /usr/bin\ncommand = /usr/bin/python3.11 -m venv {folder}/.venv\n"  # noqa: E731

    def planned():
        result = subprocess.run(["make", "-n", "venv"], cwd=tmp_path, capture_output=True, text=True)
        return result.stdout + result.stderr

    (venv / "pyvenv.cfg").write_text(made("/elsewhere/project"))
    plan = planned()
    assert "made in another folder (/elsewhere/project/.venv)" in plan and "rm -rf .venv" in plan
    assert "pip install" in plan
    (venv / "pyvenv.cfg").write_text(made(tmp_path))
    assert "Nothing to be done" in planned()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")  # made by another tool: not checked
    assert "Nothing to be done" in planned()
