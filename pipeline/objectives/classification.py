"""Classification objective: data for the model, the loss, and the same test metrics for every family.

Every family's test metrics come from its predicted class probabilities, computed here the same
way (log loss and accuracy), so a Keras network and a scikit-learn baseline compare directly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import images, inference
from pipeline.data import streams
from pipeline.data.streams import Rows
from pipeline.errors import UserError
from pipeline.objectives import Objective, Served, limit_rows
from pipeline.objectives.served import image_classifier
from pipeline.specs import ClassifierSpec

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # the largest encoded image the served model decodes


@dataclasses.dataclass
class Splits:
    """Images are streams.Rows (read on use, streamed to training), tables arrays."""

    x_train: Rows | np.ndarray
    y_train: np.ndarray
    x_val: Rows | np.ndarray
    y_val: np.ndarray
    x_test: Rows | np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    @property
    def validation(self):
        return (self.x_val, self.y_val) if len(self.x_val) else None


def check_dataset(dataset) -> None:
    if dataset.kind not in ("images", "table"):
        raise UserError(
            f"dataset '{dataset.name}' is a {dataset.kind}; classification needs images or a table"
        )


def prepare(dataset, train, params=None) -> tuple[Splits, ClassifierSpec]:
    """The model's inputs; `train.limit` keeps only the first N training examples (and every
    example retrain merged in from a batch)."""
    check_dataset(dataset)
    keep = limit_rows(dataset.count("train"), train.limit, dataset.merged_rows)  # already shuffled
    x_train, y_train = dataset.examples("train", keep)
    (x_val, y_val), (x_test, y_test) = dataset.examples("val"), dataset.examples("test")
    splits = Splits(x_train, y_train, x_val, y_val, x_test, y_test, dataset.class_names)
    return splits, ClassifierSpec(dataset.example_shape, len(dataset.class_names), train.seed)


def predict(model, x) -> np.ndarray:
    """Class probabilities from a Keras model (`x` read a chunk at a time) or a scikit-learn
    estimator (`x` whole), rows summing to 1."""
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(streams.floats(x))
    else:
        proba = inference.predict(model, x)
    proba = np.asarray(proba, dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 ± 1e-7


def evaluate(model, splits: Splits, params=None) -> tuple[dict[str, float], dict]:
    """Test metrics and the figures/tables that explain them."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss

    from pipeline import plots

    labels = list(range(len(splits.class_names)))
    proba = predict(model, splits.x_test)
    predicted = proba.argmax(axis=1)
    metrics = {
        "test_accuracy": float(accuracy_score(splits.y_test, predicted)),
        "test_loss": float(log_loss(splits.y_test, proba, labels=labels)),
    }
    matrix = confusion_matrix(splits.y_test, predicted, labels=labels)
    artifacts = {
        "confusion_matrix.png": plots.confusion_matrix(
            matrix, list(splits.class_names), metrics["test_accuracy"]
        ),
        "classification_report.txt": classification_report(
            splits.y_test,
            predicted,
            labels=labels,
            target_names=splits.class_names,
            digits=4,
            zero_division=0,
        ),
    }
    return metrics, artifacts


# a run warns when its test or validation accuracy is under this many times chance (1 / classes),
# or when its validation accuracy is more than GAP below its training accuracy
NEAR_CHANCE = 1.5
GAP = 0.3


def quality_warning(metrics: dict, kept: dict | None, splits: Splits) -> str | None:
    """One line when the model is near chance or far better on its training images than on others,
    with the likely cause; None when neither. `kept`: the Keras logs of the epoch whose weights were
    kept (training and validation accuracy), None for an estimator."""
    classes = len(splits.class_names)
    chance, kept = 1 / classes, kept or {}
    train, val = kept.get("accuracy"), kept.get("val_accuracy")
    low = {name: value for name, value in (("test", metrics.get("test_accuracy")), ("validation", val))
           if value is not None and value < NEAR_CHANCE * chance}  # fmt: skip
    size = f"{len(splits.y_train)} training images, {int(metrics.get('model_params', 0)):,} weights"
    if low:
        name, value = next(iter(low.items()))
        said = f"{name} accuracy {value:.3f} is near chance (1/{classes} = {chance:.3f})"
        if train is None:  # an estimator: no training curve to tell more
            return f"{said}: check that each class holds its own examples, and the model's settings ({size})"
        if train < NEAR_CHANCE * chance:
            return (
                f"{said} and so is training accuracy ({train:.3f}): nothing was learned; check that each "
                "class folder holds its own images, or try more epochs or another train.learning_rate"
            )
        return (
            f"{said} while training accuracy is {train:.3f}: the model does not generalise ({size}); "
            "try model.augment, a smaller model or more images (with batch norm: a lower model.bn_momentum, "
            "whose moving statistics may lag the weights)"
        )
    if train is not None and val is not None and train - val > GAP:
        return (
            f"validation accuracy {val:.3f} is {train - val:.2f} below training accuracy {train:.3f}: the "
            f"model memorises its training images ({size}); try model.augment, dropout or more images"
        )
    return None


def problem(dataset, params=None) -> str:
    """Runs that predict the same classes of the same dataset are ranked together."""
    return f"{dataset.name}: classes {', '.join(dataset.class_names)}"


def keras_metrics() -> list:
    return ["accuracy"]


def served_config(splits: Splits, dataset) -> dict:
    """What the served classifier needs: the classes, the input it resizes to, the image limits."""
    return {
        "class_names": list(splits.class_names),
        "input_shape": list(dataset.example_shape),
        "max_pixels": images.MAX_PIXELS,
        "max_bytes": MAX_IMAGE_BYTES,
        "formats": ["PNG", "JPEG", "HEIF"],  # HEIF: HEIC photos, where pillow-heif is installed
    }


def png_base64(pixels: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    levels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def served_example(splits: Splits, dataset) -> list[dict]:
    """A test image as a base64 PNG, and one as its pixel values."""
    x = next(inference.pieces(splits.x_test, rows=2))  # the first two test images, as floats
    pixels = [{"pixels": [round(float(v), 4) for v in x[1].ravel()]}]
    return ([{"image": png_base64(x[0])}] if x.ndim == 4 else []) + pixels


def served_signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Map, Schema

    image, pixels = ColSpec("string", "image", required=False), ColSpec(AnyType(), "pixels", required=False)
    records = Schema([image, pixels])
    answers = Schema([ColSpec("string", "class"), ColSpec(Map("double"), "probabilities")])
    return ModelSignature(records, answers)


OBJECTIVE = Objective(
    name="classification",
    loss="sparse_categorical_crossentropy",
    headline="test_accuracy",
    directions={"accuracy": "max", "loss": "min"},
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    keras_metrics=keras_metrics,
    problem=problem,
    warning=quality_warning,
    # a registered classifier takes {"image": base64} or {"pixels": [...]} records, answers class names
    served=Served(
        code=image_classifier,
        config=served_config,
        example=served_example,
        signature=served_signature,
        helpers={"images": images},
    ),
)
