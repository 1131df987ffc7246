"""A real `mlflow server` on a free port: a run logged over HTTP, read back over the REST API."""

import mlflow
import psutil
import pytest
import requests

from pipeline import cli
from pipeline.tools import ui
from tests.helpers import ONE_WORKER, serving


@pytest.fixture
def server(project, monkeypatch):
    with serving(project, "server", env=ONE_WORKER) as port:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        yield url


@pytest.mark.slow
def test_training_logs_over_http(server, project, monkeypatch):
    assert cli.main(["train", "mlp", "--quiet", "--set", "train.epochs=1", "--set", "train.limit=100"]) == 0
    api = f"{server}/api/2.0/mlflow"
    experiment = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": "digits-classification"}
    ).json()
    found = requests.post(
        f"{api}/runs/search", json={"experiment_ids": [experiment["experiment"]["experiment_id"]]}
    ).json()
    (run,) = found["runs"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_name"] == "mlp"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert 0 <= metrics["test_accuracy"] <= 1 and "val_loss" in metrics
    artifacts = requests.get(f"{api}/artifacts/list", params={"run_id": run["info"]["run_id"]}).json()
    assert {"confusion_matrix.png", "model_summary.txt"} <= {f["path"] for f in artifacts["files"]}
    # the artifacts live in the server's store, not in the client's project
    assert (project / "mlruns" / "server" / "artifacts").is_dir()
    # MLflow's job runner (huey consumers, for GenAI jobs) is not started unless the user asks
    lines = server_processes(server.rsplit(":", 1)[1])
    assert any("mlflow server" in line for line in lines)
    assert not any("huey" in line or "_job_runner" in line for line in lines), lines
    monkeypatch.setenv(ui.JOB_EXECUTION, "true")
    assert ui.server_env("sqlite:///x.db")[ui.JOB_EXECUTION] == "true"


def server_processes(port: str) -> list[str]:
    """The command lines of `pipeline server --port <port>` and everything it started."""
    (top,) = [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[-3:] == ["server", "--port", port]
    ]
    lines = []
    for process in top.children(recursive=True):
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:  # ended meanwhile
            continue
    return lines
