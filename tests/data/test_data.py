import json

import numpy as np
import pytest
from PIL import Image

from pipeline import atomic, data
from pipeline.errors import UserError
from tests.helpers import edit_params, loaded, smooth_photo, write_heic


def make_image_folder(root, classes=("a", "b"), per_class=6, size=(8, 8)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=size, dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def use_dataset(project, name, entry):
    edit_params(project, lambda p: p["data"].__setitem__(name, entry))


IMAGES = {
    "source": "image-folder",
    "path": "data/raw/imgs",
    "image_size": [8, 8],
    "color_mode": "grayscale",
    "val_fraction": 0.2,
    "test_fraction": 0.3,
    "seed": 1,
}


@pytest.mark.slow
def test_digits_split_is_deterministic_stratified_and_hashed(project, tmp_path_factory, monkeypatch):
    manifest, written = data.prepare("digits")
    assert written
    assert manifest.shapes["x_train"][1:] == [8, 8, 1]
    total = sum(manifest.shapes[f"y_{s}"][0] for s in data.SPLITS)
    assert total == 1797
    # stratified: every class appears in every split in roughly the same proportion
    for split in data.SPLITS:
        counts = manifest.class_counts[split]
        assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 0.12 * sum(
            counts.values()
        )
    # same params in another folder -> the very same arrays (hash)
    other = tmp_path_factory.mktemp("other")
    (other / "params.yaml").write_text((project / "params.yaml").read_text())
    monkeypatch.setenv("PIPELINE_ROOT", str(other))
    again, _ = data.prepare("digits")
    assert again.sha256 == manifest.sha256
    # a different seed -> a different split
    edit_params(other, lambda p: p["data"]["digits"].__setitem__("seed", 7))
    reseeded, _ = data.prepare("digits")
    assert reseeded.sha256 != manifest.sha256


def test_loaded_arrays_match_the_manifest_and_splits_do_not_overlap(project):
    ds = data.load("digits")
    assert data.content_hash(ds.arrays) == ds.sha256
    rows = {s: {x.tobytes() for x in ds.examples(s)[0].load()} for s in data.SPLITS}
    # digits has a few duplicate images; the splits share at most those
    assert len(rows["train"] & rows["test"]) <= 3
    x = ds.examples("train")[0].load()
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1


def test_content_hash_is_stable_and_sensitive():
    a = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([0, 1])}
    assert data.content_hash(a) == data.content_hash({k: v.copy() for k, v in a.items()})
    changed = {**a, "y": np.array([1, 0])}
    assert data.content_hash(changed) != data.content_hash(a)
    assert data.content_hash({**a, "x": a["x"].astype(np.float64)}) != data.content_hash(a)


def test_unchanged_inputs_are_skipped(project):
    first, written = data.prepare("digits")
    mtime = (data.processed_dir("digits") / "manifest.json").stat().st_mtime_ns
    second, written_again = data.prepare("digits")
    assert written and not written_again
    assert (data.processed_dir("digits") / "manifest.json").stat().st_mtime_ns == mtime
    assert second == first


def test_interrupted_write_leaves_the_previous_version(project, monkeypatch):
    old, _ = data.prepare("digits")
    edit_params(project, lambda p: p["data"]["digits"].__setitem__("seed", 3))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(atomic, "write_text", crash)  # arrays written, manifest not yet
    with pytest.raises(KeyboardInterrupt):
        data.prepare("digits")
    out = data.processed_dir("digits")
    assert json.loads((out / "manifest.json").read_text())["sha256"] == old.sha256
    assert (out / old.arrays).exists()
    assert not list(out.glob(".*.tmp"))
    monkeypatch.undo()
    monkeypatch.setenv("PIPELINE_ROOT", str(project))
    assert data.load("digits").manifest.params["seed"] == 3  # the next run completes cleanly


def test_co2_series_split_is_chronological_without_gaps(project):
    ds = data.load("co2")
    assert ds.kind == "series" and ds.manifest.filled_gaps == 59
    dates = [ds.arrays[f"dates_{s}"] for s in data.SPLITS]
    assert dates[0][-1] < dates[1][0] and dates[1][-1] < dates[2][0]
    assert sum(len(d) for d in dates) == 2284
    assert not any(np.isnan(ds.arrays[f"values_{s}"]).any() for s in data.SPLITS)


def test_image_folder_source(project):
    make_image_folder(project / "data/raw/imgs", classes=("cat", "dog", "eel"))
    use_dataset(project, "imgs", {**IMAGES, "image_size": [6, 5], "color_mode": "rgb"})
    ds = data.load("imgs")
    assert ds.class_names == ["cat", "dog", "eel"]
    assert ds.arrays["x_train"].shape[1:] == (6, 5, 3)
    assert sum(len(ds.examples(s)[1]) for s in data.SPLITS) == 18


def test_an_image_folder_of_phone_photos(project):
    folder = project / "data/raw/imgs"
    photos = [smooth_photo(24, 32, seed=i) for i in range(4)]
    for name, save in (("heic", write_heic), ("png", lambda path, p: Image.fromarray(p).save(path))):
        (folder / name).mkdir(parents=True)
        for i, pixels in enumerate(photos):
            save(folder / name / f"IMG_{i:04d}.{name.upper()}", pixels)
    use_dataset(project, "imgs", {**IMAGES, "image_size": [12, 16], "color_mode": "rgb"})
    ds = data.load("imgs")
    x, y = (np.concatenate(part) for part in zip(*(loaded(ds, s) for s in data.SPLITS), strict=True))
    assert ds.class_names == ["heic", "png"] and np.bincount(y).tolist() == [4, 4]
    for heic in x[y == 0]:  # each HEIC photo decoded as its PNG twin, within lossy compression
        assert min(np.abs(heic - png).max() for png in x[y == 1]) < 0.03


def test_csv_table_source(project):
    rows = ["f1,f2,label"] + [f"{i},{i * 2},{'yes' if i % 2 else 'no'}" for i in range(20)]
    (project / "t.csv").write_text("\n".join(rows) + "\n")
    use_dataset(
        project,
        "t",
        {
            "source": "csv-table",
            "path": "t.csv",
            "target": "label",
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "seed": 0,
        },
    )
    ds = data.load("t")
    assert ds.kind == "table" and ds.class_names == ["no", "yes"] and ds.arrays["x_train"].shape[1] == 2


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, r"image folder 'data/raw/imgs' does not exist"),
        (
            lambda root: (
                make_image_folder(root / "data/raw/imgs"),
                (root / "data/raw/imgs/b/bad.png").write_bytes(b"\x89PNG garbage"),
            ),
            r"data/raw/imgs/b/bad.png: not an image",
        ),
        (
            lambda root: (
                make_image_folder(root / "data/raw/imgs"),
                (root / "data/raw/imgs/a/notes.txt").write_text("hello"),
            ),
            r"data/raw/imgs/a/notes.txt: not an image",
        ),
        (
            lambda root: (make_image_folder(root / "data/raw/imgs"), (root / "data/raw/imgs/empty").mkdir()),
            r"data/raw/imgs/empty: class folder 'empty' has no images",
        ),
    ],
    ids=["missing-folder", "corrupt-image", "non-image-file", "empty-class"],
)
def test_bad_image_folders(project, setup, message):
    setup(project)
    use_dataset(project, "imgs", IMAGES)
    with pytest.raises(UserError, match=message):
        data.prepare("imgs")
    assert not (project / "data" / "processed").exists()


def test_truncated_image_is_reported(project):
    folder = make_image_folder(project / "data/raw/imgs")
    good = (folder / "a" / "0.png").read_bytes()
    (folder / "a" / "0.png").write_bytes(good[: len(good) // 2])
    use_dataset(project, "imgs", IMAGES)
    with pytest.raises(UserError, match=r"a/0.png: (corrupt image|not an image)"):
        data.prepare("imgs")


def test_csv_with_non_numeric_value(project):
    (project / "t.csv").write_text("f1,f2,label\n1,2,a\n3,abc,b\n")
    use_dataset(
        project,
        "t",
        {
            "source": "csv-table",
            "path": "t.csv",
            "target": "label",
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "seed": 0,
        },
    )
    with pytest.raises(UserError, match=r"t.csv: column 'f2' line 3 has non-numeric value 'abc'"):
        data.prepare("t")
    assert not (project / "data" / "processed").exists()


@pytest.mark.parametrize(
    "body, message",
    [
        ("date,value\n2020-01-01,1\n2020-01-01,2\n2020-01-03,3\n", "duplicate date 2020-01-01"),
        ("date,value\n2020-01-01,1\nnot-a-date,2\n", "line 3 is not a date"),
        ("date,value\n2020-01-01,1\n2020-01-02,x\n", "column 'value' line 3 has non-numeric value 'x'"),
    ],
)
def test_bad_series_csv(project, body, message):
    (project / "s.csv").write_text(body)
    use_dataset(
        project,
        "s",
        {
            "source": "csv-series",
            "path": "s.csv",
            "date_column": "date",
            "value_column": "value",
            "val_fraction": 0.1,
            "test_fraction": 0.2,
            "fill": "time",
        },
    )
    with pytest.raises(UserError, match=message):
        data.prepare("s")


def test_unknown_source_and_dataset(project):
    use_dataset(project, "x", {"source": "kaggle"})
    with pytest.raises(UserError, match="data.x.source 'kaggle' is unknown"):
        data.prepare("x")
    with pytest.raises(UserError, match="unknown dataset 'digit'.*did you mean 'digits'"):
        data.prepare("digit")


REFERENCE = {  # the bundled datasets' hashes: their metrics are the project's reference figures
    "digits": "d620cb0fc945e9ab9007a692e6a918b4cde4fb5576aa525cc2e89749469f553d",  # uint8 since prep v2
    "co2": "98a51aba64b17ae028f83a1ba71479546bbfb638faf21b5a8a3eb163b91caed1",
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_the_bundled_datasets_keep_their_splits(project, name):
    assert data.prepare(name)[0].sha256 == REFERENCE[name]


def test_the_digits_models_see_the_same_floats_as_before_the_uint8_cache(project):
    # the float32 arrays of prep v1 (the digits' reference hash then): the same values, bit for bit
    ds = data.load("digits")
    floats = {k: ds.examples(k[2:])[0].load() if k.startswith("x_") else v for k, v in ds.arrays.items()}
    assert data.content_hash(floats) == ("3614f8d459cd89023401be6fa8e47a900ccade7ad235436eeb2f9bb3776e59ab")


def splits_by_content(ds):
    return {x.tobytes(): split for split in data.SPLITS for x in ds.examples(split)[0].load()}


def test_adding_an_image_moves_no_example_between_splits(project):
    folder = make_image_folder(project / "data/raw/imgs", per_class=20)
    use_dataset(project, "imgs", IMAGES)
    before = splits_by_content(data.load("imgs"))
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / "a" / f"new{i}.png")
    after = splits_by_content(data.load("imgs"))
    assert len(after) == len(before) + 3
    assert {k: after[k] for k in before} == before
    assert set(before.values()) == {"train", "val", "test"}


def test_files_from_other_systems_are_skipped_in_image_folders(project):
    folder = make_image_folder(project / "data/raw/imgs")
    junk_files = ("a/Thumbs.db", "b/desktop.ini", ".DS_Store", "a/.DS_Store", "__MACOSX/a/._0.png", "b/._x")
    for junk in junk_files:
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_bytes(b"\x00\x05junk")
    use_dataset(project, "imgs", IMAGES)
    ds = data.load("imgs")
    assert ds.class_names == ["a", "b"] and sum(len(ds.examples(s)[1]) for s in data.SPLITS) == 12


def use_series(project, body):
    (project / "s.csv").write_text(body)
    entry = {"source": "csv-series", "path": "s.csv", "date_column": "date", "value_column": "value"}
    use_dataset(project, "s", {**entry, "val_fraction": 0.1, "test_fraction": 0.2, "fill": "time"})


def test_a_series_with_compact_dates_out_of_order(project):
    rows = [(f"202001{d:02d}", 300 + d) for d in range(1, 31)]
    use_series(project, "date,value\n" + "".join(f"{d},{v}\n" for d, v in reversed(rows)))
    ds = data.load("s")
    assert str(ds.arrays["dates_train"][0]) == "2020-01-01"
    assert str(ds.arrays["dates_test"][-1]) == "2020-01-30"
    assert ds.arrays["values_train"][0] == 301.0  # sorted by date, values kept with their dates


@pytest.mark.parametrize(
    "body, message",
    [
        ("date,value\n2020-01-01,1\n2020-01-02,inf\n2020-01-03,3\n", "line 3 is not a finite number: 'inf'"),
        ("date,value\n2020-01-01,1\n2020-01-02,1,250\n2020-01-03,3\n", "line 3 has 3 fields but the header"),
        ("date,value\n2020-01-01T00:00+01:00,1\n2020-01-02T00:00+02:00,2\n", "mixes time zones"),
    ],
)
def test_series_values_read_as_a_person_reads_them(project, body, message):
    use_series(project, body)
    with pytest.raises(UserError, match=message):
        data.prepare("s")


def test_an_empty_label_names_its_line(project):
    (project / "t.csv").write_text("f1,label\n1,a\n2,\n3,b\n")
    entry = {"source": "csv-table", "path": "t.csv", "target": "label"}
    use_dataset(project, "t", {**entry, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0})
    with pytest.raises(UserError, match=r"t.csv: column 'label' line 3 has an empty label"):
        data.prepare("t")


def ingest_by_hand(project, dataset, name, x, y):
    """What a retrain cycle leaves: the batch committed to the dataset, its files in consumed/."""
    from tests.helpers import consumed, write_batch

    current = data.load(dataset)
    labels = [current.class_names[k] for k in y]
    folder = write_batch(consumed(project, name, dataset), x, labels, ready=False)
    files = data.regular_files(folder)
    batch = data.Batch(name, name, data.readers.hash_files(files, folder), x, y)
    arrays, manifest = data.new_version(current, [batch])
    data.commit_version(dataset, arrays, manifest, [batch])
    return data.load(dataset)


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_ingested_batches_survive_a_lost_manifest(project, damage):
    x, y = loaded(data.load("digits"), "val")
    merged = ingest_by_hand(project, "digits", "b1", x[:30], y[:30])
    manifest = data.processed_dir("digits") / "manifest.json"
    if damage == "deleted":
        manifest.unlink()
    else:
        manifest.write_text('{"dataset": "digits", "sha')
    rebuilt = data.load("digits")
    assert rebuilt.sha256 == merged.sha256
    assert [b.id for b in rebuilt.manifest.batches] == ["b1"]
    assert rebuilt.manifest.batches[0].sha256 == merged.manifest.batches[0].sha256


def test_changing_the_image_size_after_ingestion_re_reads_the_batches(project):
    make_image_folder(project / "data/raw/imgs", per_class=10)
    use_dataset(project, "imgs", IMAGES)
    x = np.random.default_rng(1).random((4, 8, 8, 1)).astype(np.float32)
    before = ingest_by_hand(project, "imgs", "b1", x, np.array([0, 1, 0, 1]))
    edit_params(project, lambda p: p["data"]["imgs"].update(image_size=[6, 5]))
    after = data.load("imgs")
    assert after.arrays["x_train"].shape[1:] == (6, 5, 1)
    assert len(after.arrays["x_train"]) == len(before.arrays["x_train"])  # the batch is still there
    assert [b.id for b in after.manifest.batches] == ["b1"]
    # neither stored arrays that fit nor the raw files: one line, nothing written
    import shutil

    from tests.helpers import consumed

    shutil.rmtree(consumed(project, "b1", "imgs"))
    edit_params(project, lambda p: p["data"]["imgs"].update(image_size=[4, 4]))
    with pytest.raises(UserError, match=r"ingested batch 'b1' cannot be rebuilt"):
        data.prepare("imgs")
    assert data.read_manifest("imgs").sha256 == after.sha256
