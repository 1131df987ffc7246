"""The shipped schedules work as shipped: the cron line under cron's bare environment on a fresh
checkout, and systemd units with absolute paths and a log target that always exists."""

import configparser
import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(
    not (shutil.which("make") and os.path.exists("/usr/bin/flock")), reason="make or flock missing"
)


def fresh_checkout(root):
    """The repository's tracked files, no logs/ or .build/, with an installed venv (`make venv`)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        if name.startswith(("pipeline/", "Makefile", "params.yaml", "pyproject.toml", "requirements.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for name in ("pyproject.toml", "requirements.lock"):
        os.utime(root / name, (0, 0))  # older than the venv's stamp: make keeps the venv
    venv_made_in(root)
    return root


def venv_made_in(root) -> None:
    """The repository's installed .venv as `root/.venv`: its interpreter links and packages (lib/),
    and a pyvenv.cfg naming root as where it was made, so make keeps it (a plain link to the
    repository's .venv counts as moved: make would build a new one, a minute of pip)."""
    shared, venv = REPO / ".venv", root / ".venv"
    assert (shared / ".installed").exists()
    (venv / "bin").mkdir(parents=True)
    for python in shared.glob("bin/python*"):
        (venv / "bin" / python.name).symlink_to(os.readlink(python))
    (venv / "lib").symlink_to(shared / "lib")
    made = (shared / "pyvenv.cfg").read_text().replace(f"-m venv {shared}", f"-m venv {venv}")
    (venv / "pyvenv.cfg").write_text(made)
    (venv / ".installed").touch()


def cron_command(root) -> str:
    (line,) = [line for line in (REPO / "deploy" / "crontab").read_text().splitlines() if line[:1].isdigit()]
    command = line.split(None, 5)[5]  # after minute hour day month weekday
    assert "/opt/dl-pipeline" in command
    return command.replace("/opt/dl-pipeline", str(root))  # the one edit the file asks for


@pytest.mark.slow
def test_the_cron_line_runs_on_a_fresh_checkout_under_crons_environment(tmp_path):
    root = fresh_checkout(tmp_path / "checkout")
    command = cron_command(root)
    for _ in range(2):  # a second tick appends
        result = subprocess.run(
            ["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (result.stderr, (root / "logs" / "retrain.log").read_text())
    log = (root / "logs" / "retrain.log").read_text()
    assert log.count("retrain digits-classifier: no new data") == 2, log
    assert "making it again here" not in log and not (root / ".venv" / "include").exists()  # kept
    assert (root / "mlruns" / ".initialized").exists()


def test_systemd_units_use_absolute_paths_and_the_journal():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "deploy" / "systemd" / "dl-pipeline-retrain.service")
    service = unit["Service"]
    assert service["ExecStart"].startswith("/") and os.path.exists(service["ExecStart"].split()[0])
    assert service["WorkingDirectory"].startswith("/")
    for stream in ("StandardOutput", "StandardError"):
        assert service.get(stream, "journal") == "journal"  # append:<file> needs its folder to exist
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(REPO / "deploy" / "systemd" / "dl-pipeline-retrain.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
