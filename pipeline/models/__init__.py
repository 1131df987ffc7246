"""Model families. Each module defines:

  KIND       "keras" (trained by pipeline.train.fit) or "sklearn" (any object with .fit(x, y))
  OBJECTIVE  the pipeline module that prepares its data and evaluates it ("classification", ...)
  Params     a dataclass: the shape of the experiment's `model:` section in params.yaml
  build(params, spec) -> an uncompiled keras.Model, or an unfitted estimator

and may define these hooks (pipeline.train uses them when present):

  TrainParams                          a subclass of config.TrainParams with extra `train:` keys
  fit(model, splits, train, objective) its own training loop (e.g. two-phase fine-tuning);
                                       returns the Keras history dict
  check(params, spec)                  raise UserError when the model cannot work on this data
                                       (e.g. a lookback shorter than a season), before any run starts
  tags(params) -> dict                 extra MLflow tags
  check(params, spec)                  validation that needs more than the schema (a file that
                                       must exist, a module that must load), before the run starts
  log_model(model, x_example, y_example, metadata)  its own MLflow model flavour; returns
                                       the ModelInfo of mlflow.<flavour>.log_model
  publish(model, params)               write what later experiments consume (e.g. a hub module),
                                       inside the run, after the model is logged

An objective module (pipeline/<objective>.py) defines LOSS, METRICS, HEADLINE,
prepare(dataset, train, objective_params) -> (splits, spec), evaluate(model, splits) ->
(metrics, artifacts), predict(model, x), and optionally Params for an `objective:` section.

Add a family: write pipeline/models/<name>.py and list it in FAMILIES. An experiment that
consumes another's output (transfer learning loads the module `pretrain` publishes) lists it
under `needs:` in params.yaml, so make trains the upstream experiment first.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from pipeline.config import PARAMS_FILE, suggest
from pipeline.errors import UserError

FAMILIES = {
    "mlp": "pipeline.models.mlp",
    "cnn": "pipeline.models.cnn",
    "svc": "pipeline.models.svc",
    "pretrain": "pipeline.models.pretrain",
    "transfer": "pipeline.models.transfer",
    "autoencoder": "pipeline.models.autoencoder",
    "pca": "pipeline.models.pca",
    "isolation-forest": "pipeline.models.isolation_forest",
    "lstm": "pipeline.models.lstm",
    "naive": "pipeline.models.naive",
    "seasonal-naive": "pipeline.models.seasonal_naive",
    "sarimax": "pipeline.models.sarimax",
}


def source_file(family: str) -> Path:
    """The family's module file, without importing it (make uses it as a prerequisite)."""
    return Path(*FAMILIES[family].split(".")).with_suffix(".py")


def get(family: str, where: str = "") -> ModuleType:
    if family not in FAMILIES:
        raise UserError(
            f"{PARAMS_FILE}: {where}family '{family}' is unknown{suggest(family, FAMILIES)}; "
            f"known: {', '.join(FAMILIES)}"
        )
    return importlib.import_module(FAMILIES[family])
