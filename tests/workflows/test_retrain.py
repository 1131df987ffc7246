"""Scheduled retraining, simulated: tiny trainings, real MLflow registry, real files."""

import csv
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from PIL import Image

from pipeline import cli, data, layout
from pipeline.training import registry
from pipeline.training.plan import Gate
from pipeline.workflows import retrain
from tests.conftest import edit_params, train, weeks_after, write_series_batch

QUICK = ["train.epochs=3", "train.patience=3"]


@pytest.fixture
def project(project, monkeypatch):
    """The default project with a low gate threshold, so 3-epoch models can be promoted."""
    edit_params(project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(threshold=0.5))
    edit_params(
        project, lambda p: p["experiments"]["cnn-same"].setdefault("train", {}).update(epochs=3, patience=3)
    )
    return project


def expected_decision(tags, higher: bool, threshold: float, margin: float) -> str:
    """The gate's rule applied by hand to the values it recorded: what it must have decided."""
    challenger, champion = float(tags["gate_challenger"]), float(tags["gate_champion"])
    sign = 1 if higher else -1
    passes = sign * (challenger - threshold) >= 0 and sign * (challenger - champion) >= margin
    return "promoted" if passes else "not promoted"


def write_batch(folder, x, labels, ready=True):
    """A batch folder of PNGs, one sub-folder per label; `ready`: with its READY file (uploaded)."""
    for i, (image, label) in enumerate(zip(x, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(folder / str(label) / f"{i}.png")
    if ready:
        (folder / "READY").touch()
    return folder


def aliases():
    model = mlflow.MlflowClient().get_registered_model("digits-classifier")
    return {alias: str(version) for alias, version in model.aliases.items()}


def incoming(project, batch):
    return project / "data" / "incoming" / "digits" / batch


def test_first_training_promotes_then_a_good_batch_is_ingested(project):
    first = train("cnn-same")
    assert first.model_version == "1" and first.decision["promoted"]
    assert aliases() == {"champion": "1", "challenger": "1"}

    ds = data.load("digits")
    x, y = ds.xy("train")
    write_batch(incoming(project, "2026-11-01"), x[:60], y[:60])
    before = ds.manifest
    assert retrain.main() == 0

    after = data.read_manifest("digits")
    assert [b["id"] for b in after["batches"]] == ["2026-11-01"]
    assert after["shapes"]["x_train"][0] == before["shapes"]["x_train"][0] + 60
    assert after["shapes"]["x_test"] == before["shapes"]["x_test"]  # the holdout never changes
    assert not incoming(project, "2026-11-01").exists()
    assert (project / "data" / "consumed" / "digits" / "2026-11-01").is_dir()
    version = mlflow.MlflowClient().get_model_version("digits-classifier", "2")
    assert version.tags["gate.decision"] == expected_decision(
        version.tags, higher=True, threshold=0.5, margin=0.0025
    )
    assert version.tags["retrain.batches"] == "2026-11-01" and "gate_champion" in version.tags
    assert aliases()["challenger"] == "2"
    run = mlflow.get_run(version.run_id)
    assert run.data.tags["gate.decision"] == version.tags["gate.decision"]
    assert "gate_challenger" in run.data.metrics and "gate_champion" in run.data.metrics
    # the batch is never ingested twice
    assert retrain.main() == 0
    assert len(mlflow.MlflowClient().search_model_versions("name='digits-classifier'")) == 2


def test_a_batch_with_wrong_labels_keeps_the_champion(project):
    train("cnn-same")
    x, y = data.load("digits").xy("train")
    wrong = (y + 1) % 10  # every label wrong, as many as the clean training set
    write_batch(incoming(project, "poisoned"), np.concatenate([x, x]), np.concatenate([wrong, wrong]))
    assert retrain.main() == 0
    version = mlflow.MlflowClient().get_model_version("digits-classifier", "2")
    assert version.tags["gate.decision"] == "not promoted"
    assert float(version.tags["gate_challenger"]) < float(version.tags["gate_champion"])
    assert aliases()["champion"] == "1"


def test_no_new_data_is_a_quick_no_op_without_tensorflow(project):
    code = (
        "import sys; from pipeline import cli; rc = cli.main(['retrain']); "
        "sys.exit(rc or (3 if 'tensorflow' in sys.modules or 'mlflow' in sys.modules else 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=project
    )
    assert out.returncode == 0, out.stderr
    assert "no new data" in out.stdout


def test_bad_batches_are_quarantined_with_a_reason(project):
    x, y = data.load("digits").xy("train")
    corrupt = write_batch(incoming(project, "corrupt"), x[:5], y[:5])
    (corrupt / str(y[0]) / "broken.png").write_bytes(b"\x89PNG not really")
    write_batch(incoming(project, "unknown-class"), x[:3], ["seven", "seven", "seven"])
    assert retrain.main() == 0
    quarantine = project / "data" / "quarantine" / "digits"
    assert "broken.png: not an image" in (quarantine / "corrupt" / "REASON.txt").read_text()
    assert "unknown class 'seven'" in (quarantine / "unknown-class" / "REASON.txt").read_text()
    assert not list((project / "data" / "incoming" / "digits").iterdir())
    assert data.read_manifest("digits")["batches"] == []
    runs = mlflow.search_runs(search_all_experiments=True)  # nothing was trained: the cycle's run only
    assert runs["tags.mlflow.runName"].tolist() == ["retrain-digits-classifier"]
    assert runs["status"].tolist() == ["FINISHED"]
    assert runs["tags.retrain.quarantined"].tolist() == ["corrupt,unknown-class"]
    assert (quarantine / "corrupt" / "batch" / str(y[0]) / "broken.png").read_bytes() == b"\x89PNG not really"


def test_a_second_cycle_is_refused_while_one_runs(project, capsys):
    with retrain.lock(layout.retrain_lock()):
        assert cli.main(["retrain"]) == 1
    assert "another retrain is running (pid" in capsys.readouterr().err


def test_a_failure_after_training_leaves_champion_data_and_batches(project, monkeypatch):
    train("cnn-same")
    x, y = data.load("digits").xy("train")
    write_batch(incoming(project, "b1"), x[:40], y[:40])
    manifest = data.read_manifest("digits")

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(retrain, "commit", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        retrain.main()
    assert aliases()["champion"] == "1"
    assert data.read_manifest("digits") == manifest
    assert len(list(incoming(project, "b1").rglob("*.png"))) == 40
    monkeypatch.undo()
    monkeypatch.setenv("PIPELINE_ROOT", str(project))
    assert retrain.main() == 0  # the next cycle starts cleanly and ingests it
    assert [b["id"] for b in data.read_manifest("digits")["batches"]] == ["b1"]


def test_predict_with_the_champion(project, tmp_path):
    train("cnn-same")
    x, y = data.load("digits").xy("test")
    folder = write_batch(tmp_path / "to-predict", x[:6], y[:6])
    output = tmp_path / "out.csv"
    assert cli.main(["predict", "--input", str(folder), "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 6 and set(rows[0]) == {"input", "predicted_class", "probability"}
    assert all(0 <= float(r["probability"]) <= 1 for r in rows)
    assert sum(r["predicted_class"] == r["input"].split("/")[0] for r in rows) >= 3  # most are right
    assert cli.main(["predict", "--input", str(tmp_path / "missing"), "--output", str(output)]) == 2
    assert cli.main(["predict", "--model", "models:/nope@champion", "--input", str(folder)]) == 2


def test_gate_rule():
    gate = Gate(metric="test_accuracy", threshold=0.9, margin=0.01)
    assert registry.decide(gate, True, 0.95, None)[0]
    assert not registry.decide(gate, True, 0.85, None)[0]
    assert registry.decide(gate, True, 0.95, 0.93)[0]
    assert not registry.decide(gate, True, 0.935, 0.93)[0]
    lower = Gate(metric="test_rmse", threshold=1.0, margin=0.05)
    assert registry.decide(lower, False, 0.5, 0.6)[0] and not registry.decide(lower, False, 0.58, 0.6)[0]
    assert not registry.decide(lower, False, 1.2, None)[0]


def test_a_co2_cycle_appends_new_weeks_after_the_fixed_holdout(project, capsys):
    edit_params(project, lambda p: p["retrain"]["gates"]["co2-forecaster"].update(threshold=100.0))
    quick = {"epochs": 2, "patience": 2, "limit": 256}
    edit_params(project, lambda p: p["experiments"]["lstm"].setdefault("train", {}).update(quick))
    assert train("lstm").model_version == "1"
    co2 = data.load("co2")
    write_series_batch(project, "2002-01", weeks_after(co2, 8))
    write_series_batch(project, "2002-02", weeks_after(co2, 2, start=-1))  # weeks it already has
    assert retrain.main(model="co2-forecaster") == 0
    out = capsys.readouterr().out
    assert "batches 2002-01 (+8 examples); quarantined 2002-02" in out

    after = data.load("co2")
    assert [b["id"] for b in after.manifest["batches"]] == ["2002-01"]
    assert len(after.arrays["values_recent"]) == 8
    for split in ("train", "val", "test"):  # the holdout (and the rest) stay as they were
        assert np.array_equal(after.arrays[f"values_{split}"], co2.arrays[f"values_{split}"])
    quarantined = project / "data" / "quarantine" / "co2" / "2002-02" / "REASON.txt"
    assert "already covered" in quarantined.read_text()
    version = mlflow.MlflowClient().get_model_version("co2-forecaster", "2")
    assert version.tags["retrain.batches"] == "2002-01"
    assert version.tags["gate.decision"] == expected_decision(
        version.tags, higher=False, threshold=100.0, margin=0.005
    )
    # a rebuild of the dataset (say, after a params change) keeps the ingested weeks
    data.prepare("co2", force=True)
    assert data.load("co2").sha256 == after.sha256
