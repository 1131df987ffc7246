"""`make predict` records every call: a run `predict` in the MLflow experiment `predictions` with the
model that answered (name, version, run id), the input count, and how far the inputs are from the
model's training data (its drift profile: `drift_*` metrics and drift.png)."""

import csv
import shutil

import mlflow
import numpy as np
import pytest
from PIL import Image

from pipeline import cli, data
from pipeline.tools import predict
from tests.helpers import REPO, relocate_project, train

QUICK = ["train.limit=300", "train.epochs=2"]


def image_folder(folder, x):
    folder.mkdir()
    for i, image in enumerate(x):
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def predictions():
    experiment = mlflow.get_experiment_by_name("predictions")
    return mlflow.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_each_call_is_a_run_naming_the_model_with_the_drift_of_its_inputs(
    project, champions, tmp_path, capsys, monkeypatch
):
    relocate_project(champions, project)  # its own copy: the cnn-same champion (v1), trained once
    champion = mlflow.MlflowClient().get_model_version_by_alias("digits-classifier", "champion")
    x = data.load("digits").examples("test")[0].read(slice(40))
    same, inverted = image_folder(tmp_path / "same", x), image_folder(tmp_path / "inverted", 1 - x)
    for folder in (same, inverted):
        assert cli.main(["predict", "--input", str(folder), "--output", str(tmp_path / "out.csv")]) == 0
    printed = capsys.readouterr().out
    assert "predict: model digits-classifier v1 (run " in printed and "drift_score 1.00" in printed
    assert printed.count("warning: drift_score 1.00 (high: above 0.3") == 1  # the inverted digits only
    runs = predictions()
    assert list(runs["tags.mlflow.runName"]) == ["predict", "predict"]
    assert set(runs["status"]) == {"FINISHED"} and list(runs["metrics.predict_inputs"]) == [40, 40]
    assert set(runs["tags.model.name"]) == {"digits-classifier"} and set(runs["tags.model.version"]) == {"1"}
    assert set(runs["tags.model.run_id"]) == {champion.run_id}
    same_score, inverted_score = runs["metrics.drift_score"]
    assert same_score <= 0.3 < 0.9 <= inverted_score  # held-out digits are not flagged; inverted ones are
    for run_id in runs["run_id"]:
        assert "drift.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    # read a few images at a time: the same rows and the same drift, folded chunk by chunk
    whole = (tmp_path / "out.csv").read_bytes()
    assert cli.main(["predict", "--input", str(inverted), "--output", str(tmp_path / "whole.csv")]) == 0
    monkeypatch.setattr(predict, "CHUNK_BYTES", 7 * 8 * 8 * 4)
    assert cli.main(["predict", "--input", str(inverted), "--output", str(tmp_path / "chunked.csv")]) == 0
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes() == whole
    last = predictions().iloc[-2:]
    drift = [c for c in last.columns if c.startswith("metrics.drift_")]
    assert np.allclose(last.iloc[0][drift].astype(float), last.iloc[1][drift].astype(float), rtol=1e-12)


@pytest.mark.integration  # trains mlp
def test_a_model_without_a_profile_still_predicts_and_says_so(project, tmp_path, capsys):
    unregistered = train("mlp", QUICK)  # not registered: its run has no drift profile
    folder = image_folder(tmp_path / "same", data.load("digits").examples("test")[0].read(slice(5)))
    uri = f"runs:/{unregistered.run_id}/model"
    assert (
        cli.main(["predict", "--model", uri, "--input", str(folder), "--output", str(tmp_path / "o.csv")])
        == 0
    )
    assert "drift: not measured (no image drift profile" in capsys.readouterr().out
    runs = predictions()
    assert runs["metrics.predict_inputs"][0] == 5 and runs["tags.model.run_id"][0] == unregistered.run_id
    assert "no image drift profile" in runs["tags.drift.profile"][0]


def predicted(capsys, *args) -> str:
    assert cli.main(["predict", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.integration
def test_predict_names_its_model_and_warns_when_the_inputs_do_not_fit(project, champions, tmp_path, capsys):
    relocate_project(champions, project)  # its own copy: each call is logged
    samples, out = REPO / "data" / "samples", str(tmp_path / "out.csv")
    champion = mlflow.MlflowClient().get_model_version_by_alias("digits-classifier", "champion")
    printed = predicted(capsys, "--input", str(samples / "digits"), "--output", out)
    assert (
        f"predict: model digits-classifier v1 (run {champion.run_id[:8]}, experiment cnn-same) · trained on "
        "digits (sklearn-digits): 10 classes (0, 1 … 9), 8x8 grayscale images, source files 8x8 px"
    ) in printed
    assert "warning" not in printed and "predict: 10 inputs" in printed
    printed = predicted(capsys, "--input", str(samples / "photos"), "--output", out)
    assert (
        "warning: these inputs are not what digits-classifier was trained on (digits): colour images "
        "(100% of the files) into a model trained on grey ones; files of 120x160 px (median) against "
        "training files of 8x8 px"
    ) in printed
    assert "give --model <a model trained on such images" in printed and "predict: 4 inputs" in printed
    assert "colour images" in predictions()["tags.predict.warning"].iloc[-1]  # and recorded with the call
    # the experiment's latest run and the run id the training line prints name the same model
    for name in ("cnn-same", champion.run_id[:8]):
        printed = predicted(capsys, "--model", name, "--input", str(samples / "digits"), "--output", out)
        assert f"run {champion.run_id[:8]}, experiment cnn-same) · trained on digits" in printed


@pytest.mark.integration
def test_a_champion_registered_before_the_facts_still_predicts(project, tmp_path, capsys):
    """digits-classifier as 068cd6e registered it (tests/fixtures): no `trained_on` in its metadata."""
    source = shutil.copytree(REPO / "tests" / "fixtures" / "digits-classifier-068cd6e", tmp_path / "earlier")
    client = mlflow.MlflowClient()
    client.create_registered_model("digits-classifier")
    client.create_model_version("digits-classifier", str(source))
    client.set_registered_model_alias("digits-classifier", "champion", "1")
    samples, out = REPO / "data" / "samples", tmp_path / "out.csv"
    printed = predicted(capsys, "--input", str(samples / "digits"), "--output", str(out))
    assert (
        "predict: model digits-classifier v1 (run cf131418, experiment cnn-same) · trained on: not recorded"
        in printed
    )
    assert "warning: these inputs" not in printed
    rows = list(csv.DictReader(out.open()))
    assert sum(r["predicted_class"] + ".png" == r["input"] for r in rows) >= 7  # it scored 0.88 when logged
    printed = predicted(capsys, "--input", str(samples / "photos"), "--output", str(out))
    assert "colour images (100% of the files) into a model trained on grey ones" in printed  # its input: grey
