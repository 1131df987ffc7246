"""Model families: one module per family, each ending with `FAMILY = Family(...)`, declared in FAMILIES.

A family builds a model from its `model:` section and a spec of the data (pipeline.specs) and
trains on the data of one objective. Everything else has a default; a family overrides only the
hooks it needs (two-phase fine-tuning, a file it publishes, how its model is logged). Families
import neither the training core nor an objective: the core hands them what they need (the spec,
a bound training loop), see docs/architecture.md.

Add a family: write pipeline/models/<name>.py ending with `FAMILY = Family(...)`, its `model:`
schema in pipeline/models/schemas.py, and declare it in FAMILIES. An experiment that consumes
another's output (transfer learning loads the module `pretrain` publishes) lists it under
`needs:` in params.yaml, so make trains it first.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

from pipeline.config import PARAMS_FILE, suggest
from pipeline.errors import UserError
from pipeline.models import schemas as s


@dataclasses.dataclass(frozen=True)
class Declared:
    """What is known of a family without importing its module (which imports Keras): params.yaml
    is checked, and make's graph and train-all's scheduler are drawn, from this alone."""

    module: str  # the module ending with `FAMILY = Family(...)`
    objective: str  # the objective whose data it trains on (a name in pipeline.objectives)
    params: type  # dataclass: the shape of the experiment's `model:` section
    kind: Literal["keras", "estimator"] = "keras"  # estimator: any object with .fit(x, y)
    train_params: type | None = None  # a config.TrainParams subclass with extra `train:` keys

    def source_file(self) -> Path:
        """The module's file, relative to the project (make's prerequisites)."""
        return Path(*self.module.split(".")).with_suffix(".py")


FAMILIES = {
    "mlp": Declared("pipeline.models.mlp", "classification", s.MlpParams),
    "cnn": Declared("pipeline.models.cnn", "classification", s.CnnParams),
    "svc": Declared("pipeline.models.svc", "classification", s.SvcParams, "estimator"),
    "mlp-binary": Declared("pipeline.models.mlp_binary", "binary", s.MlpParams),
    "cnn-binary": Declared("pipeline.models.cnn_binary", "binary", s.CnnParams),
    "logreg": Declared("pipeline.models.logreg", "binary", s.LogregParams, "estimator"),
    "mlp-regressor": Declared("pipeline.models.mlp_regressor", "regression", s.MlpParams),
    "pretrain": Declared("pipeline.models.pretrain", "few_shot", s.PretrainParams),
    "transfer": Declared(
        "pipeline.models.transfer", "few_shot", s.TransferParams, train_params=s.TransferTrainParams
    ),
    "autoencoder": Declared("pipeline.models.autoencoder", "anomaly", s.AutoencoderParams),
    "pca": Declared("pipeline.models.pca", "anomaly", s.PcaParams, "estimator"),
    "isolation-forest": Declared(
        "pipeline.models.isolation_forest", "anomaly", s.IsolationForestParams, "estimator"
    ),
    "lstm": Declared("pipeline.models.lstm", "forecasting", s.RecurrentParams),
    "rnn": Declared("pipeline.models.rnn", "forecasting", s.RecurrentParams),
    "dense-window": Declared("pipeline.models.dense_window", "forecasting", s.DenseWindowParams),
    "naive": Declared("pipeline.models.naive", "forecasting", s.NoParams, "estimator"),
    "seasonal-naive": Declared("pipeline.models.seasonal_naive", "forecasting", s.NoParams, "estimator"),
    "sarimax": Declared("pipeline.models.sarimax", "forecasting", s.SarimaxParams, "estimator"),
    "char-recurrent": Declared("pipeline.models.char_recurrent", "next_character", s.CharRecurrentParams),
    "char-ngram": Declared("pipeline.models.char_ngram", "next_character", s.NgramParams, "estimator"),
}


class FitLoop(Protocol):
    """The training core's Keras loop, bound to the run's data, loss, metrics and callbacks.

    Compiles and fits `model`; returns the Keras history. `learning_rate` and `epochs` default to
    the `train:` section's; `initial_epoch` continues a history (a second phase); `inputs` maps the
    run's training and validation inputs to what `model` takes (e.g. a frozen module's features);
    `keep_compiled`: a model compiled already keeps its optimizer and loss (a caller's own model).
    """

    def __call__(
        self,
        model: Any,
        *,
        learning_rate: float | None = None,
        epochs: int | None = None,
        initial_epoch: int = 0,
        inputs: Callable[[Any], Any] | None = None,
        keep_compiled: bool = False,
    ) -> dict[str, list[float]]: ...


@dataclasses.dataclass(frozen=True)
class Published:
    """Files a family wrote for later experiments (e.g. a hub module), logged under `artifact_path`."""

    folder: Path
    artifact_path: str


@dataclasses.dataclass(frozen=True)
class Logged:
    """How the trained model is logged as an MLflow model. Nothing is pickled: the pipeline loads
    back only these three forms (pipeline/training/loading.py).

    flavor       keras: the Keras flavour (a `.keras` file, loaded in safe mode);
                 sklearn: the scikit-learn flavour in skops format (loaded with a fixed trusted-type list);
                 code: MLflow models-from-code: MLflow runs the module `code` to rebuild the fitted
                 model from `config(model)` and the files `files` writes (e.g. the forecasting baselines)
    output       (model, x) → the signature's output for an input example; None: the objective's predict
    pyfunc_method  sklearn: what pyfunc's `predict` calls (e.g. predict_proba)
    trusted_types  sklearn: extra types skops may load (from our own freshly written file)
    code         code: a module of this package that imports nothing from the pipeline and ends with
                 `mlflow.models.set_model(...)`; its file is logged and checked by sha256 before it runs
    config       code: model → its fitted state as plain values (the MLmodel's `config`)
    files        code: (model, folder) → {name: path of a file written in folder}: artifacts the code reads
    requirements code: pip packages the code needs besides numpy and MLflow (pinned at logging time)
    """

    flavor: Literal["keras", "sklearn", "code"] = "keras"
    output: Callable[[Any, Any], Any] | None = None
    pyfunc_method: str = "predict"
    trusted_types: tuple[str, ...] = ()
    code: ModuleType | None = None
    config: Callable[[Any], dict] | None = None
    files: Callable[[Any, Path], dict[str, Path]] | None = None
    requirements: tuple[str, ...] = ()


def no_check(params, spec) -> None:
    """Default: the schema says everything there is to say."""


def as_written(params, spec):
    """Default: nothing is chosen from the data; the params are the run's as written."""
    return params


def no_tags(params) -> dict[str, str]:
    return {}


def fit_with_loop(model, params, train, loop: FitLoop) -> dict[str, list[float]]:
    """Default Keras training: one call of the core's loop."""
    return loop(model)


def fit_arrays(model, x_train, y_train, validation) -> None:
    """Default estimator training: `.fit(x, y)` on the training split (validation unused)."""
    model.fit(x_train, y_train)


def publish_nothing(model, params) -> Published | None:
    return None


def unchanged(params, folder: Path):
    """Default `sandboxed`: a family that publishes and reads no files."""
    return params


def in_folder(path: str, folder: Path) -> Path:
    """A family's file path moved under `folder` (a sandbox), an absolute one too."""
    relative = Path(path)
    return folder / relative.relative_to(relative.anchor) if relative.is_absolute() else folder / relative


def no_callbacks(params, x_train, y_train) -> tuple:
    return ()


def count_weights(model) -> int | None:
    """Default size: a Keras model's weights (trainable or not); None for an estimator that does
    not say what its size is."""
    count = getattr(model, "count_params", None)
    return int(count()) if callable(count) else None


def nothing_learned(model) -> int:
    """The size of a model that learns nothing (the naive forecasts)."""
    return 0


@dataclasses.dataclass(frozen=True)
class Family:
    """The contract every model family module fulfils (its `FAMILY`)."""

    name: str  # the name experiments use in `family:` (and the run tag `model_family`)
    build: Callable[[Any, Any], Any]  # (params, spec) → an uncompiled keras.Model or an unfitted estimator
    # raise UserError when the model cannot work on this data, before any run starts
    check: Callable[[Any, Any], None] = no_check
    tags: Callable[[Any], dict[str, str]] = no_tags  # extra MLflow tags from the params
    # (params, spec) → the params with what depends on the data chosen (cnn's `auto` knobs): the
    # run builds with, and logs, what this returns
    resolve: Callable[[Any, Any], Any] = as_written
    # (model, params, train params, loop) → history: its own training (e.g. two phases)
    fit: Callable[[Any, Any, Any, FitLoop], dict[str, list[float]]] = fit_with_loop
    # estimators: (model, x_train, y_train, validation (x, y) or None) → None, e.g. an n-gram model
    # that chooses its order on the validation split
    fit_estimator: Callable[[Any, Any, Any, Any], None] = fit_arrays
    logged: Logged = Logged()
    # (model, params) → files later experiments read, written inside the run after the model is logged
    publish: Callable[[Any, Any], Published | None] = publish_nothing
    # (params, x_train, y_train) → extra Keras callbacks for every fit, run before the core's epoch
    # logger: what one adds to an epoch's `logs` is logged as a per-epoch metric (e.g. a gradient norm)
    callbacks: Callable[[Any, Any, Any], tuple] = no_callbacks
    # trained model → its number of learned parameters (the run's `model_params` metric), or None
    count_params: Callable[[Any], int | None] = count_weights
    # (params, folder) → the params of a sandboxed run (the Python API's): what it publishes written
    # under `folder`, and what it reads read from there when a sandboxed run published it
    sandboxed: Callable[[Any, Path], Any] = unchanged

    # what FAMILIES declares of it, read as its own
    objective = property(lambda self: FAMILIES[self.name].objective)
    params = property(lambda self: FAMILIES[self.name].params)
    kind = property(lambda self: FAMILIES[self.name].kind)
    train_params = property(lambda self: FAMILIES[self.name].train_params)


def declaration(family: str, where: str = "") -> Declared:
    """The family's entry in FAMILIES; an unknown name is a one-line error (nothing imported)."""
    if family not in FAMILIES:
        raise UserError(
            f"{PARAMS_FILE}: {where}family '{family}' is unknown{suggest(family, FAMILIES)}; "
            f"known: {', '.join(FAMILIES)}"
        )
    return FAMILIES[family]


def get(family: str, where: str = "") -> Family:
    return importlib.import_module(declaration(family, where).module).FAMILY
