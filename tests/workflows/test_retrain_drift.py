"""Drift in a retrain cycle: every batch read is compared with the champion's training data before
any training, and the gate's `drift:` limit is applied (warn: trained on, recorded; quarantine: set
aside with the figures in REASON.txt). Tiny trainings, real MLflow store, real files."""

import mlflow
import numpy as np
import pytest

from pipeline import data
from pipeline.tools import report
from pipeline.workflows import retrain
from tests.helpers import (
    consumed,
    edit_params,
    files_of,
    incoming,
    loaded,
    quarantined,
    write_batch,
    write_series_batch,
)


def drift_limit(project, model, limit):
    """Set retrain.gates.<model>.drift (None: remove it)."""

    def change(params):
        gate = params["retrain"]["gates"][model]
        if limit is None:
            gate.pop("drift", None)
        else:
            gate["drift"] = limit

    edit_params(project, change)


def last_cycle(model):
    """The newest `retrain-<model>` run and its drift/batches.json, by batch id."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.runName = 'retrain-{model}'",
        order_by=["attributes.start_time DESC"],
    )
    run = mlflow.MlflowClient().get_run(runs["run_id"][0])
    listing = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/drift/batches.json")
    return run, {entry["batch"]: entry for entry in listing["batches"]}


@pytest.mark.slow
def test_held_out_digits_pass_and_inverted_ones_are_quarantined_with_their_figures(retrain_project, capsys):
    drift_limit(retrain_project, "digits-classifier", {"max": 0.3, "action": "quarantine"})
    x, y = loaded(data.load("digits"), "test")  # held out: never trained on, like new data should be
    write_batch(incoming(retrain_project, "a-held-out"), x[:40], y[:40])
    inverted = files_of(write_batch(incoming(retrain_project, "b-inverted"), 1 - x[40:80], y[40:80]))
    assert retrain.main(model="digits-classifier") == 0

    assert [b.id for b in data.read_manifest("digits").batches] == ["a-held-out"]
    assert consumed(retrain_project, "a-held-out").is_dir()
    folder = quarantined(retrain_project) / "b-inverted"
    assert files_of(folder / "batch") == inverted
    reason = (folder / "REASON.txt").read_text()
    assert "reason: drift: drift_score 1.00" in reason and "over 40 images exceeds" in reason
    assert "retrain.gates.digits-classifier.drift.max 0.3 (action: quarantine" in reason
    assert "drift_brightness_ks 1" in reason and "drift_intensity_psi" in reason
    assert len(reason.splitlines()) == 5  # the figures on the reason's one line

    run, judged = last_cycle("digits-classifier")
    assert judged["a-held-out"]["drift_score"] <= 0.3 and judged["a-held-out"]["action"] == "none"
    assert judged["b-inverted"]["drift_score"] == 1.0 and judged["b-inverted"]["action"] == "quarantine"
    tags = run.data.tags
    assert tags["drift.reference"].startswith("champion v1 (drift/profile.json of its run)")
    assert tags["drift.beyond"] == "b-inverted:quarantine" and tags["retrain.quarantined"] == "b-inverted"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "drift_score")
    assert sorted((m.step, m.value) for m in history)[1] == (1, 1.0)  # step = the batch's index
    assert "drift_confidence_ks" in judged["a-held-out"]["metrics"]  # the champion's probabilities
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "drift")}
    assert {"drift/a-held-out.png", "drift/b-inverted.png", "drift/batches.json"} <= plots
    out = capsys.readouterr().out
    assert "drift_score a-held-out 0." in out and "b-inverted 1.00 > 0.3 (quarantined)" in out
    # the challenger (nested) carries a drift profile, so a promoted one is a reference in turn
    challenger = mlflow.MlflowClient().get_model_version("digits-classifier", "2").run_id
    assert "drift/profile.json" in {a.path for a in mlflow.MlflowClient().list_artifacts(challenger, "drift")}
    # the report's drift table reads what the cycle logged
    assert report.main(log=False) == 0
    summary = (retrain_project / "reports" / "summary.md").read_text().splitlines()
    rows = [row for row in summary if "b-inverted" in row]
    assert len(rows) == 1 and "| b-inverted | 1.0 |" in rows[0] and rows[0].endswith("| quarantine | 0.3 |")


@pytest.mark.slow
def test_shifted_digits_are_trained_on_with_warn_and_recorded_without_a_limit(retrain_project, capsys):
    drift_limit(retrain_project, "digits-classifier", {"max": 0.3, "action": "warn"})
    x, y = loaded(data.load("digits"), "test")
    shifted = np.roll(x[:40], 2, axis=2)  # two pixels right: the same brightness, elsewhere
    write_batch(incoming(retrain_project, "shifted"), shifted, y[:40])
    assert retrain.main(model="digits-classifier") == 0
    assert consumed(retrain_project, "shifted").is_dir()  # warned about, trained on
    run, judged = last_cycle("digits-classifier")
    assert judged["shifted"]["action"] == "warn" and judged["shifted"]["worst"] == "mean_image"
    assert judged["shifted"]["drift_score"] > 0.3
    assert run.data.tags["drift.beyond"] == "shifted:warn" and run.data.metrics["retrain_drifted"] == 1
    assert "> 0.3 (warn: trained on)" in capsys.readouterr().out

    drift_limit(retrain_project, "digits-classifier", None)  # no limit: measured and recorded only
    write_batch(incoming(retrain_project, "inverted"), 1 - x[40:80], y[40:80])
    assert retrain.main(model="digits-classifier") == 0
    assert consumed(retrain_project, "inverted").is_dir()
    run, judged = last_cycle("digits-classifier")
    assert judged["inverted"]["drift_score"] == 1.0 and judged["inverted"]["action"] == "none"
    assert run.data.tags["drift.limit"] == "none" and run.data.tags["drift.beyond"] == "none"
    assert run.data.metrics["drift_score"] == 1.0


def continuation(dataset, n, shift=0.0, start=1):
    """n weeks continuing the series: the same week a year earlier plus a year's growth (+ shift)."""
    from pipeline.workflows.batch_drift import joined

    dates, values = joined(dataset.arrays)
    growth = values[-52:].mean() - values[-104:-52].mean()
    rows = []
    for k in range(start, start + n):
        value = values[len(values) - 1 + k - 52] + growth + shift
        rows.append((dates[-1] + np.timedelta64(7 * k, "D"), round(float(value), 2)))
    return rows


@pytest.mark.slow
def test_a_co2_level_shift_is_quarantined_and_a_normal_continuation_is_not(project, capsys):
    edit_params(project, lambda p: p["retrain"]["gates"]["co2-forecaster"].update(threshold=100.0))
    quick = {"epochs": 1, "patience": 1, "limit": 128}
    edit_params(project, lambda p: p["experiments"]["lstm"].setdefault("train", {}).update(quick))
    drift_limit(project, "co2-forecaster", {"max": 0.5, "action": "quarantine"})
    co2 = data.load("co2")
    write_series_batch(project, "2002-01", continuation(co2, 13))
    write_series_batch(project, "2002-02", continuation(co2, 13, shift=3.0, start=14))  # + 3 ppm
    assert retrain.main(model="co2-forecaster") == 0  # no champion yet: a profile is fitted

    assert [b.id for b in data.read_manifest("co2").batches] == ["2002-01"]
    reason = (quarantined(project, "co2") / "2002-02" / "REASON.txt").read_text()
    assert "drift_score 1.00 (residuals) over 13 new points exceeds" in reason
    assert "drift_residual_share 1" in reason and "drift_level_shift" in reason
    run, judged = last_cycle("co2-forecaster")
    assert judged["2002-01"]["drift_score"] <= 0.5 and judged["2002-01"]["action"] == "none"
    assert judged["2002-02"]["metrics"]["drift_level_shift"] > 3  # in training residuals' std
    assert run.data.tags["drift.reference"] == "fitted on the training split of co2 (no champion yet)"
    assert "2002-02 1.00 > 0.5 (quarantined)" in capsys.readouterr().out
