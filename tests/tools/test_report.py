import mlflow
import pandas as pd
import pytest

from pipeline import cli
from pipeline.errors import UserError
from pipeline.tools import report

QUICK = ["--quiet", "--set", "train.limit=150", "--set", "train.epochs=2"]


def test_empty_store_gives_a_clear_message(project):
    with pytest.raises(UserError, match="no finished runs"):
        report.main(log=False)
    assert cli.main(["report"]) == 2


@pytest.mark.slow
def test_report_compares_the_latest_runs(project, monkeypatch):
    for name in ("cnn-same", "cnn-valid", "svc"):
        assert cli.main(["train", name, *QUICK]) == 0
    assert cli.main(["train", "svc", "--quiet", "--set", "train.limit=300"]) == 0  # a newer svc run
    assert report.main() == 0

    out = project / "reports"
    summary = (out / "summary.md").read_text()
    assert "## digits-classification" in summary
    assert summary.count("| svc |") == 1  # only the latest run of each experiment
    page = (out / "index.html").read_text()
    assert "cnn-valid" in page and "model.padding" in page  # the param that tells the CNNs apart
    assert "model_params" in summary and "epochs_to_converge" in summary  # sizes and speeds, every run
    assert (out / "digits-classification-test_accuracy.png").stat().st_size > 1000
    assert (out / "digits-classification-learning-curves.png").exists()
    latest_svc = mlflow.search_runs(
        experiment_names=["digits-classification"], filter_string="tags.mlflow.runName = 'svc'"
    )
    assert f"{latest_svc['metrics.test_accuracy'].max():.4f}".rstrip("0") in summary
    (logged,) = mlflow.search_runs(experiment_names=["reports"])["run_id"]
    assert {"report/index.html", "report/summary.md"} <= {
        a.path for a in mlflow.MlflowClient().list_artifacts(logged, "report")
    }


def test_sibling_runs_share_param_names(project, monkeypatch):
    assert cli.main(["train", "svc", "--quiet", "--set", "train.limit=200"]) == 0
    assert cli.main(["train", "mlp", *QUICK]) == 0
    runs = mlflow.search_runs(experiment_names=["digits-classification"])
    svc = runs[runs["tags.mlflow.runName"] == "svc"].iloc[0]
    mlp = runs[runs["tags.mlflow.runName"] == "mlp"].iloc[0]
    assert svc["params.model.padding"] == "n/a" and mlp["params.model.C"] == "n/a"
    assert svc["params.model.C"] == "10.0" and mlp["params.model.dropout"] == "0.2"
    assert pd.isna(svc["params.train.epochs"])  # a baseline without epochs does not claim any


def test_runs_are_ranked_only_against_runs_that_solve_the_same_problem():
    """pretrain (digits 0-4) is near perfect, but the transfer runs classify 5-9: two rankings."""
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "tags.mlflow.runName": ["pretrain", "transfer-feature", "transfer-scratch"],
            "tags.objective": ["few_shot"] * 3,
            "tags.problem": ["digits: classes 0-4", "digits: classes 5-9", "digits: classes 5-9"],
            "metrics.test_accuracy": [1.0, 0.91, 0.90],
            "metrics.test_loss": [0.001, 0.39, 0.65],
        }
    )
    table, metric, best = report.task_table(runs)
    assert metric == "test_accuracy"
    assert best == {"digits: classes 0-4": "pretrain", "digits: classes 5-9": "transfer-feature"}
    assert list(table["best"]) == ["★", "★", ""] and "problem" in table
    lower = runs.assign(**{"tags.objective": ["forecasting"] * 3, "metrics.test_rmse": [0.5, 0.4, 0.3]})
    assert report.best_per_problem(lower, report.objectives.get("forecasting"))["digits: classes 5-9"] == (
        "transfer-scratch"  # rmse: lower is better, as the forecasting objective says
    )


@pytest.mark.slow
def test_function_approximation_overlays_every_runs_fitted_curve(project):
    for name in ("mlp-wide", "mlp-deep"):
        assert cli.main(["train", name, *QUICK]) == 0
    assert report.main(log=False) == 0
    summary = (project / "reports" / "summary.md").read_text()
    assert "## function-approximation" in summary and "| 769 |" in summary
    assert (project / "reports" / "function-approximation-fitted-curves.png").stat().st_size > 1000


def test_readme_block_is_filled_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nrest\n")
    table = pd.DataFrame({"best": ["", "★"], "run": ["naive", "lstm"], "test_rmse": [0.93, 0.44]})
    section = {"task": "co2-forecast", "metric": "test_rmse", "higher": False, "table": table}
    report.update_readme(readme, report.readme_block([section], "2026-11-26 07:00 UTC"))
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "old" not in text
    assert "on 2026-11-26 07:00 UTC" in text
    assert text.index("| ★ | lstm | 0.44 |") < text.index("|  | naive | 0.93 |")  # best first
    readme.write_text("no markers\n")
    with pytest.raises(UserError, match="results:start"):
        report.update_readme(readme, "x")


def cycle_run(batches, limit, experiment="digits-classification", model="digits-classifier"):
    """A `retrain-<model>` run with its drift/batches.json, as a retrain cycle logs it."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"retrain-{model}"):
        mlflow.log_dict(
            {"reference": "champion v1", "limit": limit, "batches": batches}, "drift/batches.json"
        )


def test_the_report_shows_the_drift_of_the_batches_retrain_read(project):
    assert cli.main(["train", "svc", "--quiet", "--set", "train.limit=200"]) == 0
    cycle_run([{"index": 0, "batch": "b1", "drift_score": 0.0, "worst": "", "action": "none"}], None)
    cycle_run(
        [
            {"index": 0, "batch": "b2", "drift_score": 0.05, "worst": "", "action": "none"},
            {
                "index": 1,
                "batch": "inverted",
                "drift_score": 1.0,
                "worst": "brightness",
                "action": "quarantine",
            },
            {"index": 2, "batch": "odd", "action": "not measured", "note": "no new points"},
        ],
        {"max": 0.3, "action": "quarantine"},
    )
    assert report.main(log=False) == 0
    summary = (project / "reports" / "summary.md").read_text()
    assert "### Drift of the retrained batches" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| digits-classifier |")]
    assert [row.split(" | ")[2:6] for row in rows] == [
        ["b1", "0.0", "", "none"],
        ["b2", "0.05", "", "none"],
        ["inverted", "1.0", "brightness", "quarantine"],
        ["odd", "", "", "not measured"],
    ]
    assert "| retrain-digits-classifier |" not in summary  # a cycle is not an experiment to rank
    assert (project / "reports" / "digits-classification-drift.png").stat().st_size > 1000
    assert "Drift of the retrained batches" in (project / "reports" / "index.html").read_text()
