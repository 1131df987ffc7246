"""`python -m pipeline retrieve IMAGE... [--k 10] [--model autoencoder|pca]`: image retrieval.

Each query image is encoded by the model `--model` names (an experiment: its latest finished run;
or a registered model, a run id, a URI: pipeline/training/resolve.py), an autoencoder's encoder or
PCA's components as logged in MLflow, and compared with the codes of every image of the dataset's
training split (all classes, also those the model never trained on); the k nearest (Euclidean
distance in code space) are printed, drawn as a picture grid (`reports/retrieval/<model>.png`, or
`--output`) and logged as a run `retrieve` of the MLflow experiment `retrieval` (the grid,
neighbours.csv, the model run it used).

Query images are untrusted input, read as `make predict` reads images (`data.read_image`): only
regular files (symlinks refused), their size checked from the header before anything is decoded.
These and a model without a finished run are refused before TensorFlow is imported: the one-line
error comes in about a second.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from pipeline import atomic, config, data, plots, startup
from pipeline.errors import UserError
from pipeline.objectives import anomaly
from pipeline.training import resolve, tracking

TASK, RUN_NAME = "retrieval", "retrieve"
CODE_FAMILIES = ("autoencoder", "pca")  # families whose model has a code space


def read_queries(images: list[str], shape: tuple[int, ...]) -> np.ndarray:
    # every query is read (and refused, one line) before the model loads; resized like the dataset
    return np.stack([data.read_image(Path(p), shape) for p in images])


def code_model(name: str):
    """The finished run of a model with a code space that `--model` names (an experiment: its latest
    finished run; a registered model, a run id or a URI: resolve.py), read from its tags without
    loading it (that imports TensorFlow). An experiment's family is checked first, from params.yaml."""
    import mlflow

    params = config.load_params()
    if name in params["experiments"]:
        check_family(name, config.resolve_experiment(params, name).family)
    resolved = resolve.resolve(name, said=f"--model {name}")
    if not resolved.run_id:
        raise UserError(f"--model {name}: {resolved.uri} names no run; give an experiment or a run id")
    run = mlflow.MlflowClient().get_run(resolved.run_id)
    check_family(name, run.data.tags.get("model_family", ""))
    return run


def check_family(name: str, family: str) -> None:
    if family not in CODE_FAMILIES:
        raise UserError(
            f"--model {name}: family '{family}' has no code space to search; "
            f"use an experiment of family {' or '.join(CODE_FAMILIES)}"
        )


def load(uri: str):
    """The logged model itself (the autoencoder's Keras model, PCA's fitted pipeline), loaded only in
    a form the pipeline logs (pipeline/training/loading.py): nothing in it runs."""
    from pipeline.training import loading

    return loading.load(uri).native()


def neighbours(model, queries: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices into `pool`) of each query's k nearest codes."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=min(k, len(pool))).fit(anomaly.encode(model, pool))
    return index.kneighbors(anomaly.encode(model, queries))


def grid(queries, found, labels, distances, indices, class_names, title: str):
    """One row per query: the query, then its neighbours (`found[r, c]`: the image of
    `indices[r, c]`) with their class and distance."""
    rows, k = indices.shape
    fig, axes = plots.subplots(rows, k + 1, figsize=(1.1 * (k + 1), 1.3 * rows + 0.4), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(queries[r].squeeze(), cmap="gray_r", vmin=0, vmax=1)
        axes[r, 0].set_title("query", fontsize=8, color="tab:red")
        for c in range(k):
            axes[r, c + 1].imshow(found[r, c].squeeze(), cmap="gray_r", vmin=0, vmax=1)
            name = class_names[labels[indices[r, c]]]
            axes[r, c + 1].set_title(f"{name} · {distances[r, c]:.2f}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def table(images, distances, indices, labels, class_names) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["query", "rank", "train_index", "class", "distance"])
    for image, dist, idx in zip(images, distances, indices, strict=True):
        for rank, (d, i) in enumerate(zip(dist, idx, strict=True), start=1):
            writer.writerow([image, rank, int(i), class_names[labels[i]], f"{d:.6f}"])
    return buffer.getvalue()


def report(images, distances, indices, labels, class_names) -> None:
    for image, dist, idx in zip(images, distances, indices, strict=True):
        found = [class_names[labels[i]] for i in idx]
        counts = ", ".join(f"{c} x{found.count(c)}" for c in dict.fromkeys(found))
        print(f"{image}: {len(idx)} nearest training images by class: {counts}")
        print(
            "  "
            + "  ".join(f"#{i}:{class_names[labels[i]]} ({d:.3f})" for d, i in zip(dist, idx, strict=True))
        )


def main(images: list[str], k: int, model_name: str, output: str | None) -> int:
    import mlflow

    run = code_model(model_name)
    family = run.data.tags["model_family"]
    dataset = data.load(run.data.tags["dataset"])
    pool, labels = dataset.examples("train")
    queries = read_queries(images, dataset.example_shape)
    startup.quiet_tensorflow()  # only now: every error above answers without its slow import
    model = load(f"runs:/{run.info.run_id}/model")
    distances, indices = neighbours(model, queries, pool, k)
    report(images, distances, indices, labels, dataset.class_names)
    if run.data.tags.get("data_hash") not in (None, dataset.sha256):
        print(f"note: dataset '{dataset.name}' changed since run {run.info.run_id} was trained")
    title = f"{len(images)} queries · {indices.shape[1]} nearest training images in {model_name}'s code space"
    figure = grid(queries, pool.read(indices), labels, distances, indices, dataset.class_names, title)
    out = Path(output) if output else config.project_root() / "reports" / "retrieval" / f"{model_name}.png"
    with atomic.atomic_open(out) as handle:
        figure.savefig(handle, format="png", dpi=110)
    tags = {"model_run_id": run.info.run_id, "model_family": family, "dataset": dataset.name}
    with tracking.start_run(TASK, RUN_NAME, {**tags, "data_hash": dataset.sha256}) as logged:
        tracking.log_params(
            {"model": model_name, "k": indices.shape[1], "images": [Path(i).name for i in images]}
        )
        mlflow.log_figure(figure, "retrieval.png")
        mlflow.log_text(table(images, distances, indices, labels, dataset.class_names), "neighbours.csv")
    print(f"retrieve: grid → {out} · run {logged.info.run_id} in experiment '{TASK}'")
    return 0
