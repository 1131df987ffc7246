"""The transfer learning curve: test accuracy vs labelled examples per class, scratch vs transfer.

Each experiment of `transfer_curve.experiments` (params.yaml) is trained at each
`labels_per_class`, with `seeds` seeds each (the seed picks the labelled examples and the initial
weights), as nested MLflow runs under one parent run. The parent logs a table and a plot of
mean ± std test accuracy, the mean epochs to converge (the lecture's "faster convergence": the
first epoch within 10 % of a run's best validation loss) and the hub module's size (parameters
and bytes on disk); the tables and the plot are also written to reports/transfer-curve/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline import atomic, config
from pipeline.config import PARAMS_FILE, parse_section
from pipeline.errors import UserError
from pipeline.objectives import few_shot
from pipeline.training import tracking

REPORT_DIR = "reports/transfer-curve"
RUN_NAME = "transfer-curve"


@dataclasses.dataclass(frozen=True)
class CurveParams:
    """The `transfer_curve:` section."""

    experiments: tuple[str, ...]
    labels_per_class: tuple[int | None, ...]  # null: every training example
    seeds: int


def load_curve_params(params: dict, sizes: list[int | None] | None, seeds: int | None) -> CurveParams:
    section = dict(params.get("transfer_curve") or {})
    if not section:
        raise UserError(
            f"{PARAMS_FILE}: section 'transfer_curve' is missing; e.g. add `transfer_curve: {{experiments: "
            "[transfer-scratch, transfer-feature], labels_per_class: [1, 5, null], seeds: 2}`"
        )
    if sizes is not None:
        section["labels_per_class"] = sizes
    if seeds is not None:
        section["seeds"] = seeds
    curve = parse_section(CurveParams, section, "transfer_curve")
    if not curve.experiments or not curve.labels_per_class or curve.seeds < 1:
        raise UserError(
            f"{PARAMS_FILE}: transfer_curve needs experiments, labels_per_class and seeds >= 1, e.g. "
            "`transfer_curve: {experiments: [transfer-scratch], labels_per_class: [1, 5], seeds: 2}`"
        )
    if any(n is not None and n < 1 for n in curve.labels_per_class):
        raise UserError(f"transfer_curve.labels_per_class {list(curve.labels_per_class)}: sizes must be >= 1")
    return curve


def label(n: int | None) -> str:
    return "all" if n is None else str(n)


def plan_runs(
    params: dict, curve: CurveParams, overrides: list[str], sandbox: bool = False
) -> list[tuple[str, int | None, int, list]]:
    """Every (experiment, size, seed, overrides), all validated (as sandboxed runs when `sandbox`)
    before the first run starts."""
    from pipeline import data
    from pipeline.training.plan import make_plan
    from pipeline.training.run import RunOptions, sandboxed

    runs = []
    for name in curve.experiments:
        base_plan = make_plan(params, name, overrides)
        if base_plan.objective is not few_shot.OBJECTIVE:
            raise UserError(f"transfer_curve: experiment '{name}' has no objective.labels_per_class")
        base_seed = base_plan.train.seed
        for n in curve.labels_per_class:
            changes = [*overrides, f"objective.labels_per_class={'null' if n is None else n}"]
            plan = sandboxed(make_plan(params, name, changes), RunOptions(sandbox=sandbox))
            dataset = data.load(plan.exp.dataset, params)
            _, spec = plan.objective.prepare(dataset, plan.train, plan.objective_params)  # enough labels?
            runs += [
                (name, n, seed, [*changes, f"train.seed={seed}"])
                for seed in range(base_seed, base_seed + curve.seeds)
            ]
        plan.family.check(plan.model, spec)  # e.g. the hub module loads and accepts the images
    return runs


def summarise(results: list[dict]) -> list[dict]:
    """Mean ± std of test accuracy and mean epochs to converge per experiment and size, in order."""
    rows = []
    keys = list(dict.fromkeys((r["experiment"], r["labels_per_class"]) for r in results))
    for experiment, n in keys:
        mine = [r for r in results if (r["experiment"], r["labels_per_class"]) == (experiment, n)]
        accs = [r["test_accuracy"] for r in mine]
        rows.append(
            {
                "experiment": experiment,
                "labels_per_class": label(n),
                "mean": float(np.mean(accs)),
                "std": float(np.std(accs)),
                "runs": len(accs),
                "epochs": float(np.mean([r["epochs_to_converge"] for r in mine])),
            }
        )
    return rows


def table_csv(rows: list[dict]) -> str:
    lines = ["experiment,labels_per_class,mean_test_accuracy,std_test_accuracy,runs,mean_epochs_to_converge"]
    lines += [
        f"{r['experiment']},{r['labels_per_class']},{r['mean']:.4f},{r['std']:.4f},{r['runs']},{r['epochs']:.1f}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def grid_markdown(rows: list[dict], cell) -> str:
    """Sizes as rows, experiments as columns, `cell(row)` in each."""
    experiments = list(dict.fromkeys(r["experiment"] for r in rows))
    sizes = list(dict.fromkeys(r["labels_per_class"] for r in rows))
    cells = {(r["experiment"], r["labels_per_class"]): cell(r) for r in rows}
    lines = ["| labels per class | " + " | ".join(experiments) + " |", "|---" * (len(experiments) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(cells.get((e, n), "") for e in experiments) + " |" for n in sizes]
    return "\n".join(lines) + "\n"


def table_markdown(rows: list[dict], module: dict | None = None) -> str:
    """Mean ± std test accuracy, then mean epochs to converge, then the hub module's size."""
    text = grid_markdown(rows, lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}")
    text += "\nEpochs to converge (first epoch within 10 % of the best validation loss; mean over seeds):\n\n"
    text += grid_markdown(rows, lambda r: f"{r['epochs']:.1f}")
    if module:
        text += (
            f"\nHub module `{module['handle']}`: {module['params']:,} parameters, "
            f"{module['bytes'] / 1e6:.2f} MB on disk.\n"
        )
    return text


def module_size(params: dict, curve: CurveParams, overrides: list[str], sandbox: bool = False) -> dict | None:
    """The hub module the curve's transfer runs load: its parameter count and size on disk."""
    from pipeline.models import hub
    from pipeline.training.plan import make_plan
    from pipeline.training.run import RunOptions, sandboxed

    for name in curve.experiments:
        plan = sandboxed(make_plan(params, name, overrides), RunOptions(sandbox=sandbox))
        handle = plan.family.tags(plan.model).get("hub_handle")  # the transfer family's tag
        if handle:
            path = Path(hub.resolve(handle))
            count = sum(int(np.prod(v.shape)) for v in hub.load(handle, str(path)).variables)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            return {"handle": handle, "params": count, "bytes": size}
    return None


def figure(rows: list[dict]):
    from pipeline import plots

    sizes = list(dict.fromkeys(r["labels_per_class"] for r in rows))
    fig, ax = plots.subplots(figsize=(6.5, 4))
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        mine = [r for r in rows if r["experiment"] == experiment]
        x = [sizes.index(r["labels_per_class"]) for r in mine]
        ax.errorbar(
            x,
            [r["mean"] for r in mine],
            yerr=[r["std"] for r in mine],
            marker="o",
            capsize=3,
            label=experiment,
        )
    ax.set(
        xticks=range(len(sizes)),
        xticklabels=sizes,
        xlabel="labelled training examples per class",
        ylabel="test accuracy (mean ± std over seeds)",
        title="Transfer learning curve",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def record(rows: list[dict], module: dict | None, sandbox: bool = False) -> Path | None:
    """The curve's tables and plot on the parent run and, unless sandboxed, in reports/transfer-curve/."""
    import mlflow

    for r in rows:
        point = f"{r['experiment']}.{r['labels_per_class']}"
        mlflow.log_metric(f"test_accuracy_mean.{point}", r["mean"])
        mlflow.log_metric(f"epochs_to_converge_mean.{point}", r["epochs"])
    if module:
        mlflow.log_metrics({"module_params": module["params"], "module_bytes": module["bytes"]})
    csv, markdown, fig = table_csv(rows), table_markdown(rows, module), figure(rows)
    mlflow.log_text(csv, "transfer_curve.csv")
    mlflow.log_text(markdown, "transfer_curve.md")
    mlflow.log_figure(fig, "transfer_curve.png")
    if sandbox:
        return None
    out = config.project_root() / REPORT_DIR
    atomic.write_text(out / "transfer_curve.csv", csv)
    atomic.write_text(out / "transfer_curve.md", markdown)
    with atomic.atomic_open(out / "transfer_curve.png") as handle:
        fig.savefig(handle, format="png", dpi=120)
    return out


def run(
    sizes: list[int | None] | None = None,
    seeds: int | None = None,
    overrides: list[str] | None = None,
    verbose: int | str | None = None,
    sandbox: bool = False,
) -> list[dict]:
    """Train the whole curve under one parent MLflow run; returns the summary rows. `sandbox`: every
    run sandboxed (the Python API's, docs/api.md), reports/ left as it is."""
    from pipeline.training.run import RunOptions
    from pipeline.training.run import run as train

    params = config.load_params()
    curve = load_curve_params(params, sizes, seeds)
    overrides = list(overrides or [])
    runs = plan_runs(params, curve, overrides, sandbox)
    task = config.resolve_experiment(params, curve.experiments[0]).task
    tags = {
        "git_commit": tracking.git_commit(),
        "kind": "learning-curve",
        **({tracking.SANDBOX_TAG: "true"} if sandbox else {}),
    }
    description = f"Test accuracy vs labels per class for {', '.join(curve.experiments)} (nested runs)."
    results = []
    with tracking.start_run(task, RUN_NAME, tags, description) as parent:
        tracking.log_params(
            {
                "experiments": list(curve.experiments),
                "labels_per_class": [label(n) for n in curve.labels_per_class],
                "seeds": curve.seeds,
                "overrides": overrides,
            }
        )
        for i, (name, n, seed, changes) in enumerate(runs, start=1):
            options = RunOptions(
                run_name=f"{name} n={label(n)} seed={seed}",
                log_outputs=False,
                verbose=verbose,
                sandbox=sandbox,
            )
            metrics = train(name, changes, options).metrics
            accuracy = metrics["test_accuracy"]
            print(f"[{i}/{len(runs)}] {name} labels_per_class={label(n)} seed={seed}: {accuracy:.4f}")
            results.append(
                {
                    "experiment": name,
                    "labels_per_class": n,
                    "seed": seed,
                    "test_accuracy": metrics["test_accuracy"],
                    "epochs_to_converge": metrics["epochs_to_converge"],
                }
            )
        rows = summarise(results)
        module = module_size(params, curve, overrides, sandbox)
        out = record(rows, module, sandbox)
        parent_id = parent.info.run_id
    print(table_markdown(rows, module))
    where = out or "the run"
    print(f"transfer-curve: {len(runs)} runs under parent run {parent_id} · table and plot in {where}")
    return rows
