"""The team set-up: `pipeline server` on a PostgreSQL backend store, artifacts served by the server,
clients logging over HTTP. Skipped (saying why) where PostgreSQL is not installed."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from pipeline import cli
from tests.helpers import ONE_WORKER, edit_params, free_port, serving

psycopg2 = pytest.importorskip("psycopg2", reason="the postgres extra is not installed")

QUICK = ["--quiet", "--set", "train.epochs=2", "--set", "train.patience=5", "--set", "train.limit=100"]


def train_and_sweep(root, tracking_uri: str, monkeypatch) -> None:
    """What a client does against the server: one training, then a 2-trial sweep (Ray Tune). In this
    process (the commands' own exit codes; Ray's trial workers get the URI from the sweep): a
    subprocess per command would only import TensorFlow twice more. One trial at a time: one Ray
    worker runs both (reuse_actors), one TensorFlow import instead of two."""
    import mlflow

    pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    assert cli.main(["train", "mlp", *QUICK]) == 0
    space = {"train.learning_rate": {"grid": [0.001, 0.01]}}
    edit_params(root, lambda p: p["experiments"]["mlp"]["search"].update(scheduler="fifo", space=space))
    assert cli.main(["sweep", "mlp", "--num-samples", "1", "--max-concurrent", "1", *QUICK]) == 0


@pytest.mark.slow
def test_runs_go_to_postgres_and_artifacts_to_the_server(project, postgres_uri, tmp_path, monkeypatch):
    artifacts = tmp_path / "server-artifacts"
    # the URI holds a password: it goes in the environment (a --db with a password is refused)
    env = {"MLFLOW_BACKEND_STORE_URI": postgres_uri, **ONE_WORKER}
    with serving(project, "server", "--artifacts", str(artifacts), timeout=240, env=env) as port:
        url = f"http://127.0.0.1:{port}"
        train_and_sweep(project, url, monkeypatch)
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("digits-classification")
        runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
        assert sorted(runs) == ["mlp", "mlp-trial-00000", "mlp-trial-00001", "sweep-mlp"]
        assert all(r.info.status == "FINISHED" for r in runs.values())
        # the sweep: one parent, a nested run per trial, the best trial's config on the parent
        parent = runs["sweep-mlp"]
        trials = [runs["mlp-trial-00000"], runs["mlp-trial-00001"]]
        assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
        assert sorted(t.data.params["train.learning_rate"] for t in trials) == ["0.001", "0.01"]
        assert len({t.data.tags["pid"] for t in trials}) == 1  # one worker ran both, one after the other
        assert parent.data.params["best.train.learning_rate"] in ("0.001", "0.01")
        best = max(t.data.metrics["val_accuracy"] for t in trials)
        assert parent.data.metrics["best_val_accuracy"] == pytest.approx(best)
        # the training: per-epoch metrics, artifacts proxied by the server
        run = runs["mlp"]
        assert 0 <= run.data.metrics["test_accuracy"] <= 1
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
        # proxied: the client sees mlflow-artifacts:/ URIs and downloads through the server
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        listed = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"model_summary.txt", "confusion_matrix.png"} <= listed
        summary = client.download_artifacts(run.info.run_id, "model_summary.txt", str(tmp_path))
        assert "Total params" in open(summary).read()
        # MLflow 3 keeps the model as a LoggedModel beside the run, served the same way
        models = client.search_logged_models([experiment.experiment_id])
        assert models and {m.source_run_id for m in models} == {run.info.run_id}
        assert "MLmodel" in {f.path for f in client.list_logged_model_artifacts(models[0].model_id)}
    # the runs are rows in PostgreSQL and the files are in the server's artifact folder
    with psycopg2.connect(postgres_uri) as db, db.cursor() as cursor:
        cursor.execute("SELECT name, status FROM runs")
        assert sorted(cursor.fetchall()) == sorted((name, "FINISHED") for name in runs)
    assert any(artifacts.rglob("model_summary.txt"))
    assert not (project / "mlruns" / "artifacts").exists()  # nothing written on the client side


@pytest.mark.parametrize(
    "db, message",
    [
        ("postgres//nohost", "not a database URI"),
        ("oracle://u:p@127.0.0.1/x", "the scheme must be one of postgresql, mysql, sqlite, mssql"),
        ("postgresql://u:hunter2@127.0.0.1:{port}/mlflow", "cannot connect to the backend store"),
    ],
)
def test_a_bad_backend_store_is_one_line(project, capsys, monkeypatch, db, message):
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", db.format(port=free_port()))
    assert cli.main(["server", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "hunter2" not in err  # the password is never echoed


def test_the_backend_store_uri_can_come_from_the_environment(project, capsys, monkeypatch):
    # what `make server DB=…` does: the URI (and its password) stays off the command line
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", "oracle://u:hunter2@127.0.0.1/x")
    assert cli.main(["server", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "oracle://u:***@127.0.0.1/x: the scheme must be one of" in err and "hunter2" not in err
