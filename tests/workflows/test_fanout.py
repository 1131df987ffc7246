"""train-all: experiments in worker processes or as Ray tasks (local Ray, 2 CPUs) log as a sequential run."""

import shutil

import mlflow
import pytest

from pipeline import cli
from tests.helpers import REPO, edit_params, make


def runs(task: str = "digits-classification"):
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(task)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def stamps(project) -> set[str]:
    return {p.name for p in (project / ".build" / "runs").glob("*.done")}


def cheap(params):
    """Tiny trainings without --set, so make's stamps are written."""
    params["defaults"]["train"].update(epochs=1, limit=100)


@pytest.mark.slow
def test_needs_run_first_and_make_finds_them_up_to_date(project, ray_session):
    edit_params(project, cheap)
    edit_params(project, lambda p: p["experiments"]["svc"].update(needs=["mlp"]))
    # what make's rules depend on (as in test_makefile), older than the stamps the run writes
    shutil.copytree(REPO / "pipeline", project / "pipeline")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, project / name)
    (project / ".venv-ready").touch()
    assert cli.main(["train-all", "--executor", "ray", "--quiet", "svc"]) == 0  # mlp added: svc needs it
    found = {r.info.run_name: r.info for r in runs()}
    assert sorted(found) == ["mlp", "svc"] and {i.status for i in found.values()} == {"FINISHED"}
    assert found["svc"].start_time >= found["mlp"].end_time
    assert stamps(project) == {"mlp.done", "svc.done"}
    result = make(project, "train-mlp", "train-svc", "train-cnn-valid")
    assert result.returncode == 0, result.stderr
    assert "TRAINED cnn-valid" in result.stdout and "TRAINED mlp" not in result.stdout
    assert "TRAINED svc" not in result.stdout


@pytest.mark.slow
def test_a_failing_experiment_is_named_and_its_dependents_skipped(project, ray_session, capsys):
    edit_params(project, cheap)

    def diverge(params):
        params["experiments"]["mlp"]["train"] = {"optimizer": "sgd", "learning_rate": 1e12, "epochs": 3}
        params["experiments"]["svc"]["needs"] = ["mlp"]

    edit_params(project, diverge)
    assert cli.main(["train-all", "--executor", "ray", "--quiet", "mlp", "svc", "cnn-valid"]) == 1
    err = capsys.readouterr().err
    assert "mlp failed: training diverged" in err and "svc skipped: it needs mlp" in err
    found = {r.info.run_name: r.info.status for r in runs()}
    assert found == {"mlp": "FAILED", "cnn-valid": "FINISHED"}  # no run left RUNNING, svc never started
    assert stamps(project) == {"cnn-valid.done"}


def test_unknown_experiment_is_a_user_error(project, capsys):
    assert cli.main(["train-all", "--executor", "ray", "mpl"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'mlp'" in err
    assert runs() == []


def diverging_and_its_dependent(params):
    """Two experiments more: one whose training diverges, and one that needs it."""
    experiments = params["experiments"]
    mlp = {k: v for k, v in experiments["mlp"].items() if k != "search"}
    experiments["mlp-diverges"] = {**mlp, "train": {"optimizer": "sgd", "learning_rate": 1e12, "epochs": 3}}
    experiments["cnn-after"] = {**experiments["cnn-valid"], "needs": ["mlp-diverges"]}


@pytest.mark.slow
def test_worker_processes_and_ray_tasks_score_like_a_sequential_run_name_a_failure_and_skip_what_needs_it(
    project, ray_session, capsys
):
    """The executors against one sequential run of the same experiments: Ray tasks (mlp, svc), then
    worker processes (the default executor) with a failure and its dependent. One test, so the
    sequential run they are both compared with trains once."""
    edit_params(project, cheap)
    edit_params(project, diverging_and_its_dependent)
    # --set with the params' own value: the same training, but not the params.yaml runs
    same = ["--set", "train.limit=100"]
    assert cli.main(["train-all", "--executor", "ray", "--quiet", "mlp", "svc", *same]) == 0
    assert not (project / ".build" / "runs").exists()  # --set runs are not the params.yaml runs
    names = ["mlp", "svc", "cnn-valid", "mlp-diverges", "cnn-after"]
    capsys.readouterr()
    assert cli.main(["train-all", "--jobs", "2", *names]) == 1
    out, err = capsys.readouterr()
    assert "train-all (processes): 5 experiment(s)" in out  # the default executor
    assert out.count("digits-classification (test_accuracy, higher is better)") == 1  # the end table
    assert sum(line.startswith(("mlp: ", "svc: ", "cnn-valid: ")) for line in out.splitlines()) == 3
    assert "mlp-diverges failed: training diverged" in err
    assert "cnn-after skipped: it needs mlp-diverges" in err
    found = {(r.data.tags["executor"], r.info.run_name): r.info.status for r in runs()}
    assert found == {  # no run left RUNNING, cnn-after never started
        ("ray", "mlp"): "FINISHED",
        ("ray", "svc"): "FINISHED",
        ("processes", "mlp"): "FINISHED",
        ("processes", "svc"): "FINISHED",
        ("processes", "cnn-valid"): "FINISHED",
        ("processes", "mlp-diverges"): "FAILED",
    }
    assert stamps(project) == {"mlp.done", "svc.done", "cnn-valid.done"}
    assert cli.main(["train-all", "--executor", "sequential", "--quiet", "mlp", "svc", "cnn-valid"]) == 0
    found = runs()
    assert all(r.info.status == "FINISHED" for r in found if r.info.run_name != "mlp-diverges")
    by = {(r.data.tags["executor"], r.info.run_name): r.data.metrics for r in found}
    assert len(by) == len(found) == 9  # one run of each executor and experiment
    for executor, name in [("ray", "mlp"), ("ray", "svc"), *(("processes", n) for n in names[:3])]:
        ran, sequential = by[executor, name], by["sequential", name]
        assert ran["test_loss"] == sequential["test_loss"], (executor, name)
        assert ran["test_accuracy"] == sequential["test_accuracy"], (executor, name)
    assert by["ray", "mlp"]["val_loss"] == by["sequential", "mlp"]["val_loss"]


@pytest.mark.integration  # train-all trains svc
def test_the_queue_trains_exactly_what_make_found_out_of_date(project):
    edit_params(project, cheap)
    edit_params(project, lambda p: p["experiments"]["svc"].update(needs=["mlp"]))
    queue = project / ".build" / "train-queue"
    queue.parent.mkdir(parents=True)
    queue.write_text("svc\nsvc\n")  # svc's rule queued it (twice, as a parallel make may): mlp is up to date
    assert cli.main(["train-all", "--queue", str(queue), "--quiet"]) == 0
    assert [r.info.run_name for r in runs()] == ["svc"] and not queue.exists()
    assert cli.main(["train-all", "--queue", str(queue)]) == 0  # an empty queue: nothing to do
    assert len(runs()) == 1
