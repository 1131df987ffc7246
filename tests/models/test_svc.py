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
