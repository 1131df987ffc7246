"""sweep: a Ray Tune search over a search: block, one parent MLflow run and a nested run per trial."""

import re
import subprocess

import mlflow
import pytest

from pipeline import cli, config
from pipeline.errors import UserError
from pipeline.training import tracking
from pipeline.workflows import sweep
from tests.helpers import REPO, edit_params

TINY = ["train.limit=200", "train.epochs=1", "model.filters=[8,16]", "model.dense_units=16"]


def set_search(root, name="cnn-same", **changes):
    def change(params):
        search = params["experiments"][name].setdefault("search", {})
        search.update(changes)

    edit_params(root, change)


@pytest.mark.slow
def test_four_trials_nest_under_one_parent(project, ray_session):
    set_search(
        project,
        num_samples=2,
        max_concurrent=2,
        scheduler="asha",
        grace_period=1,
        space={"train.learning_rate": {"grid": [0.001, 0.01]}, "train.batch_size": {"choice": [16, 32]}},
    )
    outcome = sweep.run("cnn-same", overrides=TINY, quiet=True)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("digits-classification")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 5 and all(r.info.status == "FINISHED" for r in found)
    (parent,) = [r for r in found if r.info.run_name == "sweep-cnn-same"]
    children = [r for r in found if r is not parent]
    assert parent.info.run_id == outcome.parent_run_id
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags["sweep.trial_id"] for c in children}) == 4  # none lost or doubled
    # Tune reuses a worker (and its imported TensorFlow) for the next trial
    assert len({c.data.tags["pid"] for c in children}) < 4
    rates = sorted(c.data.params["train.learning_rate"] for c in children)
    assert rates == ["0.001", "0.001", "0.01", "0.01"]
    for child in children:
        assert child.data.params["model.filters"] == "[8, 16]" and child.data.params["train.epochs"] == "1"
        assert "val_accuracy" in child.data.metrics
        assert "test_accuracy" in child.data.metrics  # trained to the end: evaluated before Tune stops it
        assert child.data.tags["sweep.stopped_early"] == "false"
    p = parent.data
    assert p.params["search.metric"] == "val_accuracy" and p.params["search.num_samples"] == "2"
    assert p.params["search.scheduler"] == "asha"
    assert p.params["search.space.train.learning_rate"] == '{"grid": [0.001, 0.01]}'
    assert p.metrics["trials"] == 4 and p.metrics["trials_failed"] == 0
    best = max(c.data.metrics["val_accuracy"] for c in children)
    assert p.metrics["best_val_accuracy"] == pytest.approx(best)
    assert float(p.params["best.train.learning_rate"]) in (0.001, 0.01)
    assert p.params["best.train.batch_size"] in ("16", "32")
    assert client.search_registered_models() == []  # cnn-same has register_as: trials register nothing


@pytest.mark.parametrize(
    "change, message",
    [
        ({"space": {"train.learning_rate": {"logunform": [0.001, 0.01]}}}, "did you mean 'loguniform'"),
        ({"space": {"train.learning_rate": {"loguniform": [0, 0.01]}}}, "bounds must be > 0"),
        ({"space": {"train.batch_size": {"randint": [64, 16]}}}, "low must be below high"),
        ({"space": {"train.batch_size": {"choice": []}}}, "non-empty list"),
        ({"space": {}}, "space is empty"),
        ({"mode": "maximize"}, "search.mode = 'maximize' is not one of"),
        ({"metric": None}, "search.metric = None is not a string"),
        ({"shedule": "asha"}, "unknown key 'experiments.cnn-same.search.shedule' (did you mean 'sched"),
        ({"num_samples": 0}, "num_samples = 0 must be >= 1"),
    ],
)
def test_search_block_errors_are_one_line(project, capsys, change, message):
    set_search(project, **{**valid_search(), **change})
    with pytest.raises(UserError, match=re.escape(message)):
        config.resolve_experiment(config.load_params(), "cnn-same")
    assert cli.main(["sweep", "cnn-same"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: params.yaml:")
    assert "experiments.cnn-same.search" in err


def valid_search() -> dict:
    return {
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 1,
        "max_concurrent": 1,
        "scheduler": "fifo",
        "grace_period": 1,
        "space": {"train.learning_rate": {"loguniform": [0.001, 0.01]}},
    }


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("cnn-same", {"space": {"model.dropuot": {"uniform": [0, 0.5]}}}, "did you mean 'dropout'"),
        ("cnn-same", {"space": {"model.padding": {"grid": ["same", "sane"]}}}, "model.padding = 'sane'"),
        ("cnn-same", {"metric": "val_acc"}, "did you mean 'val_accuracy'"),
        ("cnn-same", {"grace_period": 500, "scheduler": "asha"}, "grace_period = 500 exceeds the 100 epochs"),
        ("svc", {}, "family 'svc' is not a Keras model"),
    ],
)
def test_search_space_errors_start_no_run(project, capsys, name, change, message):
    set_search(project, name, **{**valid_search(), **change})
    assert cli.main(["sweep", name]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    experiment = mlflow.MlflowClient().get_experiment_by_name("digits-classification")
    assert experiment is None or mlflow.MlflowClient().search_runs([experiment.experiment_id]) == []


def test_an_experiment_without_search_block(project, capsys):
    assert cli.main(["sweep", "cnn-valid"]) == 2
    assert "experiments.cnn-valid has no search: block" in capsys.readouterr().err


def test_make_sweep_without_an_experiment_stops_before_doing_anything():
    done = subprocess.run(["make", "-n", "sweep"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "name the experiment: make sweep EXP=<experiment>" in done.stderr
    assert done.stdout == ""  # not even the store is set up


class FakeContext:
    def get_trial_id(self):
        return "abcde_00003"


@pytest.mark.slow
def test_a_trial_tune_stops_ends_finished_whatever_its_worker_does_next(project, monkeypatch):
    """The race of `make sweep`, made deterministic. Tune stops a trial by raising SystemExit in
    tune.report, then ends the trial's worker without waiting: code the run still runs after the
    stop fails at random (here, always: evaluation raises as it does in a worker shutting down).
    The run must end FINISHED with sweep.stopped_early=true, and the trial end as Tune's stop does
    (SystemExit(0), which Tune's thread runner takes as a quiet end: a worker that runs the next
    trial needs this trial's thread to end)."""
    tune = pytest.importorskip("ray.tune", reason="the ray extra is not installed")
    from pipeline.training import run as run_module
    from pipeline.workflows import ray_session

    reports = []

    def report(logs):
        reports.append(logs)
        if len(reports) == 2:  # ASHA stops the trial after its second epoch
            raise SystemExit(0)

    def worker_ending(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_context", FakeContext)
    monkeypatch.setattr(run_module, "evaluate", worker_ending)
    with tracking.start_run("digits-classification", "sweep-cnn-same", {}) as parent:
        with pytest.raises(SystemExit) as stopped:
            sweep.trial(
                {"train.learning_rate": 0.01},
                experiment="cnn-same",
                overrides=[*TINY[1:], "train.epochs=5"],
                metric="val_accuracy",
                parent_run_id=parent.info.run_id,
                env=ray_session.worker_env(),
                cpus=None,
                quiet=True,
            )
        assert stopped.value.code == 0
        (trial_run,) = mlflow.search_runs(
            [parent.info.experiment_id],
            filter_string="tags.`sweep.trial_id` = 'abcde_00003'",
            output_format="list",
        )
    assert trial_run.info.status == "FINISHED" and trial_run.data.tags["sweep.stopped_early"] == "true"
    assert len(reports) == 2 and "test_accuracy" not in trial_run.data.metrics  # not evaluated after the stop
    history = mlflow.MlflowClient().get_metric_history(trial_run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 1]  # both epochs Tune saw, nothing after the stop


def test_trial_runs_end_as_tune_decided(project):
    """Whatever state a trial's run was left in, its status follows Tune's decision."""
    client = mlflow.MlflowClient()
    experiment_id = tracking.get_or_create_experiment("digits-classification")
    parent = client.create_run(experiment_id, run_name="sweep-cnn-same").info.run_id
    left = {
        "a_00000": "RUNNING",
        "a_00001": "FAILED",
        "a_00002": "FINISHED",
        "a_00003": "RUNNING",
        "a_00004": "FINISHED",
    }
    ids = {}
    for trial_id, status in left.items():
        tags = {"mlflow.parentRunId": parent, "sweep.trial_id": trial_id, "sweep.stopped_early": "false"}
        ids[trial_id] = client.create_run(experiment_id, tags=tags).info.run_id
        if status != "RUNNING":
            client.set_terminated(ids[trial_id], status)
    tune_says = {"a_00000": False, "a_00001": False, "a_00002": False, "a_00003": True, "a_00004": True}
    counts = sweep.finish_trial_runs(parent, experiment_id, tune_says)
    runs = {t: client.get_run(r) for t, r in ids.items()}
    assert {t: r.info.status for t, r in runs.items()} == {
        "a_00000": "FINISHED",  # its worker ended with the trial: Tune stopped it early
        "a_00001": "FINISHED",  # FAILED while its worker was being ended: Tune says it did not fail
        "a_00002": "FINISHED",
        "a_00003": "FAILED",
        "a_00004": "FAILED",
    }
    assert [runs[t].data.tags["sweep.stopped_early"] for t in ("a_00000", "a_00001", "a_00002")] == [
        "true",
        "true",
        "false",
    ]
    assert counts == {"trials": 5, "trials_stopped_early": 2, "trials_failed": 2}
