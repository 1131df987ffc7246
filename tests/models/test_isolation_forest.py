import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.models import isolation_forest
from pipeline.objectives import anomaly
from pipeline.specs import AnomalySpec as Spec


def test_isolation_forest_scores_far_points_as_anomalies():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(200, 2, 2, 1))
    outliers = rng.normal(size=(20, 2, 2, 1)) + 6.0
    model = isolation_forest.build(
        isolation_forest.Params(n_estimators=50, max_samples="auto", max_features=1.0),
        Spec(input_shape=(2, 2, 1), latent_dim=2, seed=0),
    )
    model.fit(normal, None)
    assert not anomaly.reconstructs(model)
    x = np.concatenate([normal[:50], outliers])
    truth = np.r_[np.zeros(50), np.ones(20)]
    assert roc_auc_score(truth, anomaly.predict(model, x)) > 0.95
    assert anomaly.encode(model, x).shape == (70, 4)  # no code: retrieval uses the pixels
