"""The CLI as a user meets it: --help everywhere, and bad input as one line with exit code 2."""

import subprocess
import sys

import pytest

from pipeline import cli
from tests.helpers import assert_one_line_error, edit_params, run_cli

# every command the parser declares (so a new command is tested without editing this list)
COMMANDS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)


@pytest.mark.integration  # `python -m pipeline --help` in a real process
def test_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "usage:" in out.stdout
    assert all(command in out.stdout for command in COMMANDS)
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith(f"usage: python -m pipeline {command}")
    assert len(out.splitlines()) > 3  # a description and its options, not just a usage line


@pytest.mark.slow
def test_unknown_experiment(project):
    assert_one_line_error(run_cli(project, "train", "cnn-sane"), "unknown experiment 'cnn-sane'", "cnn-same")


@pytest.mark.slow
def test_misspelt_param_and_bad_padding_leave_no_running_run(project):
    """A misspelt train key is refused before TensorFlow's import, a bad padding (the family's schema) after
    it: both in a real process. The other errors of the second kind are tested in-process
    (`cli_in_process`); this one keeps the process itself checked."""
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


@pytest.mark.integration  # `python -m pipeline` in a real process
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


@pytest.mark.slow
def test_list_and_data_commands(project):
    listed = run_cli(project, "list")
    assert (
        listed.returncode == 0 and "cnn-valid" in listed.stdout and "digits-classification" in listed.stdout
    )
    prepared = run_cli(project, "data", "digits")
    assert prepared.returncode == 0 and "prepared" in prepared.stdout
    again = run_cli(project, "data", "digits")
    assert "up to date" in again.stdout
