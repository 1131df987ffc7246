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

from pipeline import atomic, objectives
from pipeline.config import project_root
from pipeline.errors import UserError
from pipeline.objectives import Objective
from pipeline.tools import ui
from pipeline.training import tracking

SANDBOX_COLUMN = f"tags.{tracking.SANDBOX_TAG}"  # the Python API's runs (training/run.py)
NOT_TASKS = {"Default", "reports", "benchmarks", "predictions", "lecture", "retrieval"}
# the params logged from params.yaml's sections (data.* is the dataset's, the same for every run)
PARAM_SECTIONS = ("params.model.", "params.train.", "params.objective.")
MISSING = "—"  # the one form of a value a run does not have (not logged, NaN, a sibling's `n/a`)
# a run's own figures shown in the report, when it has them
RUN_FIGURES = {"forecast.png": "forecast"}
SIZE_AND_SPEED = ["metrics.model_params", "metrics.epochs_to_converge"]
# a retrain cycle's run (`retrain-<model>`): not an experiment to rank, the source of the drift table
CYCLE_PREFIX = "retrain-"
DRIFT_ROWS = 30  # the newest batches shown per registered model
# readme block markers: `report --readme` replaces what is between them
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def sandboxed(runs: pd.DataFrame) -> pd.Series:
    """Which runs are sandboxed (the Python API's: tag `sandbox`, training/run.py)."""
    return runs.get(SANDBOX_COLUMN, pd.Series([None] * len(runs), index=runs.index)) == "true"


def latest_runs(experiment_id: str, sandbox: bool = False) -> pd.DataFrame:
    """The latest FINISHED run of each run name (= experiment of params.yaml) in one task.
    Sandboxed runs are left out before the latest is chosen, so the production run stays;
    `sandbox=True`: the latest sandboxed run of each name too, beside it."""
    import mlflow

    runs = mlflow.search_runs(
        [experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    if runs.empty:
        return runs
    runs = runs.assign(_sandbox=sandboxed(runs))
    if not sandbox:
        runs = runs[~runs["_sandbox"]]
    latest = runs.drop_duplicates(["tags.mlflow.runName", "_sandbox"]).sort_values("_sandbox", kind="stable")
    return latest.drop(columns="_sandbox").reset_index(drop=True)


def key_params(runs: pd.DataFrame) -> list[str]:
    """Params whose value differs between the runs: what tells siblings apart.

    Only the hyperparameters as params.yaml's sections name them (PARAM_SECTIONS): the unprefixed
    params are the experiment's own keys (task, family, …) and the logged model's config, which
    MLflow copies into the run (`seasonal_order` beside `model.seasonal_order`)."""
    columns = [c for c in runs.columns if c.startswith(PARAM_SECTIONS)]
    present = {c: runs[c].replace("n/a", None).dropna() for c in columns}
    # first the params that differ between runs that have them (padding between the two CNNs),
    # then those only some runs have (the SVC's C)
    shared = sorted(c for c in columns if len(present[c]) > 1 and present[c].nunique() > 1)
    partial = sorted(c for c in columns if c not in shared and 0 < len(present[c]) < len(runs))
    return (shared + partial)[:8]


def task_objective(runs: pd.DataFrame) -> Objective | None:
    """The objective the task's runs were scored by (their `objective` tag), if any."""
    tags = runs.get("tags.objective", pd.Series(dtype=str)).dropna()
    return objectives.get_by_tag(tags.iloc[0]) if not tags.empty else None


def problems(runs: pd.DataFrame) -> pd.Series:
    """Which problem each run solves (tag `problem`); runs are ranked only against the same problem.

    Runs logged before the tag existed fall back to their `objective.classes` param."""
    problem = runs.get("tags.problem", pd.Series([None] * len(runs), index=runs.index))
    fallback = runs.get("params.objective.classes", pd.Series([""] * len(runs), index=runs.index))
    return problem.fillna(fallback.fillna("")).astype(str)


def ranking(objective: Objective, columns) -> tuple[list[str], list[bool]]:
    """(sort keys, ascending) of a table whose columns are `columns`: per problem, the headline
    metric in its direction, ties to the lower test_loss."""
    keys = [c for c in ("problem", objective.headline, "test_loss") if c in columns]
    return keys, [k != objective.headline or objective.direction(k) == "min" for k in keys]


def best_rows(runs: pd.DataFrame, objective: Objective) -> dict[str, int]:
    """{problem: the best run's row label} by the objective's headline metric (ties: lower test_loss)."""
    column = f"metrics.{objective.headline}"
    if column not in runs or not runs[column].notna().any():
        return {}
    keys = [column] + (["metrics.test_loss"] if "metrics.test_loss" in runs else [])
    ascending = [objective.direction(objective.headline) == "min"] + [True] * (len(keys) - 1)
    best = {}
    for problem, group in runs.assign(_problem=problems(runs)).groupby("_problem", sort=False):
        ranked = group.sort_values(keys, ascending=ascending, na_position="last")
        if pd.notna(ranked.iloc[0][column]):
            best[problem] = ranked.index[0]
    return best


def best_per_problem(runs: pd.DataFrame, objective: Objective) -> dict[str, str]:
    """{problem: the best run's name} by the objective's headline metric (ties: lower test_loss)."""
    return {
        problem: runs.at[row, "tags.mlflow.runName"] for problem, row in best_rows(runs, objective).items()
    }


def task_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str | None, dict[str, str]]:
    """(the table, the headline metric, {problem: best run}): one row per run, best first (per
    problem), the headline metric right after the run's name, then the other test metrics, size
    and speed, family and the params that tell the runs apart."""
    objective = task_objective(runs)
    headline = objective.headline if objective else None
    metrics = sorted(c for c in runs.columns if c.startswith("metrics.test_") and runs[c].notna().any())
    metrics.sort(key=lambda c: c != f"metrics.{headline}")  # the headline first
    # how big each model is and how fast it got there (the lecture's "fewer parameters", "faster")
    metrics += [c for c in SIZE_AND_SPEED if c in runs and runs[c].notna().any()]
    table = pd.DataFrame({"run": runs["tags.mlflow.runName"]})
    if sandboxed(runs).any():  # pipeline.runs(task, sandbox=True): the student's runs marked
        table["sandbox"] = sandboxed(runs).map({True: "yes", False: ""})
    if problems(runs).nunique() > 1:
        table["problem"] = problems(runs).to_numpy()
    for column in metrics:
        counts = column in SIZE_AND_SPEED  # whole numbers: 769, not 769.0
        table[column.removeprefix("metrics.")] = (
            runs[column].round().astype("Int64") if counts else runs[column].round(4)
        )
    table["family"] = runs.get("tags.model_family", "")
    for column in key_params(runs):
        table[column.removeprefix("params.")] = runs[column]
    rows = best_rows(runs, objective) if objective else {}
    best = {problem: runs.at[row, "tags.mlflow.runName"] for problem, row in rows.items()}
    if best:
        table.insert(0, "best", ["★" if row in rows.values() else "" for row in table.index])
    if objective and headline in table:
        keys, ascending = ranking(objective, table.columns)
        table = table.sort_values(keys, ascending=ascending, na_position="last", kind="stable")
    return table.reset_index(drop=True), headline, best


def bar_chart(table: pd.DataFrame, metric: str, higher_is_better: bool, title: str, path: Path) -> None:
    from pipeline import plots

    fig, ax = plots.subplots(figsize=(1.2 * len(table) + 2.5, 3.2))
    ax.bar(table["run"], table[metric], color=["#d62728" if b else "#1f77b4" for b in table.get("best", "")])
    ax.set(title=title, ylabel=metric)
    if max(map(len, table["run"])) > 10:  # long names side by side would overlap
        ax.tick_params(axis="x", labelrotation=20)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    low, high = table[metric].min(), table[metric].max()
    if higher_is_better and high <= 1 and low > 0.5:
        ax.set_ylim(max(0, low - 0.05), min(1.0, high + 0.01))  # accuracies close to 1: show the gaps
    for x, y in enumerate(table[metric]):
        ax.text(x, y, f"{y:.4f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def learning_curves(runs: pd.DataFrame, title: str, path: Path) -> bool:
    import mlflow

    from pipeline import plots

    client = mlflow.MlflowClient()
    fig, ax = plots.subplots(figsize=(6.5, 3.6))
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
    return drawn


def fitted_curves(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Every run's fitted_curve.csv (x, true, predicted) in one figure: wide against deep."""
    import io

    import mlflow

    from pipeline import plots

    fig, ax = plots.subplots(figsize=(7, 4))
    drawn = False
    for _, run in runs.iterrows():
        if "fitted_curve.csv" not in {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"])}:
            continue
        curve = pd.read_csv(
            io.StringIO(mlflow.artifacts.load_text(f"runs:/{run['run_id']}/fitted_curve.csv"))
        )
        if not drawn:
            ax.plot(curve["x"], curve["true"], color="black", lw=2, label="true function")
        ax.plot(curve["x"], curve["predicted"], lw=1.2, label=run["tags.mlflow.runName"])
        drawn = True
    if drawn:
        ax.set(title=f"{title}: fitted curves", xlabel="x", ylabel="y")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return drawn


def drift_history(experiment_id: str) -> pd.DataFrame:
    """Every batch the task's retrain cycles measured (their drift/batches.json), oldest first:
    model, cycle (its start), batch, drift_score, worst statistic, action, and the limit's max."""
    import mlflow

    cycles = mlflow.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and tags.mlflow.runName LIKE '{CYCLE_PREFIX}%'",
        order_by=["attributes.start_time ASC"],
    )
    rows = []
    client = mlflow.MlflowClient()
    for _, cycle in cycles.iterrows():
        if "drift/batches.json" not in {a.path for a in client.list_artifacts(cycle["run_id"], "drift")}:
            continue  # a cycle logged before drift was measured
        listing = mlflow.artifacts.load_dict(f"runs:/{cycle['run_id']}/drift/batches.json")
        limit = listing.get("limit") or {}
        for entry in listing["batches"]:
            rows.append(
                {
                    "model": cycle["tags.mlflow.runName"].removeprefix(CYCLE_PREFIX),
                    "cycle": cycle["start_time"].strftime("%Y-%m-%d %H:%M"),
                    "batch": entry["batch"],
                    "drift_score": round(entry["drift_score"], 3) if "drift_score" in entry else None,
                    "worst": entry.get("worst") or "",
                    "action": entry["action"],
                    "max": limit.get("max"),
                }
            )
    table = pd.DataFrame(rows, columns=["model", "cycle", "batch", "drift_score", "worst", "action", "max"])
    return table.groupby("model", sort=False).tail(DRIFT_ROWS).reset_index(drop=True)


def drift_chart(history: pd.DataFrame, title: str, path: Path) -> None:
    """drift_score of every batch in ingestion order, one line per model; beyond the limit in red."""
    from matplotlib.ticker import MaxNLocator

    from pipeline import plots

    fig, ax = plots.subplots(figsize=(7, 3.4))
    for model, batches in history.groupby("model", sort=False):
        order = range(1, len(batches) + 1)
        ax.plot(order, batches["drift_score"], marker="o", ms=4, lw=1, label=model)
        beyond = batches["action"].isin(["warn", "quarantine"]).to_numpy()
        ax.scatter(
            [o for o, b in zip(order, beyond, strict=True) if b],
            batches["drift_score"][beyond],
            color="#d62728",
            s=40,
            zorder=3,
        )
        if batches["max"].notna().any():
            ax.axhline(batches["max"].dropna().iloc[-1], color="gray", ls="--", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if history["model"].nunique() == 1 and len(history) <= 20:  # few enough to name
        ax.set_xticks(range(1, len(history) + 1), history["batch"], rotation=30, ha="right", fontsize=8)
    ax.set(title=f"{title}: drift of each retrained batch (red: beyond the limit)", ylabel="drift_score")
    ax.set(xlabel="batch (ingestion order)")
    ax.set(ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def copy_artifact(run_id: str, name: str, target: Path) -> bool:
    """Copy a run's artifact (e.g. the forecast plot) next to the report, if it has one."""
    import mlflow

    if name not in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}:
        return False
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name)
    shutil.copyfile(local, target)
    return True


def shown(value) -> str:
    """A cell as the report shows it: MISSING for every form of no value."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) or value in ("", "n/a"):
        return MISSING
    return str(value)


def cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table's cells as text; the `best` column keeps its blanks (not a missing value)."""
    text = table.astype(object).map(shown)
    if "best" in table:
        text["best"] = table["best"]
    return text


def markdown_table(table: pd.DataFrame, links: dict[str, str] | None = None) -> str:
    """A markdown table; with `links` ({run: url}), each run's name links to its MLflow run."""
    text = cells(table)
    if links and "run" in text:
        text["run"] = [f"[{run}]({links[run]})" if run in links else run for run in text["run"]]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in text.itertuples(index=False)]
    return "\n".join(lines)


def html_table(table: pd.DataFrame, links: dict[str, str] | None = None, headline: str | None = None) -> str:
    """An HTML table that scrolls sideways in its own box, the run's name (★ for the best, linked
    to its MLflow run) kept in view; the headline metric right after it."""
    text, links = cells(table), links or {}
    columns = [c for c in table.columns if c != "best"]
    kinds = {"run": " class='run'", headline: " class='headline'"}
    head = "".join(f"<th{kinds.get(c, '')}>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for i, row in text.iterrows():
        tds = []
        for column in columns:
            value = html.escape(row[column])
            if column == "run" and row[column] in links:
                value = f"<a href='{html.escape(links[row[column]])}'>{value}</a>"
            if column == "run" and "best" in table and table.at[i, "best"]:
                value = f"★ {value}"
            title = f" title='{html.escape(row[column])}'" if len(row[column]) > CELL_CHARS else ""
            tds.append(f"<td{kinds.get(column, '')}{title}>{value}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return f"<div class='wide'><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def best_line(section: dict, markup) -> str:
    """'Best by `metric`: **run**' — one best per problem when the task mixes problems."""
    best = section["best"]
    if not best:
        return "No headline metric to rank by."
    if len(best) == 1:
        return f"Best by {markup(section['metric'], 'code')}: {markup(next(iter(best.values())), 'b')}"
    each = "; ".join(f"{markup(run, 'b')} ({problem})" for problem, run in best.items())
    return f"Best by {markup(section['metric'], 'code')}, per problem: {each}"


def as_markdown(text: str, tag: str) -> str:
    return f"`{text}`" if tag == "code" else f"**{text}**"


def as_html(text: str, tag: str) -> str:
    return f"<{tag}>{html.escape(str(text))}</{tag}>"


DRIFT_NOTE = (
    "Each batch a `make retrain` cycle read, compared with the champion's training data "
    "(docs/drift.md): worst = the statistic behind drift_score; action none, warn (trained on), "
    "quarantine (set aside) or not measured; max = the gate's drift limit."
)

CELL_CHARS = 24  # a longer cell is cut to the column's width, its whole text on hover
PAGE_HEAD = [
    "<!doctype html><html><head><meta charset='utf-8'><title>Pipeline report</title><style>",
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}",
    # each table scrolls sideways in its own box; the run's name stays at the left edge
    ".wide{overflow-x:auto;max-width:100%;margin:0.5em 0 1.5em}",
    "table{border-collapse:separate;border-spacing:0}",
    "td,th{border-bottom:1px solid #ddd;padding:4px 8px;font-size:14px;white-space:nowrap;text-align:left}",
    "td{max-width:14em;overflow:hidden;text-overflow:ellipsis}th{background:#f4f4f4}",
    ".run{position:sticky;left:0;background:#fff;border-right:2px solid #ccc;z-index:1}",
    "th.run{background:#f4f4f4}.headline{background:#fff8dc;font-weight:600}",
    "img{max-width:100%}figcaption{font-size:13px;color:#555}",
    "</style></head><body>",
]


def render(sections: list[dict], uri: str, stamp: str) -> tuple[str, str]:
    md = [f"# Pipeline report\n\nStore: `{uri}` · generated {stamp}\n"]
    page = [
        *PAGE_HEAD,
        f"<h1>Pipeline report</h1><p>Store: <code>{html.escape(uri)}</code> · generated {stamp}. "
        f"Each run's name opens it in the MLflow UI ({html.escape(sections[0]['ui'])}).</p>",
    ]
    for s in sections:
        table = markdown_table(s["table"], s["links"])
        md.append(f"## {s['task']}\n\n{best_line(s, as_markdown)}\n\n{table}\n")
        page.append(f"<h2>{html.escape(s['task'])}</h2><p>{best_line(s, as_html)}</p>")
        page.append(html_table(s["table"], s["links"], s["metric"]))
        if not s["drift"].empty:
            md.append(f"### Drift of the retrained batches\n\n{DRIFT_NOTE}\n\n{markdown_table(s['drift'])}\n")
            page.append(f"<h3>Drift of the retrained batches</h3><p>{html.escape(DRIFT_NOTE)}</p>")
            page.append(html_table(s["drift"]))
        for image, caption in s["images"]:
            md.append(f"![{caption}]({image})\n\n_{caption}_\n")
            page.append(
                f"<figure><img src='{html.escape(image)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    page.append("</body></html>")
    return "\n".join(md), "\n".join(page)


def readme_block(sections: list[dict], stamp: str) -> str:
    """Per task: each run's headline metric, the best per problem marked; dated, for README.md."""
    lines = [
        README_START,
        f"_Latest runs, generated by `python -m pipeline report --readme` on {stamp}._",
        "",
    ]
    for s in sections:
        if not s["metric"] or s["metric"] not in s["table"]:
            continue
        keys = [c for c in ("problem", s["metric"]) if c in s["table"]]  # per problem, best first
        table = s["table"].sort_values(keys, ascending=[True] * (len(keys) - 1) + [not s["higher"]])
        columns = [c for c in ("best", "run", "problem", s["metric"]) if c in table]
        lines += [f"**{s['task']}** (`{s['metric']}`)", "", markdown_table(table[columns]), ""]
    return "\n".join([*lines, README_END])


def update_readme(path: Path, block: str) -> None:
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise UserError(f"{path}: no {README_START} … {README_END} block to fill")
    head, rest = text.split(README_START, 1)
    atomic.write_text(path, head + block + rest.split(README_END, 1)[1])


def task_runs(experiment_id: str, sandbox: bool = False) -> pd.DataFrame:
    """The latest finished run of each experiment of a task, retrain cycles left out (`sandbox`:
    as latest_runs)."""
    runs = latest_runs(experiment_id, sandbox)
    if runs.empty:
        return runs
    return runs[~runs["tags.mlflow.runName"].str.startswith(CYCLE_PREFIX)].reset_index(drop=True)


def task_section(experiment, out: Path) -> dict | None:
    """The task's table, best runs and figures (written to `out`), or None when it has no runs."""
    runs = task_runs(experiment.experiment_id)
    if runs.empty:
        return None
    table, metric, best = task_table(runs)
    slug = experiment.name.replace("/", "-")
    images = []
    if metric in table:
        higher = task_objective(runs).direction(metric) == "max"
        bar_chart(table, metric, higher, experiment.name, out / f"{slug}-{metric}.png")
        images.append((f"{slug}-{metric}.png", f"{experiment.name}: {metric} of every run"))
    if learning_curves(runs, experiment.name, out / f"{slug}-learning-curves.png"):
        images.append((f"{slug}-learning-curves.png", f"{experiment.name}: validation loss per epoch"))
    if fitted_curves(runs, experiment.name, out / f"{slug}-fitted-curves.png"):
        images.append((f"{slug}-fitted-curves.png", f"{experiment.name}: every run's fitted curve"))
    for _, run in runs.iterrows():
        for artifact, what in RUN_FIGURES.items():
            name = f"{slug}-{run['tags.mlflow.runName']}-{artifact}"
            if copy_artifact(run["run_id"], artifact, out / name):
                images.append((name, f"{what} of run {run['tags.mlflow.runName']} ({experiment.name})"))
    drift = drift_history(experiment.experiment_id)
    if not drift.empty and drift["drift_score"].notna().any():
        drift_chart(drift, experiment.name, out / f"{slug}-drift.png")
        images.append((f"{slug}-drift.png", f"{experiment.name}: drift_score of each batch retrain read"))
    higher = metric is not None and task_objective(runs).direction(metric) == "max"
    base = ui.base_url()
    return {
        "task": experiment.name,
        "ui": base,
        "links": {
            run["tags.mlflow.runName"]: ui.run_link(base, experiment.experiment_id, run["run_id"])
            for _, run in runs.iterrows()
        },
        "metric": metric,
        "higher": higher,
        "best": best,
        "table": table,
        "drift": drift,
        "images": images,
    }


def main(log: bool = True, readme: bool = False) -> int:
    import mlflow

    tracking.configure()
    uri = tracking.shown_uri()  # the report is a file others read: no password in it
    experiments = [e for e in mlflow.search_experiments(order_by=["name"]) if e.name not in NOT_TASKS]
    out = project_root() / "reports"
    out.mkdir(exist_ok=True)
    sections = [s for e in experiments if (s := task_section(e, out)) is not None]
    if not sections:
        raise UserError(f"no finished runs in {uri}: run `make train-all` first")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    md, page = render(sections, uri, stamp)
    atomic.write_text(out / "summary.md", md)
    atomic.write_text(out / "index.html", page)
    if readme:
        update_readme(project_root() / "README.md", readme_block(sections, stamp))
    if log:
        with tracking.start_run("reports", "report", {"tasks": ",".join(s["task"] for s in sections)}):
            mlflow.log_artifacts(str(out), artifact_path="report")
    runs_total = sum(len(s["table"]) for s in sections)
    print(f"report: {len(sections)} tasks, {runs_total} runs → {out / 'index.html'} and {out / 'summary.md'}")
    return 0
