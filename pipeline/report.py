"""`make report`: one page comparing the latest finished run of every experiment, per task.

Reads the tracking store (mlflow.search_runs), writes reports/index.html and reports/summary.md
(with PNG plots beside them), and logs the report as a run of the MLflow experiment `reports`.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
from pathlib import Path

import pandas as pd

from pipeline import atomic, tracking
from pipeline.config import project_root
from pipeline.errors import UserError

NOT_TASKS = {"Default", "reports", "benchmarks"}
# The headline metric of each objective (the run tag `objective`), and whether higher is better.
HEADLINES = {
    "classification": ("test_accuracy", True),
    "forecasting": ("test_rmse", False),
    "anomaly": ("test_roc_auc", True),
}
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mase", "mse", "seconds")


def higher_is_better(metric: str) -> bool:
    return not any(word in metric for word in LOWER_IS_BETTER)


def latest_runs(experiment_id: str) -> pd.DataFrame:
    """The latest FINISHED run of each run name (= experiment of params.yaml) in one task."""
    import mlflow

    runs = mlflow.search_runs(
        [experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    if runs.empty:
        return runs
    return runs.drop_duplicates("tags.mlflow.runName").reset_index(drop=True)


def key_params(runs: pd.DataFrame) -> list[str]:
    """Params whose value differs between the runs: what tells siblings apart."""
    columns = [c for c in runs.columns if c.startswith("params.") and not c.startswith("params.data.")]
    present = {c: runs[c].replace("n/a", None).dropna() for c in columns}
    # first the params that differ between runs that have them (padding between the two CNNs),
    # then those only some runs have (the SVC's C)
    shared = [c for c in columns if len(present[c]) > 1 and present[c].nunique() > 1]
    partial = [c for c in columns if c not in shared and 0 < len(present[c]) < len(runs)]
    return (shared + partial)[:8]


def headline(runs: pd.DataFrame) -> tuple[str, bool]:
    objective = runs.get("tags.objective", pd.Series(dtype=str)).dropna()
    if not objective.empty and objective.iloc[0] in HEADLINES:
        return HEADLINES[objective.iloc[0]]
    metric = next((c[8:] for c in runs.columns if c.startswith("metrics.test_")), "test_loss")
    return metric, higher_is_better(metric)


def task_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    metric, higher = headline(runs)
    metrics = sorted(c for c in runs.columns if c.startswith("metrics.test_") and runs[c].notna().any())
    table = pd.DataFrame({"run": runs["tags.mlflow.runName"], "family": runs.get("tags.model_family", "")})
    for column in metrics:
        table[column[8:]] = runs[column].round(4)
    for column in key_params(runs):
        table[column[7:]] = runs[column]
    best = ""
    if f"metrics.{metric}" in runs and runs[f"metrics.{metric}"].notna().any():
        # ties on the headline (e.g. equal accuracy on a small test set) go to the lower test_loss
        keys = [f"metrics.{metric}"] + (["metrics.test_loss"] if "metrics.test_loss" in runs else [])
        ranked = runs.sort_values(keys, ascending=[not higher] + [True] * (len(keys) - 1), na_position="last")
        best = ranked.iloc[0]["tags.mlflow.runName"]
        table.insert(0, "best", ["★" if name == best else "" for name in table["run"]])
    return table, metric, best


def bar_chart(table: pd.DataFrame, metric: str, title: str, path: Path) -> None:
    from pipeline import plots

    fig, ax = plots.plt.subplots(figsize=(1.2 * len(table) + 2.5, 3.2))
    ax.bar(table["run"], table[metric], color=["#d62728" if b else "#1f77b4" for b in table.get("best", "")])
    ax.set(title=title, ylabel=metric)
    low, high = table[metric].min(), table[metric].max()
    if higher_is_better(metric) and high <= 1 and low > 0.5:
        ax.set_ylim(max(0, low - 0.05), min(1.0, high + 0.01))  # accuracies close to 1: show the gaps
    for x, y in enumerate(table[metric]):
        ax.text(x, y, f"{y:.4f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plots.plt.close(fig)


def learning_curves(runs: pd.DataFrame, title: str, path: Path) -> bool:
    import mlflow

    from pipeline import plots

    client = mlflow.MlflowClient()
    fig, ax = plots.plt.subplots(figsize=(6.5, 3.6))
    drawn = False
    for _, run in runs.iterrows():
        history = client.get_metric_history(run["run_id"], "val_loss")
        if len(history) > 1:
            ax.plot(
                [m.step + 1 for m in history], [m.value for m in history], label=run["tags.mlflow.runName"]
            )
            drawn = True
    if drawn:
        ax.set(title=f"{title}: validation loss per epoch", xlabel="epoch", ylabel="val_loss", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plots.plt.close(fig)
    return drawn


def copy_artifact(run_id: str, name: str, target: Path) -> bool:
    """Copy a run's artifact (e.g. the forecast plot) next to the report, if it has one."""
    import mlflow

    if name not in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}:
        return False
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name)
    shutil.copyfile(local, target)
    return True


def markdown_table(table: pd.DataFrame) -> str:
    cells = table.astype(object).where(table.notna(), "")
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def render(sections: list[dict], uri: str) -> tuple[str, str]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    md = [f"# Pipeline report\n\nStore: `{uri}` · generated {stamp}\n"]
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Pipeline report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}th{background:#f4f4f4}",
        "img{max-width:100%}",
        "</style></head><body>",
        f"<h1>Pipeline report</h1><p>Store: <code>{html.escape(uri)}</code> · generated {stamp}</p>",
    ]
    for s in sections:
        md.append(
            f"## {s['task']}\n\nBest by `{s['metric']}`: **{s['best']}**\n\n{markdown_table(s['table'])}\n"
        )
        page.append(
            f"<h2>{html.escape(s['task'])}</h2><p>Best by <code>{s['metric']}</code>: "
            f"<b>{html.escape(str(s['best']))}</b></p>"
        )
        page.append(s["table"].to_html(index=False, na_rep="", escape=True))
        for image in s["images"]:
            md.append(f"![{image}]({image})\n")
            page.append(f"<p><img src='{html.escape(image)}' alt='{html.escape(image)}'></p>")
    page.append("</body></html>")
    return "\n".join(md), "\n".join(page)


def main(log: bool = True) -> int:
    import mlflow

    uri = tracking.configure()
    experiments = [e for e in mlflow.search_experiments(order_by=["name"]) if e.name not in NOT_TASKS]
    out = project_root() / "reports"
    out.mkdir(exist_ok=True)
    sections = []
    for experiment in experiments:
        runs = latest_runs(experiment.experiment_id)
        if runs.empty:
            continue
        table, metric, best = task_table(runs)
        slug = experiment.name.replace("/", "-")
        images = []
        if metric in table:
            bar_chart(table, metric, experiment.name, out / f"{slug}-{metric}.png")
            images.append(f"{slug}-{metric}.png")
        if learning_curves(runs, experiment.name, out / f"{slug}-learning-curves.png"):
            images.append(f"{slug}-learning-curves.png")
        for _, run in runs.iterrows():
            name = f"{slug}-{run['tags.mlflow.runName']}-forecast.png"
            if copy_artifact(run["run_id"], "forecast.png", out / name):
                images.append(name)
        sections.append(
            {"task": experiment.name, "metric": metric, "best": best, "table": table, "images": images}
        )
    if not sections:
        raise UserError(f"no finished runs in {uri}: run `make train-all` first")
    md, page = render(sections, uri)
    atomic.write_text(out / "summary.md", md)
    atomic.write_text(out / "index.html", page)
    if log:
        with tracking.start_run("reports", "report", {"tasks": ",".join(s["task"] for s in sections)}):
            mlflow.log_artifacts(str(out), artifact_path="report")
    runs_total = sum(len(s["table"]) for s in sections)
    print(f"report: {len(sections)} tasks, {runs_total} runs → {out / 'index.html'} and {out / 'summary.md'}")
    return 0
