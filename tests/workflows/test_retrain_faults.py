"""A retrain cycle killed (kill -9, by the fault hook PIPELINE_FAULT) at its steps: the next cycle
completes it (after the data commit) or rolls it back (before), and no batch is lost, trained twice
or left half-quarantined; no run stays RUNNING; `champion` follows the gate's decisions.

Each kill costs a fresh process (TensorFlow's import and a training), so this test kills at a
representative subset of the steps (KILLED_AT): both before the data commit (the half-made
quarantine folder, the trained and judged challenger rolled back) and two after it: after the registration and
after the champion's move (the two that must not happen twice). The kill after the champion's move
lands in the cycle that completes the one killed after the registration (a training less; its
invariants are checked once that is recovered). `make soak` (benchmarks/soak.py) kills at every
step in STEPS in turn and checks the same invariants after each kill."""

import hashlib
import os
import signal
import subprocess
import sys

import mlflow
import pytest

from benchmarks.soak import COMMITTED, STEPS  # every step; those killed after the data commit
from pipeline import data, layout
from pipeline.workflows import retrain
from tests.helpers import aliases, consumed, digits_batch, files_of, incoming, quarantined

KILLED_AT = ["quarantine", "decide", "register", "gate"]  # all of STEPS: `make soak`


def holdout_hash() -> str:
    arrays = data.load("digits").arrays
    return hashlib.sha256(arrays["x_test"].tobytes() + arrays["y_test"].tobytes()).hexdigest()


def killed_cycle(root, step: str) -> None:
    env = {**os.environ, "PIPELINE_ROOT": str(root), "PIPELINE_FAULT": step}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "retrain", "--model", "digits-classifier"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def check_invariants(root, sent: dict) -> None:
    ids = [b.id for b in data.read_manifest("digits").batches]
    assert sorted(ids) == sorted(sent) and len(set(ids)) == len(ids)  # each batch once
    for name, files in sent.items():
        assert files_of(consumed(root, name)) == files and not incoming(root, name).exists()
    assert not layout.retrain_journal("digits-classifier").exists()
    running = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.status = 'RUNNING'")
    assert running.empty
    client = mlflow.MlflowClient()
    champion = aliases()["champion"]
    assert client.get_model_version("digits-classifier", champion).tags.get("gate.decision", "promoted") == (
        "promoted"
    )


@pytest.mark.slow
def test_a_kill_at_any_step_is_completed_or_rolled_back_by_the_next_cycle(retrain_project):
    assert set(KILLED_AT) < set(STEPS) and set(COMMITTED) < set(STEPS)
    holdout = holdout_hash()
    sent = {}
    for i, step in enumerate(KILLED_AT):
        if step != "gate":  # the cycle killed at "gate" is the one completing the kill at "register"
            name = f"b{i}"
            sent[name] = files_of(digits_batch(retrain_project, name, 20 * i))
        if step == "quarantine":
            bad = digits_batch(retrain_project, "bad", 200, n=2)
            (bad / "3").mkdir(exist_ok=True)
            (bad / "3" / "broken.png").write_bytes(b"not a png")
            bad_files = files_of(bad)
        killed_cycle(retrain_project, step)
        in_manifest = name in [b.id for b in data.read_manifest("digits").batches]
        assert in_manifest == (step in COMMITTED), step
        if step == "register":
            continue  # completed by the next cycle, the one killed at "gate"
        assert retrain.main(model="digits-classifier") == 0, step
        check_invariants(retrain_project, sent)
        assert holdout_hash() == holdout
    (only,) = quarantined(retrain_project).iterdir()  # the half-made quarantine folder was dropped
    assert files_of(only / "batch") == bad_files and "broken.png" in (only / "REASON.txt").read_text()
    versions = mlflow.MlflowClient().search_model_versions("name='digits-classifier'")
    assert len(versions) == 1 + len(sent)  # one challenger registered per batch, none twice
    rolled_back = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`retrain.rolled_back` = 'true'"
    )
    assert len(rolled_back) == 1  # the challenger killed before the commit: trained, never registered
