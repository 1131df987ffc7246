"""The CLI as a user meets it: --help everywhere, and bad input as one line with exit code 2."""

import subprocess
import sys

import pytest

from tests.conftest import edit_params, run_cli

COMMANDS = ["train", "transfer-curve", "data", "list", "init-store", "retrain", "predict", "ui", "makefile"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command):
    args = [sys.executable, "-m", "pipeline", *([command] if command else []), "--help"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage:" in out.stdout


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


def test_unknown_experiment(project):
    assert_one_line_error(run_cli(project, "train", "cnn-sane"), "unknown experiment 'cnn-sane'", "cnn-same")


def test_misspelt_param_and_bad_padding_leave_no_running_run(project):
    assert_one_line_error(
        run_cli(project, "train", "mlp", "--set", "train.epochz=3"),
        "unknown key 'experiments.mlp.train.epochz'",
        "epochs",
    )
    edit_params(project, lambda p: p["experiments"]["cnn-same"]["model"].__setitem__("padding", "sometimes"))
    assert_one_line_error(
        run_cli(project, "train", "cnn-same"), "experiments.cnn-same.model.padding", "'sometimes'"
    )
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 0 or (runs["status"] != "RUNNING").all()


def test_missing_image_folder_writes_nothing(project):
    edit_params(
        project,
        lambda p: p["data"].__setitem__(
            "mine",
            {
                "source": "image-folder",
                "path": "data/raw/nowhere",
                "image_size": [8, 8],
                "color_mode": "grayscale",
                "val_fraction": 0.1,
                "test_fraction": 0.2,
                "seed": 0,
            },
        ),
    )
    assert_one_line_error(run_cli(project, "data", "mine"), "data/raw/nowhere", "does not exist")
    assert not (project / "data" / "processed").exists()


def test_list_and_data_commands(project):
    listed = run_cli(project, "list")
    assert (
        listed.returncode == 0 and "cnn-valid" in listed.stdout and "digits-classification" in listed.stdout
    )
    prepared = run_cli(project, "data", "digits")
    assert prepared.returncode == 0 and "prepared" in prepared.stdout
    again = run_cli(project, "data", "digits")
    assert "up to date" in again.stdout
