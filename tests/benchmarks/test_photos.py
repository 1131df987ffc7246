"""`python -m benchmarks photos`: its generated folders, its scratch params and its table (the
accuracies themselves are measured, never asserted)."""

import pytest
from PIL import Image

from benchmarks import photo_folders, photos
from pipeline import config
from pipeline.models import FAMILIES
from pipeline.training.plan import checked_sections


@pytest.mark.integration  # ten photographs decoded and 20 JPEGs written: a few seconds
def test_photo_folders_are_the_same_each_time_with_ten_classes_of_varied_crops(tmp_path):
    first = photo_folders.folder(tmp_path / "a", "photos", 20, seed=3)
    again = photo_folders.folder(tmp_path / "b", "photos", 20, seed=3)
    files = sorted(first.rglob("*.jpg"))
    assert len(files) == 20 and len({f.parent.name for f in files}) == photos.CLASSES
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in sorted(again.rglob("*.jpg"))]
    sizes = [Image.open(f).size for f in files]
    assert all(64 <= side <= 300 for size in sizes for side in size) and len(set(sizes)) > 10
    assert len({f.read_bytes() for f in files}) == 20  # no image repeated
    grey = photo_folders.folder(tmp_path, "grey", 10, seed=3)
    assert {Image.open(f).mode for f in grey.rglob("*.jpg")} == {"L"}


@pytest.mark.integration  # twenty photographs decoded and 10 JPEGs written: a few seconds
def test_the_other_folder_the_backbone_learns_from_shares_no_photograph_with_the_photos():
    assert not {name for name, _ in photo_folders.others()} & {name for name, _ in photo_folders.sources()}
    others = [photo for _, photo in photo_folders.others()]
    assert not any(o.shape == p.shape and (o == p).all() for o in others for _, p in photo_folders.sources())


def test_the_scratch_project_has_a_default_a_copied_and_a_backbone_experiment_per_case(tmp_path):
    settings = photos.Settings(cases=tuple(photos.grid("pilot")), data_dir=tmp_path)
    params = photos.params(settings)
    (case,) = settings.cases
    default = config.resolve_experiment(params, f"default--{case.name}")
    copied = config.resolve_experiment(params, f"copied--{case.name}")
    assert default.model == {} and copied.model == photos.COPIED
    for exp in (default, copied):
        checked_sections(exp, FAMILIES["cnn"])  # both are valid experiments as written
    assert len(photos.grid("full")) == 9
    backbone = config.resolve_experiment(params, f"backbone--{case.name}")
    model, _ = checked_sections(backbone, FAMILIES["transfer"])  # the transfer recipe, valid as written
    assert (model.backbone, model.mode, model.image_size) == ("mobilenet_v3_small", "feature", (64, 64))
    assert model.weights == str(tmp_path / "backbone-64px.weights.h5")


def test_the_table_shows_mean_and_spread_and_whether_the_target_is_met():
    runs = [
        {"group": "photos 300 at 64²", "config": c, "test_accuracy": a}
        for c, values in {"default": [0.8, 0.9, 0.85], "copied": [0.7, 0.7, 0.7], "bare": [0.8, 0.8, 0.8],
                          "bare-bn": [0.6, 0.5, 0.4]}.items()
        for a in values
    ]  # fmt: skip
    table = photos.render({"runs": runs})
    assert "0.850 ± 0.050 (n=3)" in table and "not met (floor 0.770)" in table
    better = [dict(r, test_accuracy=0.79) if r["config"] == "copied" else r for r in runs]
    assert "| met (floor 0.770)" in photos.render({"runs": better})
    assert "backbone" not in table  # a column only where it was measured
    overridden = [dict(r, overrides=["model.bn_momentum=0.9"]) for r in runs if r["config"] == "default"]
    table = photos.render({"runs": runs + overridden})  # a row of its own, beside the defaults
    assert "| photos 300 at 64² (--set model.bn_momentum=0.9) | 0.850 ± 0.050 (n=3) |" in table
    assert "| photos 300 at 64² | 0.850 ± 0.050 (n=3) | 0.700 ± 0.000 (n=3) |" in table


def test_a_case_is_read_from_its_name():
    assert photos.Case.parse("grey-300-128px-s2") == photos.Case("grey", 300, 128, 2)
    for bad in ("photos-300-64-s0", "other-300-64px-s0", "photos-0-64px-s0"):
        with pytest.raises(ValueError, match="is not a case"):
            photos.Case.parse(bad)
