"""A support-vector classifier on the flattened pixels: what a user would otherwise pick."""

from __future__ import annotations

import math

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from pipeline.models import Family, Logged
from pipeline.models.schemas import SvcParams as Params
from pipeline.specs import ClassifierSpec


def build(params: Params, spec: ClassifierSpec):
    # calibrated probabilities give predict_proba, so test_loss is the log loss the networks report
    svc = CalibratedClassifierCV(SVC(C=params.C, kernel=params.kernel, gamma=params.gamma), ensemble=False)
    # flatten images with numpy itself, so the pickled model needs no code from this package
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, math.prod(spec.input_shape))})
    return make_pipeline(flatten, svc)


def count_params(model) -> int:
    """What the decision function stores: support vectors, their dual coefficients and the
    intercepts, plus the calibration's two numbers (slope, offset) per class."""
    calibrated = model[-1].calibrated_classifiers_[0]
    svc = calibrated.estimator
    decision = svc.support_vectors_.size + svc.dual_coef_.size + svc.intercept_.size
    return int(decision + 2 * len(calibrated.calibrators))


FAMILY = Family(
    name="svc",
    build=build,
    count_params=count_params,
    # like the networks, the logged model returns class probabilities
    logged=Logged("sklearn", pyfunc_method="predict_proba"),
)
