import numpy as np

from pipeline.models import svc
from pipeline.specs import ClassifierSpec as Spec


def test_svc_flattens_images_and_gives_probabilities():
    rng = np.random.default_rng(0)
    x = rng.random((60, 4, 4, 1)).astype(np.float32)
    y = (x.reshape(60, -1).mean(axis=1) > 0.5).astype(int)
    model = svc.build(svc.Params(C=10.0, kernel="rbf", gamma="scale"), Spec((4, 4, 1), 2, 0))
    model.fit(x, y)
    proba = model.predict_proba(x)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).mean() > 0.8


def test_svc_size_is_what_its_decision_function_stores():
    rng = np.random.default_rng(0)
    x = rng.random((60, 4, 4, 1)).astype(np.float32)
    y = (x.reshape(60, -1).mean(axis=1) > 0.5).astype(int)
    model = svc.build(svc.Params(C=10.0, kernel="rbf", gamma="scale"), Spec((4, 4, 1), 2, 0)).fit(x, y)
    vectors = model[-1].calibrated_classifiers_[0].estimator.support_vectors_
    # support vectors (16 pixels each) + one dual coefficient each + an intercept + slope and offset
    assert svc.count_params(model) == len(vectors) * 16 + len(vectors) + 1 + 2
