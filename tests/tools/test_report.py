import mlflow
import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.common.by import By

from pipeline import cli
from pipeline.errors import UserError
from pipeline.tools import report
from tests.helpers import REPO, needs_chromium

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


@pytest.mark.integration  # trains svc and mlp
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


@pytest.mark.integration  # trains svc
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
        ["b1", "0.0", report.MISSING, "none"],
        ["b2", "0.05", report.MISSING, "none"],
        ["inverted", "1.0", "brightness", "quarantine"],
        ["odd", report.MISSING, report.MISSING, "not measured"],
    ]
    assert "| retrain-digits-classifier |" not in summary  # a cycle is not an experiment to rank
    assert (project / "reports" / "digits-classification-drift.png").stat().st_size > 1000
    assert "Drift of the retrained batches" in (project / "reports" / "index.html").read_text()


def sibling_runs() -> pd.DataFrame:
    """Three runs of a classification task as mlflow.search_runs gives them: one without a test
    metric, params a sibling does not have (`n/a`, missing), and a logged model's config that MLflow
    copied into the run unprefixed (`seasonal_order` beside `model.seasonal_order`)."""
    return pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3"],
            "tags.mlflow.runName": ["svc", "cnn", "broken"],
            "tags.objective": ["classification"] * 3,
            "tags.model_family": ["svc", "cnn", "cnn"],
            "metrics.test_accuracy": [0.90, 0.95, np.nan],
            "metrics.test_loss": [np.nan, 0.2, np.nan],
            "metrics.model_params": [np.nan, 769.0, 12.0],
            "params.model.C": ["10.0", "n/a", "n/a"],
            "params.model.seasonal_order": [None, "[0, 1, 1, 52]", "[0, 1, 1, 12]"],
            "params.seasonal_order": [None, "[0, 1, 1, 52]", "[0, 1, 1, 12]"],
        }
    )


def test_the_table_is_ranked_by_the_headline_and_shows_one_form_of_a_missing_value():
    table, metric, best = report.task_table(sibling_runs())
    assert list(table["run"]) == ["cnn", "svc", "broken"]  # test_accuracy, higher first; none last
    assert list(table.columns[:3]) == ["best", "run", "test_accuracy"]  # the headline next to the run
    assert "seasonal_order" not in table and "model.seasonal_order" in table  # one column per param
    links = {"cnn": "http://127.0.0.1:5000/#/experiments/1/runs/r2?workflowType=machine_learning"}
    text = report.markdown_table(table, links)
    assert f"| ★ | [cnn]({links['cnn']}) | 0.95 |" in text
    page = report.html_table(table, links, metric)
    assert f"★ <a href='{links['cnn']}'>cnn</a>" in page
    for form in ("<NA>", "n/a", "nan", "None", "||", "| |"):
        assert form not in text and form not in page.replace("<td class", ""), form
    assert text.count(report.MISSING) == page.count(report.MISSING) == 7  # 3 + 1 + 3 cells


def logged_runs(count: int = 6) -> None:
    """`count` finished runs of one classification task, with many params (a wide table), logged
    directly (no training)."""
    mlflow.set_experiment("digits-classification")
    for i in range(count):
        with mlflow.start_run(run_name=f"experiment-number-{i}"):
            mlflow.set_tags({"objective": "classification", "model_family": "cnn"})
            mlflow.log_metrics({"test_accuracy": 0.5 + i / 20, "test_loss": 1 - i / 20, "model_params": 1e6})
            mlflow.log_params({f"model.setting_{k}": f"a-rather-long-value-{i}-{k}" for k in range(8)})


@needs_chromium
@pytest.mark.slow
def test_the_report_in_a_1400_px_window_shows_the_runs_and_their_headline(project, browser):
    logged_runs()
    assert report.main(log=False) == 0
    browser.set_window_size(1400, 1000)
    browser.get((project / "reports" / "index.html").as_uri())
    table = browser.find_element(By.CSS_SELECTOR, ".wide")
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width  # no page scroll
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", table)

    def visible(selector):
        box = browser.find_element(By.CSS_SELECTOR, selector).rect
        return box["x"] >= 0 and box["x"] + box["width"] <= width

    assert visible("th.run") and visible("th.headline") and visible("td.run a")
    browser.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", table)  # the last params
    assert visible("td.run a")  # the run's name stays in view
    link = browser.find_element(By.CSS_SELECTOR, "td.run a").get_attribute("href")
    assert link.startswith("http://127.0.0.1:5000/#/experiments/") and "/runs/" in link
    assert link.endswith("?workflowType=machine_learning")
    browser.execute_script("arguments[0].scrollLeft = 0", table)
    shot = REPO / "reports" / "tests" / "report-1400px.png"  # reports/ is generated, ignored by git
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
