"""IsolationForest baseline: anomalies are isolated by fewer random splits; no reconstruction, no code."""

from __future__ import annotations

import math

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.models import Family, Logged
from pipeline.models.schemas import IsolationForestParams as Params
from pipeline.specs import AnomalySpec


def build(params: Params, spec: AnomalySpec):
    pixels = math.prod(spec.input_shape)
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, pixels)})
    forest = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=params.max_samples,
        max_features=params.max_features,
        random_state=spec.seed,
    )
    return make_pipeline(flatten, forest)


def labels(model, x: np.ndarray) -> np.ndarray:
    """pyfunc `predict` gives scikit-learn's labels: -1 anomaly, 1 normal (at its own contamination cut)."""
    return model.predict(x)


def count_params(model) -> int:
    """The forest's size: its tree nodes (each split stores a pixel index and a threshold)."""
    return int(sum(tree.tree_.node_count for tree in model[-1].estimators_))


FAMILY = Family(
    name="isolation-forest",
    build=build,
    count_params=count_params,
    # the forest's trees: our own file, written just now
    logged=Logged("sklearn", output=labels, trusted_types=("sklearn.tree._tree.Tree",)),
)
