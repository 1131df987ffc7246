"""Binary classification: some classes are "positive" (1), the others "negative" (0); one sigmoid.

The `objective:` section names the positive classes and, optionally, the negative ones (null:
every other class). A network ends in one sigmoid unit, P(positive), trained with binary
cross-entropy, -[y log p + (1 - y) log(1 - p)]: the two-class softmax with one output instead of
two. Every family is scored the same way from P(positive):

  test_accuracy  share right at the 0.5 threshold
  test_loss      binary cross-entropy (log loss) of the predicted probabilities
  test_roc_auc   area under the ROC curve: the chance that a random positive scores above a random
                 negative, threshold-free; the headline, since with one digit against the other
                 nine a model that always says "negative" is already 90 % accurate

Artifacts: roc_curve.png (true against false positive rate, the 0.5 threshold marked),
confusion_matrix.png and classification_report.txt.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import inference
from pipeline.config import PARAMS_FILE
from pipeline.data import streams
from pipeline.errors import UserError
from pipeline.objectives import Objective, classification, known_classes
from pipeline.objectives.classification import Splits
from pipeline.specs import ClassifierSpec


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section, shared by every run of the task so their params line up."""

    positive: tuple[int | str, ...]  # class names labelled 1: what the sigmoid's P(positive) is about
    negative: tuple[int | str, ...] | None  # class names labelled 0; null: every other class


def check_params(params: Params, class_names: list[str], where: str = "objective") -> tuple[list, list]:
    """Validate the section against the dataset; returns (positive, negative) class indices."""
    positive = known_classes(params.positive, class_names, f"{where}.positive")
    negative = None
    if params.negative is not None:
        negative = known_classes(params.negative, class_names, f"{where}.negative")
    if not positive:
        raise UserError(f"{PARAMS_FILE}: {where}.positive is empty: name at least one class")
    if negative is None:
        negative = [n for n in class_names if n not in positive]
    if not negative or set(positive) & set(negative):
        raise UserError(
            f"{PARAMS_FILE}: {where}: positive {positive} and negative {negative} must be "
            "non-empty and must not share a class"
        )
    return [class_names.index(n) for n in positive], [class_names.index(n) for n in negative]


def label_names(params: Params, class_names: list[str], negative: list[int]) -> list[str]:
    """["not 8", "8"] for one digit against the rest, ["1", "8"] for a pair."""
    positive = "+".join(str(c) for c in params.positive)
    if params.negative is None:
        return [f"not {positive}", positive]
    return ["+".join(class_names[i] for i in negative), positive]


def relabel(dataset, split: str, positive: list[int], negative: list[int], limit: int | None = None):
    """The examples of `split` in the chosen classes (the first `limit` of them), labelled 1 for
    the positive classes and 0 for the negative ones."""
    keep = np.flatnonzero(np.isin(dataset.labels(split), positive + negative))
    x, y = dataset.examples(split, keep if limit is None else keep[: max(0, limit)])
    return x, np.isin(y, positive).astype(np.int64)


def prepare(dataset, train, params: Params) -> tuple[Splits, ClassifierSpec]:
    """The chosen classes as 0/1 labels; `train.limit` keeps the first N training examples of them
    (the split is already shuffled)."""
    classification.check_dataset(dataset)
    positive, negative = check_params(params, dataset.class_names)
    x_train, y_train = relabel(dataset, "train", positive, negative, train.limit)
    if len(np.unique(y_train)) < 2:
        raise UserError(f"train.limit = {train.limit} leaves training examples of one label only")
    binary = Splits(
        x_train,
        y_train,
        *relabel(dataset, "val", positive, negative),
        *relabel(dataset, "test", positive, negative),
        label_names(params, dataset.class_names, negative),
    )
    return binary, ClassifierSpec(dataset.example_shape, 2, train.seed)


def predict(model, x) -> np.ndarray:
    """P(positive) per example, (n,): a sigmoid network's output (`x` read a chunk at a time) or an
    estimator's predict_proba[:, 1] (`x` whole)."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(streams.floats(x)), dtype=np.float64)[:, 1]
    return np.asarray(inference.predict(model, x), dtype=np.float64).reshape(len(x))


def roc_figure(y: np.ndarray, p: np.ndarray, auc: float):
    """The test ROC curve, and the point of the 0.5 threshold."""
    from sklearn.metrics import roc_curve

    from pipeline import plots

    fpr, tpr, thresholds = roc_curve(y, p)
    at_half = int(np.argmin(np.abs(thresholds - 0.5)))
    return plots.roc_curve(fpr, tpr, (fpr[at_half], tpr[at_half]), auc)


def evaluate(model, splits: Splits, params: Params | None = None) -> tuple[dict[str, float], dict]:
    from sklearn.metrics import classification_report, confusion_matrix, log_loss, roc_auc_score

    from pipeline import plots

    p = predict(model, splits.x_test)
    predicted = (p > 0.5).astype(np.int64)
    y = splits.y_test
    metrics = {
        "test_accuracy": float((predicted == y).mean()),
        "test_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "test_roc_auc": float(roc_auc_score(y, p)),
    }
    matrix = confusion_matrix(y, predicted, labels=[0, 1])
    artifacts = {
        "roc_curve.png": roc_figure(y, p, metrics["test_roc_auc"]),
        "confusion_matrix.png": plots.confusion_matrix(
            matrix, list(splits.class_names), metrics["test_accuracy"]
        ),
        "classification_report.txt": classification_report(
            y, predicted, labels=[0, 1], target_names=splits.class_names, digits=4, zero_division=0
        ),
    }
    return metrics, artifacts


def problem(dataset, params: Params) -> str:
    """Runs that separate the same classes are ranked together."""
    _, negative = check_params(params, dataset.class_names)
    names = label_names(params, dataset.class_names, negative)
    return f"{dataset.name}: {names[1]} vs {names[0]}"


def keras_metrics() -> list:
    """A fresh metric object per compile: per-epoch accuracy and ROC-AUC (train and validation)."""
    import keras

    return ["accuracy", keras.metrics.AUC(name="roc_auc")]


OBJECTIVE = Objective(
    name="binary",
    loss="binary_crossentropy",
    headline="test_roc_auc",
    directions={"roc_auc": "max", "accuracy": "max", "loss": "min"},
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    params=Params,
    keras_metrics=keras_metrics,
    problem=problem,
)
