"""PCA baseline: project onto `latent_dim` principal components and back; the error is the score.

PCA is the linear autoencoder: with as many components as the autoencoder has code units it
is the reference for reconstruction MSE, anomaly ROC-AUC and retrieval in code space.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.errors import UserError

KIND = "sklearn"
OBJECTIVE = "anomaly"


@dataclasses.dataclass(frozen=True)
class Params:
    whiten: bool  # scale the components to unit variance (changes retrieval distances only)


def build(params: Params, spec):
    pixels = math.prod(spec.input_shape)
    if not 1 <= spec.latent_dim <= pixels:
        raise UserError(f"pca: latent size must be between 1 and {pixels} (got {spec.latent_dim})")
    # flatten with numpy itself, so the saved model needs no code from this package
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, pixels)})
    return make_pipeline(flatten, PCA(spec.latent_dim, whiten=params.whiten, random_state=spec.seed))


def log_model(model, x_example: np.ndarray, y_example, metadata: dict | None = None):
    """The scikit-learn flavour only: PCA has no `predict` for a pyfunc (load it with mlflow.sklearn)."""
    import mlflow

    from pipeline.train import log_sklearn_model

    return log_sklearn_model(
        model, mlflow.models.infer_signature(x_example, model.transform(x_example)), metadata
    )
