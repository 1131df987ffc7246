"""Logistic regression on the flattened pixels: the scikit-learn baseline of a binary task.

It is the single sigmoid unit of the lecture's perceptron, P(positive) = sigmoid(w·x + b), fitted
by scikit-learn (L2-regularised, `C` = 1 / its strength) instead of by gradient descent in Keras.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.models import Family, Logged
from pipeline.models.schemas import LogregParams as Params
from pipeline.specs import ClassifierSpec


def build(params: Params, spec: ClassifierSpec):
    # flatten with numpy itself, so the saved model needs no code from this package
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, math.prod(spec.input_shape))})
    return make_pipeline(flatten, LogisticRegression(C=params.C, max_iter=params.max_iter))


def count_params(model) -> int:
    """One weight per pixel and a bias per decision (one for a binary task)."""
    regression = model[-1]
    return int(regression.coef_.size + regression.intercept_.size)


FAMILY = Family(
    name="logreg",
    build=build,
    count_params=count_params,
    logged=Logged("sklearn", pyfunc_method="predict_proba"),  # (n, 2): P(negative), P(positive)
)
