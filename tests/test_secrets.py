"""A password in the store URI never shows: not in any output, log, report, MLflow param, tag or
artifact, nor in a process's arguments (pipeline/secrets.py and where the pipeline applies it)."""

import logging
import os
import subprocess
from pathlib import Path

import mlflow
import pytest

from pipeline import cli, secrets
from tests import postgres
from tests.helpers import REPO, run_cli, serving

QUICK = ["--quiet", "--set", "train.epochs=1", "--set", "train.limit=100"]


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://u:hunter2pw@127.0.0.1:5432/db", "postgresql://u:***@127.0.0.1:5432/db"),
        (
            "at postgresql+psycopg2://u:p@ss:w$rd@db.example/x now",
            "at postgresql+psycopg2://u:***@db.example/x now",
        ),
        ("'mysql://root:pa%40ss@h/db'", "'mysql://root:***@h/db'"),
        ("postgresql://h/db?user=u&password=hunter2pw&x=1", "postgresql://h/db?user=u&password=***&x=1"),
        ("http://alice:hunter2pw@127.0.0.1:5000/#/x", "http://alice:***@127.0.0.1:5000/#/x"),
        ("sqlite:////tmp/mlruns/mlflow.db", "sqlite:////tmp/mlruns/mlflow.db"),
        ("http://127.0.0.1:5000/api/2.0?x=a@b", "http://127.0.0.1:5000/api/2.0?x=a@b"),
    ],
)
def test_a_uri_password_is_hidden(text, shown):
    assert secrets.redact(text) == shown


def test_the_store_password_is_hidden_wherever_it_appears(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://u:s3cr%24t-pw@h/db")
    text = "authentication failed: password 's3cr$t-pw' (sent as s3cr%24t-pw)"
    assert secrets.redact(text) == "authentication failed: password '***' (sent as ***)"
    secrets.redact_logs()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("mlflow.store").warning("cannot reach %s", os.environ["MLFLOW_TRACKING_URI"])
        try:
            raise RuntimeError("engine for postgresql://u:s3cr%24t-pw@h/db failed")
        except RuntimeError:
            logging.getLogger("sqlalchemy").exception("failed")
    logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "s3cr" not in logged and logged.count("u:***@h/db") >= 2  # the message and the exception


def assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text


@pytest.mark.slow
def test_mlflow_exceptions_are_redacted_at_the_cli(project, capfd, monkeypatch):
    # MLflow refuses this URI with a message (and traceback) that repeats it, password included
    uri = "oracle://u:hunter2pw@h/db"
    done = run_cli(project, "init-store", env={"MLFLOW_TRACKING_URI": uri})  # a real process: all it prints
    assert done.returncode == 1
    assert_hidden("hunter2pw", done.stdout, done.stderr)
    assert "oracle://u:***@h/db" in done.stderr
    # train: the same handler, in this process (a subprocess would import TensorFlow for it);
    # capfd also catches what C code writes to the file descriptors
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli.main(["train", "mlp", *QUICK]) == 1
    out = capfd.readouterr()
    assert_hidden("hunter2pw", out.out, out.err)
    assert "oracle://u:***@h/db" in out.err


def descendants(pid: int) -> list[int]:
    """Every process started (directly or not) by `pid`, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        todo += children
    return found


def command_lines(port: int) -> list[str]:
    """The arguments (as `ps` shows them) of `pipeline ui --port <port>` and everything it started."""
    mine = [
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if f"pipeline\0ui\0--port\0{port}".encode() in p.read_bytes()
    ]
    assert len(mine) == 1
    lines = []
    for pid in [*mine, *descendants(mine[0])]:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    assert any("mlflow ui" in line for line in lines)  # the UI process itself was looked at
    return lines


@pytest.mark.slow
def test_a_store_password_never_shows(project, postgres_uri, capfd, monkeypatch):
    """Against a real PostgreSQL store with a password: init-store, training, the report, the UI."""
    uri = postgres_uri.replace("postgresql://", "postgresql+psycopg2://")
    password, env = postgres.PASSWORD, {"MLFLOW_TRACKING_URI": uri}
    outputs = []
    # the commands in this process (a subprocess each would import MLflow, and TensorFlow for train,
    # once more); capfd catches what C code writes to the file descriptors too. A real process's
    # output is checked by test_mlflow_exceptions_are_redacted_at_the_cli and, below, the UI's.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for args in (["init-store"], ["train", "mlp", *QUICK], ["report"]):
        code = cli.main(args)
        done = capfd.readouterr()
        assert code == 0, done.err[-2000:]
        outputs += [done.out, done.err]
    assert "mlflow:***@127.0.0.1" in outputs[0]  # init-store names the store, its password hidden
    reports = [p.read_text() for p in (project / "reports").glob("*.*") if p.suffix in (".md", ".html")]
    assert len(reports) == 2 and "mlflow:***@" in reports[0] + reports[1]
    with serving(project, "ui", env=env, timeout=240) as port:
        commands = command_lines(port)
    ui_log = (project / "ui.log").read_text()
    assert_hidden(password, *outputs, *reports, *commands, ui_log)

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.info.run_name for r in runs} == {"mlp", "report"}
    for run in runs:
        assert_hidden(password, str(run.data.params), str(run.data.tags))
        folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=uri))
        for path in (p for p in folder.rglob("*") if p.is_file()):
            assert password.encode() not in path.read_bytes(), path


def test_make_server_hands_db_on_unexpanded_and_off_the_command_line(tmp_path):
    """`make server DB=…`: a `$` and a quote survive; no process gets the password as an argument."""
    stub = tmp_path / "python-stub"
    stub.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$0" "$@" > argv.txt\nprintenv MLFLOW_BACKEND_STORE_URI > env.txt\n'
    )
    stub.chmod(0o755)
    (tmp_path / ".venv").mkdir()
    for name in ("pyproject.toml", "requirements.lock", ".venv-ready", ".venv/.extra-postgres"):  # up to date
        (tmp_path / name).touch()
    db = "postgresql://team:pa$$word'$HOME@db.example:5432/mlflow"
    for where in ("argument", "environment"):
        args = ["make", "-f", str(REPO / "Makefile"), f"PY={stub}", "VENV_STAMP=.venv-ready", "server"]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        if where == "argument":
            args.append(f"DB={db}")
        else:
            env["DB"] = db
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "env.txt").read_text() == db + "\n", where
        assert_hidden("pa$", (tmp_path / "argv.txt").read_text(), done.stdout, done.stderr)


@pytest.mark.integration  # `python -m pipeline` in a real process
def test_server_refuses_a_password_on_its_command_line(project):
    done = run_cli(project, "server", "--db", "postgresql://u:hunter2pw@127.0.0.1:1/db")
    assert done.returncode == 2 and "give the URI in MLFLOW_BACKEND_STORE_URI" in done.stderr
    assert "hunter2pw" not in done.stderr
