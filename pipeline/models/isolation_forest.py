"""IsolationForest baseline: anomalies are isolated by fewer random splits; no reconstruction, no code."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

KIND = "sklearn"
OBJECTIVE = "anomaly"


@dataclasses.dataclass(frozen=True)
class Params:
    n_estimators: int
    max_samples: int | float | Literal["auto"]  # images per tree: a count, a share, or "auto" = min(256, n)
    max_features: float  # share of the pixels each tree sees


def build(params: Params, spec):
    pixels = math.prod(spec.input_shape)
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, pixels)})
    forest = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=params.max_samples,
        max_features=params.max_features,
        random_state=spec.seed,
    )
    return make_pipeline(flatten, forest)


def log_model(model, x_example: np.ndarray, y_example, metadata: dict | None = None):
    """pyfunc `predict` gives scikit-learn's labels: -1 anomaly, 1 normal (at its own contamination cut)."""
    import mlflow

    from pipeline.train import log_sklearn_model

    signature = mlflow.models.infer_signature(x_example, model.predict(x_example))
    # the forest's trees: our own file, written just now
    return log_sklearn_model(model, signature, metadata, trusted=("sklearn.tree._tree.Tree",))
