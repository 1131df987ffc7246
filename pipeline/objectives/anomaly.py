"""Anomaly objective: normal-only training data, a mixed test set, and the same metrics for every family.

The `objective:` section of params.yaml (shared by `autoencoder`, `pca` and `isolation-forest`)
names the anomaly classes held out of training; every other class is "normal". Each family is
scored the same way:

  score      per test image, higher = more anomalous: the reconstruction error for models that
             reconstruct (autoencoder, PCA), `-score_samples` for IsolationForest
  threshold  the `threshold_quantile` quantile of the scores of the *normal validation* images
             (e.g. 0.95: about 5 % of normal images are flagged); anomalous validation images
             are never used for training or for the threshold, only for `val_roc_auc`
  metrics    test_roc_auc (threshold-free), test_precision / test_recall of the anomaly class at
             the threshold, test_precision_at_10 (same-class share of the 10 nearest test images
             in code space: the autoencoder's latent codes, PCA's components, raw pixels for
             IsolationForest, which has no code), test_reconstruction_mse on the normal test images
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from pipeline import inference
from pipeline.config import PARAMS_FILE
from pipeline.data import streams
from pipeline.data.streams import Rows
from pipeline.errors import UserError
from pipeline.objectives import Objective, known_classes, limit_rows
from pipeline.specs import AnomalySpec


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section: shared by every run of the task so their params line up."""

    anomaly_classes: tuple[int | str, ...]  # class names held out of training: the anomalies
    latent_dim: int  # autoencoder code size = PCA components (the comparison is like for like)
    score: Literal["mse", "normalized"]  # normalized: each pixel's error / its normal-val mean error
    threshold_quantile: float  # threshold = this quantile of the normal validation scores
    retrieval_k: int  # neighbours for test_precision_at_<k>


@dataclasses.dataclass
class Splits:
    """Training/validation images (streams.Rows) are normal only; a model reconstructs them, so they
    have no targets of their own (`y_train` None: the images themselves)."""

    x_train: Rows
    x_val: Rows
    x_val_all: Rows  # normal + anomalous validation images (val_roc_auc only)
    val_is_anomaly: np.ndarray
    x_test: Rows  # normal + anomalous test images
    test_labels: np.ndarray  # class indices, for retrieval and the latent scatter
    test_is_anomaly: np.ndarray
    class_names: list[str]
    anomaly_classes: list[str]

    y_train = None  # the images themselves (Rows.dataset's targets=None)

    @property
    def validation(self):
        return (self.x_val, None) if len(self.x_val) else None


def check_params(params: Params, class_names: list[str], where: str = "objective") -> list[int]:
    """Validate the section against the dataset; returns the anomaly class indices."""
    names = known_classes(params.anomaly_classes, class_names, f"{where}.anomaly_classes")
    if not names:
        raise UserError(f"{PARAMS_FILE}: {where}.anomaly_classes is empty: name at least one class")
    if len(set(names)) == len(class_names):
        raise UserError(f"{PARAMS_FILE}: {where}.anomaly_classes holds every class: none is left as normal")
    if params.latent_dim < 1:
        raise UserError(f"{PARAMS_FILE}: {where}.latent_dim must be at least 1 (got {params.latent_dim})")
    if not 0.0 < params.threshold_quantile < 1.0:
        raise UserError(
            f"{PARAMS_FILE}: {where}.threshold_quantile must be between 0 and 1 "
            f"(got {params.threshold_quantile})"
        )
    if params.retrieval_k < 1:
        raise UserError(f"{PARAMS_FILE}: {where}.retrieval_k must be at least 1 (got {params.retrieval_k})")
    return [class_names.index(n) for n in names]


def prepare(dataset, train, params: Params) -> tuple[Splits, AnomalySpec]:
    """Normal-only training/validation images; the test split keeps every class."""
    if dataset.kind != "images":
        raise UserError(f"dataset '{dataset.name}' is a {dataset.kind}; the anomaly objective needs images")
    anomalies = check_params(params, dataset.class_names)
    y_train = dataset.labels("train")
    normal = np.flatnonzero(~np.isin(y_train, anomalies))
    merged = int((normal >= len(y_train) - dataset.merged_rows).sum())  # batches' normal examples
    x_train, _ = dataset.examples("train", normal[limit_rows(len(normal), train.limit, merged)])
    (x_val, y_val), (x_test, y_test) = dataset.examples("val"), dataset.examples("test")
    val_is_anomaly = np.isin(y_val, anomalies)
    splits = Splits(
        x_train=x_train,  # already shuffled: the first `train.limit` normal examples
        x_val=x_val.select(~val_is_anomaly),
        x_val_all=x_val,
        val_is_anomaly=val_is_anomaly,
        x_test=x_test,
        test_labels=y_test,
        test_is_anomaly=np.isin(y_test, anomalies),
        class_names=dataset.class_names,
        anomaly_classes=[dataset.class_names[i] for i in anomalies],
    )
    return splits, AnomalySpec(dataset.example_shape, params.latent_dim, train.seed)


# --------------------------------------------------------------------------- what a model gives


def flat(x) -> np.ndarray:
    """Images as pixel rows, whole (the estimators: small data; refused beyond a cap)."""
    x = streams.floats(x)
    return x.reshape(len(x), -1)


def chunks(x):
    """Images (an array or streams.Rows) as float arrays, a chunk at a time: scores never hold a
    whole split's reconstructions."""
    return (part for part in inference.pieces(x) if len(part))


def reconstructs(model) -> bool:
    """Autoencoders (Keras) and PCA reconstruct their input; IsolationForest only scores it."""
    return hasattr(model, "inverse_transform") or hasattr(model, "get_layer")


def reconstruct(model, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "inverse_transform"):  # PCA
        return model.inverse_transform(model.transform(x)).reshape(x.shape)
    return inference.predict(model, x).reshape(x.shape)


def encode(model, x) -> np.ndarray:
    """Codes for retrieval: latent codes, PCA components, or raw pixels when a model has no code."""
    if hasattr(model, "inverse_transform"):
        return model.transform(flat(x))
    if hasattr(model, "get_layer"):
        return inference.predict(model.get_layer("encoder"), x)
    return flat(x)


def pixel_errors(model, x: np.ndarray) -> np.ndarray:
    """Squared reconstruction error per pixel, (images, pixels), of a float array of images."""
    return flat((reconstruct(model, x) - x) ** 2).astype(np.float64)


def mean_errors(model, x, weights=1.0) -> np.ndarray:
    """Each image's mean (weighted) squared pixel error, a chunk at a time."""
    parts = [(pixel_errors(model, part) / weights).mean(axis=1) for part in chunks(x)]
    return np.concatenate(parts) if parts else np.zeros(0)


def pixel_mean_errors(model, x) -> np.ndarray:
    """Each pixel's squared error, averaged over the images, a chunk at a time."""
    return sum(pixel_errors(model, part).sum(axis=0) for part in chunks(x)) / len(x)


def scorer(model, x_normal_val, score: str):
    """A function x -> anomaly scores; `normalized` weights each pixel by 1 / its normal-val error."""
    if not reconstructs(model):
        return lambda x: -model.score_samples(flat(x))
    if score == "mse":
        return lambda x: mean_errors(model, x)
    # pixels a model always reconstructs well (the empty border) count more when they are wrong
    scale = pixel_mean_errors(model, x_normal_val) + 1e-4
    return lambda x: mean_errors(model, x, scale)


def predict(model, x) -> np.ndarray:
    """Plain anomaly scores (higher = more anomalous): mean squared reconstruction error or -score_samples."""
    return mean_errors(model, x) if reconstructs(model) else -model.score_samples(flat(x))


def threshold(normal_scores: np.ndarray, quantile: float) -> float:
    """The documented rule: the `quantile` quantile of the normal validation scores."""
    return float(np.quantile(normal_scores, quantile))


def precision_at_k(codes: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean share of each image's k nearest neighbours (itself excluded) that have its class."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(codes) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(codes).kneighbors(codes)
    neighbours = index[:, 1:]  # column 0 is the image itself (distance 0)
    return float((labels[neighbours] == labels[:, None]).mean())


# --------------------------------------------------------------------------- evaluation


def evaluate(model, splits: Splits, p: Params) -> tuple[dict[str, float], dict]:
    """Test metrics and the figures that explain them, computed the same way for every family."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    from pipeline import plots

    score = scorer(model, splits.x_val, p.score)
    cut = threshold(score(splits.x_val), p.threshold_quantile)
    test_scores = score(splits.x_test)
    flagged = test_scores > cut
    truth = splits.test_is_anomaly
    codes = encode(model, splits.x_test)
    metrics = {
        "test_roc_auc": float(roc_auc_score(truth, test_scores)),
        "test_precision": float(precision_score(truth, flagged, zero_division=0)),
        "test_recall": float(recall_score(truth, flagged)),
        f"test_precision_at_{p.retrieval_k}": precision_at_k(codes, splits.test_labels, p.retrieval_k),
        "val_roc_auc": float(roc_auc_score(splits.val_is_anomaly, score(splits.x_val_all))),
        "threshold": cut,
    }
    title = f"anomalies: {', '.join(splits.anomaly_classes)} · test ROC-AUC {metrics['test_roc_auc']:.4f}"
    artifacts: dict = {
        "anomaly_scores.png": plots.score_histogram(test_scores, truth, cut, score_name(model, p), title),
        "anomaly_report.txt": report(test_scores, flagged, splits),
    }
    if reconstructs(model):
        normal = splits.x_test.select(~truth)
        metrics["test_reconstruction_mse"] = float(mean_errors(model, normal).mean())
        order = np.argsort(test_scores)
        shown = np.concatenate([order[:4], order[-4:]])  # the most normal and the most anomalous
        images = splits.x_test.read(shown)
        artifacts["reconstructions.png"] = plots.reconstructions(
            images, reconstruct(model, images), test_scores[shown]
        )
        if codes.shape[1] == 2:
            artifacts["latent_space.png"] = plots.latent_scatter(
                codes,
                splits.test_labels,
                list(splits.class_names),
                splits.test_is_anomaly,
            )
    return metrics, artifacts


def score_name(model, params: Params) -> str:
    if not reconstructs(model):
        return "-score_samples (IsolationForest)"
    return "reconstruction MSE" if params.score == "mse" else "normalized reconstruction error"


def report(scores: np.ndarray, flagged: np.ndarray, splits: Splits) -> str:
    """Per test class: how many images, their mean score, and the share flagged as anomalous."""
    lines = ["class,kind,images,mean_score,flagged"]
    for index, name in enumerate(splits.class_names):
        mine = splits.test_labels == index
        if mine.any():
            kind = "anomaly" if name in splits.anomaly_classes else "normal"
            lines.append(f"{name},{kind},{mine.sum()},{scores[mine].mean():.6g},{flagged[mine].mean():.4f}")
    return "\n".join(lines) + "\n"


def problem(dataset, params: Params) -> str:
    """Runs that hold out the same anomaly classes are ranked together."""
    return f"{dataset.name}: anomalies {', '.join(str(c) for c in params.anomaly_classes)}"


def keras_metrics() -> list:
    return ["mae"]


OBJECTIVE = Objective(
    name="anomaly",
    loss="mse",  # the autoencoder learns x -> x
    headline="test_roc_auc",
    directions={
        "roc_auc": "max",
        "precision": "max",
        "recall": "max",
        "precision_at": "max",  # test_precision_at_<k>
        "reconstruction_mse": "min",
        "mae": "min",
        "loss": "min",
    },
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    params=Params,
    keras_metrics=keras_metrics,
    problem=problem,
)
