"""`make server AUTH=1`: a real `mlflow server --app-name basic-auth` on a free port refuses an
anonymous request and serves an authenticated client; its secrets never reach a log or a
process's arguments, and its user database lives beside the server's store."""

from pathlib import Path

import mlflow
import pytest
import requests

from pipeline import cli
from tests.helpers import ONE_WORKER, assert_one_line_error, free_port, run_cli, serving

PASSWORD = "correct-horse-battery-staple"
SECRET_KEY = "flask-secret-0123456789abcdef"


@pytest.fixture
def auth_env(monkeypatch):
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", PASSWORD)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_AUTH_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)


def command_lines() -> str:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # a process that ended meanwhile
            continue
    return "\n".join(found)


@pytest.mark.slow
def test_anonymous_is_refused_and_an_authenticated_client_logs_a_run(project, auth_env, monkeypatch):
    pytest.importorskip("flask_wtf", reason="the auth extra is not installed")
    with serving(project, "server", "--auth", env=ONE_WORKER) as port:
        url = f"http://127.0.0.1:{port}"
        api = f"{url}/api/2.0/mlflow/experiments/search"
        assert "mlflow server" in command_lines() and PASSWORD not in command_lines()
        assert requests.post(api, json={"max_results": 5}, timeout=30).status_code == 401
        assert (
            requests.post(
                api, json={"max_results": 5}, auth=("admin", "wrong-password!"), timeout=30
            ).status_code
            == 401
        )
        assert requests.post(api, json={"max_results": 5}, auth=("admin", PASSWORD), timeout=30).ok

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        mlflow.set_tracking_uri(url)
        assert (
            cli.main(["train", "mlp", "--quiet", "--set", "train.epochs=1", "--set", "train.limit=100"]) == 0
        )
        (run,) = mlflow.search_runs(experiment_names=["digits-classification"], output_format="list")
        assert run.info.status == "FINISHED" and 0 <= run.data.metrics["test_accuracy"] <= 1
        assert "model_summary.txt" in {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    server = project / "mlruns" / "server"
    assert (server / "basic_auth.db").is_file() and not (project / "basic_auth.db").exists()
    log = (project / "server.log").read_text()
    assert "basic auth: users in" in log
    for secret in (PASSWORD, SECRET_KEY):
        assert secret not in log and secret not in (server / "basic_auth.ini").read_text()


@pytest.mark.parametrize(
    "unset, value, message",
    [
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", None, "--auth needs MLFLOW_FLASK_SERVER_SECRET_KEY"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", None, "MLFLOW_AUTH_ADMIN_PASSWORD is not set"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "tiny-pw", "MLFLOW_AUTH_ADMIN_PASSWORD is shorter than 12 characters"),
    ],
)
def test_a_missing_secret_is_one_line(project, auth_env, monkeypatch, capsys, unset, value, message):
    """In this process (the check runs before MLflow starts); the process-level exit code and the
    absence of a traceback are checked once, in test_a_missing_secret_stops_the_process."""
    monkeypatch.delenv(unset)
    if value:
        monkeypatch.setenv(unset, value)
    assert cli.main(["server", "--auth", "--port", str(free_port())]) == 2
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert value is None or value not in out.out + out.err  # the secret is never echoed


@pytest.mark.slow
def test_a_missing_secret_stops_the_process(project, auth_env, monkeypatch):
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD")
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": "tiny-pw"}
    result = run_cli(project, "server", "--auth", "--port", str(free_port()), env=env, timeout=60)
    assert_one_line_error(result, "MLFLOW_AUTH_ADMIN_PASSWORD is shorter than 12 characters")
    assert "tiny-pw" not in result.stdout + result.stderr
