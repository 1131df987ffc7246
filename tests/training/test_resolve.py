"""One resolver for predict, serve, retrieve and pipeline.load_model: a URI, a registered model (its
champion), an experiment (its latest finished run), a run id prefix; ambiguity said. The store is
filled by hand (runs without models, versions pointing at them): nothing is trained or loaded."""

import contextlib
import sqlite3

import mlflow
import pytest
import yaml

from pipeline.errors import UserError
from pipeline.training import resolve


def finished(task: str, name: str, **metrics) -> str:
    mlflow.set_experiment(task)
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_metrics(metrics)
    return run.info.run_id


def registered(name: str, run_id: str, alias: str | None = "champion") -> str:
    client = mlflow.MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id).version
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return str(version)


def renamed(project, run_id: str, new_id: str) -> None:
    """Give a run another id in the store (every table that names it), to make two ids share a prefix."""
    with contextlib.closing(sqlite3.connect(project / "mlruns" / "mlflow.db")) as db, db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [c[1] for c in db.execute(f'PRAGMA table_info("{table}")')]
            for column in {"run_uuid", "run_id"} & set(columns):
                db.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?', (new_id, run_id))


def test_each_kind_of_name_resolves(project):
    old = finished("digits-classification", "cnn-same", test_accuracy=0.9)
    new = finished("digits-classification", "cnn-same", test_accuracy=0.95)
    registered("digits-classifier", old)
    champion = resolve.resolve("digits-classifier")
    assert (champion.kind, champion.uri, champion.run_id) == (
        "registered",
        "models:/digits-classifier/1",
        old,
    )
    assert not champion.notes  # cnn-same registers as digits-classifier: the same model, no note
    latest = resolve.resolve("cnn-same")
    assert (latest.kind, latest.uri, latest.run_id) == ("experiment", f"runs:/{new}/model", new)
    assert "latest finished run" in latest.shown()
    by_id = resolve.resolve(old[:8])  # what the training line prints
    assert (by_id.kind, by_id.uri, by_id.experiment) == ("run", f"runs:/{old}/model", "cnn-same")
    uri = resolve.resolve(f"runs:/{new}/model")
    assert (uri.kind, uri.run_id) == ("uri", new)
    pinned = resolve.resolve("models:/digits-classifier@champion")
    assert (pinned.uri, pinned.run_id) == ("models:/digits-classifier/1", old)


def test_the_latest_finished_run_is_taken(project):
    done = finished("digits-classification", "mlp")
    mlflow.set_experiment("digits-classification")
    with pytest.raises(RuntimeError), mlflow.start_run(run_name="mlp"):  # a failed run after it
        raise RuntimeError("killed")
    assert resolve.resolve("mlp").run_id == done


def test_ambiguous_and_unknown_names_say_what_they_could_be(project):
    first = finished("digits-classification", "svc")
    second = finished("co2-forecast", "lstm")
    renamed(project, first, "abcdef01" + first[8:])
    renamed(project, second, "abcdef02" + second[8:])
    with pytest.raises(UserError, match=r"prefix 'abcdef0' is ambiguous: abcdef01\w+ \(svc in digits-"):
        resolve.resolve("abcdef0", said="MODEL=abcdef0")
    assert resolve.resolve("abcdef01").experiment == "svc"
    with pytest.raises(UserError) as unknown:
        resolve.resolve("cnn-sam", said="MODEL=cnn-sam")
    assert str(unknown.value).startswith("MODEL=cnn-sam: not a registered model (none yet)")
    assert "did you mean 'cnn-same'?" in str(unknown.value)
    with pytest.raises(UserError, match="nor the start of a run id"):
        resolve.resolve("fedcba98")
    with pytest.raises(UserError, match=r"'cnn-valid' has no finished run .* \(make train-cnn-valid\)"):
        resolve.resolve("cnn-valid")
    # a registered model named like another experiment: the registered one wins, the other is noted
    registered("mlp", finished("digits-classification", "svc"))
    latest_mlp = finished("digits-classification", "mlp")
    found = resolve.resolve("mlp")
    assert found.kind == "registered" and found.notes == (
        f"'mlp' could also mean mlp (experiment: its latest finished run {latest_mlp[:8]}): "
        f"give runs:/{latest_mlp}/model",
    )


def test_a_registered_model_without_the_alias_says_what_to_do(project):
    registered("digits-classifier", finished("digits-classification", "cnn-same"), alias=None)
    with pytest.raises(UserError) as error:
        resolve.resolve("digits-classifier", said="MODEL=digits-classifier")
    assert str(error.value).startswith(
        "MODEL=digits-classifier: registered model 'digits-classifier' has no version with alias 'champion'"
    )
    assert "(versions: 1); make train-cnn-same trains one and gates it" in str(error.value)


def pasted(message: str) -> dict:
    """The YAML between the last pair of backticks of a message, parsed."""
    return yaml.safe_load(message.rsplit("`", 2)[1])


def test_serving_what_registers_nothing_shows_what_to_paste(project):
    assert (
        resolve.registered_name("digits-classifier", "SERVE_MODEL=digits-classifier") == "digits-classifier"
    )
    assert resolve.registered_name("cnn-same", "SERVE_MODEL=cnn-same") == "digits-classifier"
    finished("digits-classification", "cnn-valid", test_accuracy=0.97)
    with pytest.raises(UserError) as error:
        resolve.registered_name("cnn-valid", "SERVE_MODEL=cnn-valid")
    message = str(error.value)
    assert message.startswith("SERVE_MODEL=cnn-valid: experiment 'cnn-valid' registers no model")
    assert "add `register_as: cnn-valid` to experiments.cnn-valid" in message
    gate = pasted(message)["cnn-valid"]  # params.yaml has retrain.gates: the entry to add under it
    assert gate == {"metric": "test_accuracy", "threshold": 0.92, "margin": 0.005}
    run_id = finished("digits-classification", "svc")
    with pytest.raises(UserError, match=rf"run {run_id[:8]} \(svc\) is one run, not a registered model"):
        resolve.registered_name(run_id[:8], f"SERVE_MODEL={run_id[:8]}")
