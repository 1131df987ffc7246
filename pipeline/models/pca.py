"""PCA baseline: project onto `latent_dim` principal components and back; the error is the score.

PCA is the linear autoencoder: with as many components as the autoencoder has code units it
is the reference for reconstruction MSE, anomaly ROC-AUC and retrieval in code space.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.errors import UserError
from pipeline.models import Family, Logged, pca_codes
from pipeline.models.schemas import PcaParams as Params
from pipeline.specs import AnomalySpec


def build(params: Params, spec: AnomalySpec):
    pixels = math.prod(spec.input_shape)
    if not 1 <= spec.latent_dim <= pixels:
        raise UserError(f"pca: latent size must be between 1 and {pixels} (got {spec.latent_dim})")
    # flatten with numpy itself, so the saved model needs no code from this package
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, pixels)})
    return make_pipeline(flatten, PCA(spec.latent_dim, whiten=params.whiten, random_state=spec.seed))


def codes(model, x: np.ndarray) -> np.ndarray:
    """What the logged model answers: the components of each image (its code)."""
    return model.transform(x)


def skops_file(model, folder: Path) -> dict[str, Path]:
    """The fitted pipeline as the skops file pca_codes.py loads."""
    path = folder / "pca.skops"
    pca_codes.save(model, path)
    return {"pipeline": path}


def count_params(model) -> int:
    """The components and the mean (and, when whitening, each component's variance)."""
    pca = model[-1]
    return int(pca.components_.size + pca.mean_.size + (pca.explained_variance_.size if pca.whiten else 0))


FAMILY = Family(
    name="pca",
    build=build,
    count_params=count_params,
    # models-from-code: pca_codes.py loads the skops file and answers the codes (PCA has no predict)
    logged=Logged(
        "code", output=codes, code=pca_codes, files=skops_file, requirements=("scikit-learn", "skops")
    ),
)
