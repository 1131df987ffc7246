"""Scheduled retraining, simulated: tiny trainings, real MLflow registry, real files."""

import csv
import os
import select
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
import yaml

from pipeline import cli, data, layout
from pipeline.errors import PipelineError
from pipeline.training import registry
from pipeline.workflows import retrain
from tests.helpers import (
    aliases,
    assert_one_line_error,
    consumed,
    digits_batch,
    edit_params,
    files_of,
    incoming,
    loaded,
    png_header_only,
    quarantined,
    relocate_project,
    train,
    weeks_after,
    write_batch,
    write_series_batch,
)

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


@pytest.mark.slow
def test_first_training_promotes_then_a_good_batch_is_ingested(project):
    first = train("cnn-same")
    assert first.model_version == "1" and first.decision.promoted
    assert aliases() == {"champion": "1", "challenger": "1"}

    ds = data.load("digits")
    x, y = loaded(ds, "train")
    write_batch(incoming(project, "2026-11-01"), x[:60], y[:60])
    before = ds.manifest
    assert retrain.main() == 0

    after = data.read_manifest("digits")
    assert [b.id for b in after.batches] == ["2026-11-01"]
    assert after.shapes["x_train"][0] == before.shapes["x_train"][0] + 60
    assert after.shapes["x_test"] == before.shapes["x_test"]  # the holdout never changes
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


@pytest.mark.slow
def test_a_batch_with_wrong_labels_keeps_the_champion(retrain_project):
    x, y = loaded(data.load("digits"), "train")
    x, wrong = x[:200], (y[:200] + 1) % 10  # every label wrong, twice as many as the 200 clean examples
    write_batch(incoming(retrain_project, "poisoned"), np.concatenate([x, x]), np.concatenate([wrong, wrong]))
    assert retrain.main() == 0
    version = mlflow.MlflowClient().get_model_version("digits-classifier", "2")
    assert version.tags["gate.decision"] == "not promoted"
    assert float(version.tags["gate_challenger"]) < float(version.tags["gate_champion"])
    assert aliases()["champion"] == "1"


@pytest.mark.slow
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


@pytest.mark.integration  # a whole retrain cycle (nothing trained)
def test_bad_batches_are_quarantined_with_a_reason(project):
    x, y = loaded(data.load("digits"), "train")
    corrupt = write_batch(incoming(project, "corrupt"), x[:5], y[:5])
    (corrupt / str(y[0]) / "broken.png").write_bytes(b"\x89PNG not really")
    write_batch(incoming(project, "unknown-class"), x[:3], ["seven", "seven", "seven"])
    assert retrain.main() == 0
    quarantine = project / "data" / "quarantine" / "digits"
    assert "broken.png: not an image" in (quarantine / "corrupt" / "REASON.txt").read_text()
    assert "unknown class 'seven'" in (quarantine / "unknown-class" / "REASON.txt").read_text()
    assert not list((project / "data" / "incoming" / "digits").iterdir())
    assert data.read_manifest("digits").batches == []
    runs = mlflow.search_runs(search_all_experiments=True)  # nothing was trained: the cycle's run only
    assert runs["tags.mlflow.runName"].tolist() == ["retrain-digits-classifier"]
    assert runs["status"].tolist() == ["FINISHED"]
    assert runs["tags.retrain.quarantined"].tolist() == ["corrupt,unknown-class"]
    assert (quarantine / "corrupt" / "batch" / str(y[0]) / "broken.png").read_bytes() == b"\x89PNG not really"


def test_a_second_cycle_is_refused_while_one_runs(project, capsys):
    with retrain.lock():
        assert cli.main(["retrain"]) == 1
    assert "another retrain is running (pid" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failure_after_training_leaves_champion_data_and_batches(retrain_project, monkeypatch):
    project = retrain_project  # a 1-epoch champion and challengers: what is checked is where things are
    x, y = loaded(data.load("digits"), "train")
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
    assert [b.id for b in data.read_manifest("digits").batches] == ["b1"]


@pytest.mark.slow
def test_predict_with_the_champion(project, tmp_path):
    train("cnn-same")
    x, y = loaded(data.load("digits"), "test")
    folder = write_batch(tmp_path / "to-predict", x[:6], y[:6])
    output = tmp_path / "out.csv"
    assert cli.main(["predict", "--input", str(folder), "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 6 and set(rows[0]) == {"input", "predicted_class", "probability"}
    assert all(0 <= float(r["probability"]) <= 1 for r in rows)
    assert sum(r["predicted_class"] == r["input"].split("/")[0] for r in rows) >= 3  # most are right
    assert cli.main(["predict", "--input", str(tmp_path / "missing"), "--output", str(output)]) == 2
    assert cli.main(["predict", "--model", "models:/nope@champion", "--input", str(folder)]) == 2


@pytest.mark.slow
def test_a_co2_cycle_appends_new_weeks_after_the_fixed_holdout(project, champions, capsys):
    relocate_project(champions, project)  # the champion co2-forecaster v1 (lstm), trained once per run
    edit_params(project, lambda p: p["retrain"]["gates"]["co2-forecaster"].update(threshold=100.0))
    quick = {"epochs": 1, "patience": 1, "limit": 256}  # what is checked is where the weeks go
    edit_params(project, lambda p: p["experiments"]["lstm"].setdefault("train", {}).update(quick))
    assert aliases("co2-forecaster")["champion"] == "1"
    co2 = data.load("co2")
    write_series_batch(project, "2002-01", weeks_after(co2, 8))
    write_series_batch(project, "2002-02", weeks_after(co2, 2, start=-1))  # weeks it already has
    assert retrain.main(model="co2-forecaster") == 0
    out = capsys.readouterr().out
    assert "batches 2002-01 (+8 examples); quarantined 2002-02" in out

    after = data.load("co2")
    assert [b.id for b in after.manifest.batches] == ["2002-01"]
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


# --------------------------------------------------------------------------- issue 14


@pytest.mark.slow
def test_a_batch_re_sent_under_a_used_name_is_neither_dropped_nor_overwritten(retrain_project):
    first = files_of(digits_batch(retrain_project, "weekly", 0))
    assert retrain.main(model="digits-classifier") == 0
    second = files_of(digits_batch(retrain_project, "weekly", 20))  # other images, the same folder name
    assert retrain.main(model="digits-classifier") == 0
    batches = data.read_manifest("digits").batches
    sha = batches[1].sha256
    assert [b.id for b in batches] == ["weekly", f"weekly-{sha[:8]}"]
    assert [b.name for b in batches] == ["weekly", "weekly"] and batches[0].sha256 != sha
    assert files_of(consumed(retrain_project, "weekly")) == first  # the first one's files are intact
    assert files_of(consumed(retrain_project, f"weekly-{sha[:8]}")) == second
    digits_batch(retrain_project, "weekly", 0)  # the very first files once more: never trained twice
    assert retrain.main(model="digits-classifier") == 0
    assert len(data.read_manifest("digits").batches) == 2
    reason = (quarantined(retrain_project) / "weekly" / "REASON.txt").read_text()
    assert "the same files as batch 'weekly'" in reason
    assert files_of(quarantined(retrain_project) / "weekly" / "batch") == first
    assert files_of(consumed(retrain_project, "weekly")) == first


@pytest.mark.slow
def test_a_batch_still_being_copied_is_not_read(retrain_project, capsys):
    edit_params(retrain_project, lambda p: p["retrain"].update(settle_seconds=2))
    folder = digits_batch(retrain_project, "copying", 0, ready=False)  # no READY, files written just now
    assert retrain.main(model="digits-classifier") == 0
    out = capsys.readouterr().out
    assert "no new data" in out and "still arriving: copying" in out
    assert folder.is_dir() and data.read_manifest("digits").batches == []
    time.sleep(2.2)  # nothing changed for settle_seconds: it counts
    assert retrain.main(model="digits-classifier") == 0
    assert [b.id for b in data.read_manifest("digits").batches] == ["copying"]


@pytest.mark.slow
def test_links_special_files_and_odd_names_are_quarantined_and_never_followed(retrain_project, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    hostile = digits_batch(retrain_project, "hostile", 0)
    (hostile / "REASON.txt").symlink_to(outside)  # quarantine would once write its note through this
    (hostile / "3" / "secret.png").symlink_to(outside)
    fifo = digits_batch(retrain_project, "fifo", 20)
    os.mkfifo(fifo / "3" / "pipe.png")
    digits_batch(retrain_project, "a" * 240, 40)  # too long a name: refused before any training
    broken = digits_batch(retrain_project, "latin1", 60)
    (broken / "3" / os.fsdecode(b"caf\xe9.png")).write_bytes(b"not an image")
    good = files_of(digits_batch(retrain_project, "good", 80))
    assert cli.main(["retrain", "--model", "digits-classifier"]) == 0
    assert outside.read_text() == "precious\n"
    assert [b.id for b in data.read_manifest("digits").batches] == ["good"]
    assert files_of(consumed(retrain_project, "good")) == good
    q = quarantined(retrain_project)
    assert "a symbolic link" in (q / "hostile" / "REASON.txt").read_text()
    assert (q / "hostile" / "batch" / "REASON.txt").is_symlink()  # the batch kept as it arrived
    assert "pipe.png: a named pipe" in (q / "fifo" / "REASON.txt").read_text()
    (long_name,) = [f for f in q.iterdir() if f.name.startswith("batch-")]
    assert "is not valid" in (long_name / "REASON.txt").read_text()
    assert (long_name / "batch").name == "batch" and len(files_of(long_name / "batch")) == 21
    note = (q / "latin1" / "REASON.txt").read_text()
    assert "caf\\xe9.png: not an image" in note
    assert (q / "latin1" / "batch" / "3" / os.fsdecode(b"caf\xe9.png")).read_bytes() == b"not an image"


@pytest.mark.slow
def test_a_decompression_bomb_is_quarantined_and_the_good_batch_beside_it_proceeds(retrain_project):
    bomb = digits_batch(retrain_project, "bomb", 0, n=3)
    png_header_only(bomb / "3" / "bomb.png", 100_000, 100_000)
    digits_batch(retrain_project, "good", 20)
    assert retrain.main(model="digits-classifier") == 0
    assert [b.id for b in data.read_manifest("digits").batches] == ["good"]
    reason = (quarantined(retrain_project) / "bomb" / "REASON.txt").read_text()
    assert "bomb.png" in reason and len(reason.splitlines()) == 5


@pytest.mark.slow
def test_the_cycle_is_one_mlflow_run_with_the_challenger_nested(retrain_project):
    b1 = digits_batch(retrain_project, "b1", 0)
    for junk in ("Thumbs.db", ".DS_Store", "3/desktop.ini", "__MACOSX/3/._0.png"):  # copied from elsewhere
        (b1 / junk).parent.mkdir(parents=True, exist_ok=True)
        (b1 / junk).write_bytes(b"junk")
    (incoming(retrain_project, "bad") / "x").mkdir(parents=True)
    (incoming(retrain_project, "bad") / "READY").touch()
    assert retrain.main(model="digits-classifier") == 0
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.mlflow.runName = 'retrain-digits-classifier'"
    )
    (parent,) = runs.itertuples()
    client = mlflow.MlflowClient()
    tags = client.get_run(parent.run_id).data.tags
    assert tags["retrain.batches"] == "b1" and tags["retrain.quarantined"] == "bad"
    assert tags["gate.decision"] in ("promoted", "not promoted")
    children = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'"
    )
    assert children["tags.mlflow.runName"].tolist() == ["cnn-same"]
    listing = mlflow.artifacts.load_dict(f"runs:/{parent.run_id}/retrain_batches.json")
    sha = data.read_manifest("digits").batches[0].sha256
    assert listing["batches"] == [{"id": "b1", "name": "b1", "sha256": sha, "examples": 20}]
    assert listing["quarantined"][0]["name"] == "bad"
    assert mlflow.search_runs(
        search_all_experiments=True, filter_string="attributes.status = 'RUNNING'"
    ).empty


@pytest.mark.slow
def test_a_misspelt_gate_metric_stops_before_training(retrain_project, capsys):
    edit_params(
        retrain_project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(metric="test_accuracy2")
    )
    folder = digits_batch(retrain_project, "b1", 0)
    before = files_of(folder)
    code = cli.main(["retrain"])  # in this process: the exit code and stderr are what `main` returns
    result = subprocess.CompletedProcess(["retrain"], code, *capsys.readouterr())
    assert_one_line_error(result, "retrain.gates.digits-classifier.metric 'test_accuracy2'")
    assert files_of(folder) == before and data.read_manifest("digits").batches == []
    assert len(mlflow.search_runs(search_all_experiments=True)) == 1  # the champion's run only


@pytest.mark.slow
def test_a_registry_that_cannot_be_read_promotes_nothing(retrain_project, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    digits_batch(retrain_project, "b1", 0)
    original = mlflow.MlflowClient.get_registered_model

    def locked(self, name):
        if os.environ.get("LOCK_STORE"):
            raise MlflowException(
                "(sqlite3.OperationalError) database is locked", error_code="TEMPORARILY_UNAVAILABLE"
            )
        return original(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_registered_model", locked)
    monkeypatch.setenv("LOCK_STORE", "1")
    assert cli.main(["retrain", "--model", "digits-classifier"]) == 1  # before training: nothing done
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: cannot read the champion of 'digits-classifier' from the registry "
        "((sqlite3.OperationalError) database is locked); nothing promoted"
    ]
    assert data.read_manifest("digits").batches == [] and incoming(retrain_project, "b1").is_dir()

    # the store locks up after training, at the gate: nothing promoted, the next cycle completes it
    real_register = registry.register

    def register_then_lock(*args):
        version = real_register(*args)
        monkeypatch.setenv("LOCK_STORE", "1")
        return version

    monkeypatch.delenv("LOCK_STORE")
    monkeypatch.setattr(registry, "register", register_then_lock)
    assert cli.main(["retrain", "--model", "digits-classifier"]) == 1
    assert "cannot read the champion" in capsys.readouterr().err
    monkeypatch.delenv("LOCK_STORE")
    assert aliases() == {"champion": "1", "challenger": "2"}  # registered, not promoted
    assert mlflow.search_runs(
        search_all_experiments=True, filter_string="attributes.status = 'RUNNING'"
    ).empty
    assert retrain.main(model="digits-classifier") == 0
    version = mlflow.MlflowClient().get_model_version("digits-classifier", "2")
    assert version.tags["gate.champion_version"] == "1" and "gate_champion" in version.tags
    assert (
        consumed(retrain_project, "b1").is_dir() and not layout.retrain_journal("digits-classifier").exists()
    )


@pytest.mark.slow
def test_a_training_gate_waits_while_a_retrain_holds_the_lock(retrain_project):
    client = mlflow.MlflowClient()
    with retrain.lock():
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "train", "cnn-same", "--quiet"],
            cwd=retrain_project,
            env={**os.environ, "PIPELINE_ROOT": str(retrain_project)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # its one line on stderr says it waits at its gate (read with a deadline: never a hang)
        ready, _, _ = select.select([process.stderr], [], [], 240)
        waiting = process.stderr.readline() if ready else ""
        assert waiting.startswith("gate of cnn-same: waiting for pid ") and "(retrain)" in waiting, waiting
        assert process.poll() is None, process.communicate()
        assert len(client.search_model_versions("name='digits-classifier'")) == 2  # registered
        assert "gate.decision" not in client.get_model_version("digits-classifier", "2").tags
        assert aliases()["champion"] == "1"
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    assert "digits-classifier v2: " in out  # gated once the lock was free
    assert "gate.decision" in client.get_model_version("digits-classifier", "2").tags


def test_a_committed_journal_of_an_earlier_release_stops_in_one_line(project):
    """Its decision (the dict of an earlier release) cannot be replayed: nothing is registered."""
    state = {
        "model": "digits-classifier",
        "step": "decided",
        "run_id": "0" * 32,
        "model_uri": "models:/m-0",
        "batches": [{"id": "b1", "name": "b1", "sha256": "0" * 64}],
        "decision": {"gate.decision": "promoted", "gate_challenger": 0.99, "promoted": True},
    }
    with pytest.raises(PipelineError, match="digits-classifier.json: a committed cycle journaled by an"):
        retrain.complete(state, inbox=None)
    assert "version" not in state


def test_retraining_what_registers_nothing_shows_what_to_paste(project):
    with pytest.raises(PipelineError) as refused:
        retrain.main("cnn-valid")
    message = str(refused.value)
    assert message.startswith("--model cnn-valid: experiment 'cnn-valid' registers no model (known: ")
    gate = yaml.safe_load(message.rsplit("`", 2)[1])["cnn-valid"]  # under retrain.gates, ready to paste
    assert gate["metric"] == "test_accuracy" and 0 < gate["threshold"] < 0.95
    with pytest.raises(PipelineError, match="the model it registers is 'digits-classifier': --model digits-"):
        retrain.main("cnn-same")
