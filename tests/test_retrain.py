"""Scheduled retraining, simulated: tiny trainings, real MLflow registry, real files."""

import csv
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from PIL import Image

from pipeline import cli, data, registry, retrain, train
from pipeline.errors import UserError
from tests.conftest import edit_params

QUICK = ["train.epochs=3", "train.patience=3"]


@pytest.fixture
def project(project, monkeypatch):
    """The default project with a low gate threshold, so 3-epoch models can be promoted."""
    monkeypatch.setattr(train, "PROGRESS", 0)
    edit_params(project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(threshold=0.5))
    edit_params(
        project, lambda p: p["experiments"]["cnn-same"].setdefault("train", {}).update(epochs=3, patience=3)
    )
    return project


def write_batch(folder, x, labels):
    for i, (image, label) in enumerate(zip(x, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(folder / str(label) / f"{i}.png")
    return folder


def aliases():
    model = mlflow.MlflowClient().get_registered_model("digits-classifier")
    return {alias: str(version) for alias, version in model.aliases.items()}


def incoming(project, batch):
    return project / "data" / "incoming" / "digits" / batch


def test_first_training_promotes_then_a_good_batch_is_ingested(project):
    first = train.run("cnn-same")
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
    assert version.tags["gate.decision"] in ("promoted", "not promoted")
    assert version.tags["retrain.batches"] == "2026-11-01" and "gate_champion" in version.tags
    assert aliases()["challenger"] == "2"
    run = mlflow.get_run(version.run_id)
    assert run.data.tags["gate.decision"] == version.tags["gate.decision"]
    assert "gate_challenger" in run.data.metrics and "gate_champion" in run.data.metrics
    # the batch is never ingested twice
    assert retrain.main() == 0
    assert len(mlflow.MlflowClient().search_model_versions("name='digits-classifier'")) == 2


def test_a_batch_with_wrong_labels_keeps_the_champion(project):
    train.run("cnn-same")
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
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing was trained


def test_a_second_cycle_is_refused_while_one_runs(project, capsys):
    with retrain.lock(project / retrain.LOCK_FILE):
        assert cli.main(["retrain"]) == 1
    assert "another retrain is running (pid" in capsys.readouterr().err


def test_a_failure_after_training_leaves_champion_data_and_batches(project, monkeypatch):
    train.run("cnn-same")
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
    train.run("cnn-same")
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
    gate = registry.Gate(metric="test_accuracy", greater_is_better=True, threshold=0.9, margin=0.01)
    assert registry.decide(gate, 0.95, None)[0]
    assert not registry.decide(gate, 0.85, None)[0]
    assert registry.decide(gate, 0.95, 0.93)[0]
    assert not registry.decide(gate, 0.935, 0.93)[0]
    lower = registry.Gate(metric="test_rmse", greater_is_better=False, threshold=1.0, margin=0.05)
    assert registry.decide(lower, 0.5, 0.6)[0] and not registry.decide(lower, 0.58, 0.6)[0]
    assert not registry.decide(lower, 1.2, None)[0]


def weeks_after(dataset, n, start=1):
    """n weekly (date, value) rows continuing the series; `start` 2 skips a week."""
    last, value = dataset.arrays["dates_test"][-1], dataset.arrays["values_test"][-1]
    return [(last + 7 * k, round(float(value) + 0.05 * k, 2)) for k in range(start, start + n)]


def write_series_batch(project, batch, rows, name="weeks.csv"):
    folder = project / "data" / "incoming" / "co2" / batch
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("date,value\n" + "".join(f"{d},{v}\n" for d, v in rows))
    return folder


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (lambda ds: weeks_after(ds, 3) + weeks_after(ds, 1), "duplicate date"),
        (lambda ds: weeks_after(ds, 2, start=-1), "is already covered by dataset 'co2'"),
        (lambda ds: [(str(ds.arrays["dates_test"][-1] + 3), 371.0)], r"off the series' step \(W-SAT"),
        (lambda ds: weeks_after(ds, 1, start=12), "filling more than half of them would make data up"),
        (lambda ds: [("2002-01-05T00:00+01:00", 1.0), ("2002-01-12T00:00+05:00", 2.0)], "cannot be read as"),
        (lambda ds: [(d, "high") for d, _ in weeks_after(ds, 2)], "column 'value' line 2 has non-numeric"),
        (lambda ds: [("someday", 371.0)], "column 'date' line 2 is not a date"),
    ],
)
def test_bad_series_batches_are_refused_with_the_line(project, rows, message):
    co2 = data.load("co2")
    folder = write_series_batch(project, "bad", rows(co2))
    with pytest.raises(UserError, match=message):
        retrain.read_series_batch(folder, co2, [])


def test_a_series_batch_may_give_times_and_time_zones_but_no_folders(project):
    co2 = data.load("co2")
    (d1, v1), (d2, v2) = weeks_after(co2, 2)
    folder = write_series_batch(project, "tz", [(f"{d1}T23:30:00-05:00", v1), (f"{d2}T08:00:00-05:00", v2)])
    dates, values = retrain.read_series_batch(folder, co2, [])
    assert dates.tolist() == [d1, d2] and values.tolist() == [v1, v2]  # the local calendar date counts
    (folder / "more.csv").mkdir()
    with pytest.raises(UserError, match="more.csv: stray entry"):
        retrain.read_series_batch(folder, co2, [])


def test_a_monthly_series_takes_the_next_months(project):
    dates = np.array(["2016-01-01", "2016-02-01", "2016-03-01", "2016-04-01", "2016-05-01"], "datetime64[D]")
    arrays = {"dates_train": dates[:3], "values_train": np.arange(3.0)}
    arrays |= {"dates_val": dates[3:3], "values_val": np.zeros(0), "dates_test": dates[3:]}
    arrays["values_test"] = np.array([3.0, 4.0])
    monthly = data.Dataset("months", {"kind": "series", "params": {"fill": "time"}}, arrays)
    folder = write_series_batch(project, "m", [("2016-07-01", 6.0), ("2016-08-01", 7.0)])
    got, values = retrain.read_series_batch(folder, monthly, [])
    assert [str(d) for d in got] == ["2016-06-01", "2016-07-01", "2016-08-01"]
    assert values[0] == pytest.approx(5.0, abs=0.1)  # June filled by time interpolation
    with pytest.raises(UserError, match="off the series' step"):
        retrain.read_series_batch(write_series_batch(project, "x", [("2016-06-15", 5.0)]), monthly, [])


def test_a_series_batch_fills_a_skipped_week_and_the_next_batch_continues_it(project):
    co2 = data.load("co2")
    rows = weeks_after(co2, 1) + weeks_after(co2, 2, start=3)  # week 2 is missing
    dates, values = retrain.read_series_batch(write_series_batch(project, "a", rows), co2, [])
    assert len(dates) == 4 and np.all(np.diff(dates).astype(int) == 7)
    assert values[1] == pytest.approx((rows[0][1] + rows[1][1]) / 2)  # interpolated like data prep does
    later = write_series_batch(project, "b", [(dates[-1] + 7, 372.0)])
    assert retrain.read_series_batch(later, co2, [(dates, values)])[0][0] == dates[-1] + 7
    with pytest.raises(UserError, match="already covered"):  # the same weeks again
        retrain.read_series_batch(write_series_batch(project, "c", rows), co2, [(dates, values)])


def test_a_co2_cycle_appends_new_weeks_after_the_fixed_holdout(project, capsys):
    edit_params(project, lambda p: p["retrain"]["gates"]["co2-forecaster"].update(threshold=100.0))
    quick = {"epochs": 2, "patience": 2, "limit": 256}
    edit_params(project, lambda p: p["experiments"]["lstm"].setdefault("train", {}).update(quick))
    assert train.run("lstm").model_version == "1"
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
    assert version.tags["gate.decision"] in ("promoted", "not promoted") and "gate_champion" in version.tags
    # a rebuild of the dataset (say, after a params change) keeps the ingested weeks
    data.prepare("co2", force=True)
    assert data.load("co2").sha256 == after.sha256
