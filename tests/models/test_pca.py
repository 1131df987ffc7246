import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import pca
from pipeline.objectives import anomaly
from pipeline.specs import AnomalySpec as Spec


def test_pca_reconstructs_its_plane_and_scores_points_off_it_higher():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 6))
    on_plane = (rng.normal(size=(80, 2)) @ basis).reshape(80, 2, 3, 1)
    off_plane = on_plane[:20] + rng.normal(size=(20, 2, 3, 1))
    model = pca.build(pca.Params(whiten=False), Spec(input_shape=(2, 3, 1), latent_dim=2, seed=0))
    model.fit(on_plane, None)
    assert anomaly.reconstructs(model)
    assert np.allclose(anomaly.reconstruct(model, on_plane), on_plane, atol=1e-6)
    assert anomaly.encode(model, on_plane).shape == (80, 2)
    scores_normal, scores_off = anomaly.predict(model, on_plane), anomaly.predict(model, off_plane)
    assert scores_off.min() > scores_normal.max()


def test_pca_needs_a_latent_size_within_the_pixels():
    with pytest.raises(UserError, match="between 1 and 6"):
        pca.build(pca.Params(whiten=False), Spec(input_shape=(2, 3, 1), latent_dim=7, seed=0))
