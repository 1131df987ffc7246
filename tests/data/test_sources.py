"""Data sources (pipeline/data/sources.py): reading a retrain batch of images for its dataset (a
series' batches: test_series.py)."""

from pipeline import data
from pipeline.config import load_params
from tests.helpers import smooth_photo, write_heic


def test_an_image_batch_may_hold_phone_photos(project, tmp_path):
    digits = data.load("digits")
    (tmp_path / "batch" / "7").mkdir(parents=True)
    write_heic(tmp_path / "batch" / "7" / "IMG_0001.HEIC", smooth_photo(32, 32))
    x, y = data.source_of("digits", load_params()).read_batch(tmp_path / "batch", digits, [])
    assert x.shape == (1, 8, 8, 1) and y.tolist() == [7]
