"""The uint8 image cache: npz and keras sources, incremental and parallel folder prep, unreadable
files, and the reading API training streams from."""

import numpy as np
import pytest
from PIL import Image

from pipeline import data, images
from pipeline.data import folder, sources
from pipeline.errors import UserError
from tests.data.test_data import IMAGES, make_image_folder, use_dataset
from tests.helpers import as_floats


def write_npz(path, n_train=40, n_test=10, shape=(6, 5), labels_2d=False, **change):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % 3,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % 3,
    }
    if labels_2d:
        arrays = {k: v[:, np.newaxis] if k.startswith("y_") else v for k, v in arrays.items()}
    np.savez(path, **{**arrays, **change})
    return arrays


@pytest.mark.parametrize("shape, labels_2d", [((6, 5), False), ((4, 4, 3), True)], ids=["grey", "rgb"])
def test_an_npz_file_keeps_its_test_split_and_draws_validation_from_training(project, shape, labels_2d):
    raw = write_npz(project / "m.npz", shape=shape, labels_2d=labels_2d)
    use_dataset(project, "m", {"source": "npz", "path": "m.npz", "val_fraction": 0.25, "seed": 3})
    ds = data.load("m")
    channels = shape[2] if len(shape) == 3 else 1
    assert ds.example_shape == (*shape[:2], channels) and ds.divisor == 255
    assert np.array_equal(ds.arrays["x_test"].reshape(raw["x_test"].shape), raw["x_test"])
    assert ds.count("train") == 30 and ds.count("val") == 10 and ds.class_names == ["0", "1", "2"]
    train = {x.tobytes() for split in ("train", "val") for x in ds.arrays[f"x_{split}"]}
    assert train == {x.tobytes() for x in raw["x_train"].reshape(40, *ds.example_shape)}
    assert np.array_equal(ds.examples("val")[0].load(), as_floats(ds, "val"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_train": np.zeros((40, 6, 5), np.float32)}, r"x_train is float32 .* expected uint8"),
        ({"y_test": np.zeros(9, np.int64)}, r"y_test is int64 shaped \(9,\); expected 10 integer labels"),
        ({"y_train": np.array(["a"] * 40)}, r"y_train is <U1 .* integer labels"),
    ],
)
def test_a_bad_npz_file_is_one_line(project, change, message):
    write_npz(project / "m.npz", **change)
    use_dataset(project, "m", {"source": "npz", "path": "m.npz", "val_fraction": 0.25, "seed": 3})
    with pytest.raises(UserError, match=message):
        data.prepare("m")
    assert not (project / "data" / "processed").exists()


def test_an_npz_of_objects_is_refused_without_unpickling(project):
    np.savez(project / "m.npz", x_train=np.array([{"a": 1}], dtype=object))
    use_dataset(project, "m", {"source": "npz", "path": "m.npz", "val_fraction": 0.25, "seed": 3})
    with pytest.raises(UserError, match=r"m.npz: not a readable .npz|missing"):
        data.prepare("m")


def test_keras_datasets_come_through_keras_datasets(project, monkeypatch):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), (np.arange(30) % 10)[:, np.newaxis]
    monkeypatch.setattr(sources, "keras_load", lambda name: ((x[:20], y[:20]), (x[20:], y[20:])))
    use_dataset(project, "c", {"source": "keras-dataset", "name": "cifar10", "val_fraction": 0.0, "seed": 0})
    ds = data.load("c")
    assert ds.class_names[:2] == ["airplane", "automobile"] and ds.count("test") == 10
    assert ds.example_shape == (32, 32, 3) and ds.count("val") == 0

    def offline(name):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(sources, "keras_load", offline)
    use_dataset(
        project, "f", {"source": "keras-dataset", "name": "fashion_mnist", "val_fraction": 0.1, "seed": 0}
    )
    with pytest.raises(UserError, match=r"keras.datasets.fashion_mnist: cannot load .*source: npz"):
        data.prepare("f")


def count_decodes(monkeypatch):
    calls = []
    real = images.decode_uint8
    monkeypatch.setattr(images, "decode_uint8", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_adding_images_decodes_only_the_new_ones(project, monkeypatch):
    root = make_image_folder(project / "data/raw/imgs", per_class=10)
    use_dataset(project, "imgs", IMAGES)
    calls = count_decodes(monkeypatch)
    before = data.load("imgs")
    assert len(calls) == 20
    rng = np.random.default_rng(9)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / "b" / f"new{i}.png")
    after = data.load("imgs")
    assert len(calls) == 23
    rebuilt, _ = data.prepare("imgs", force=True)  # from scratch (no reuse) the same arrays
    assert rebuilt.sha256 == after.sha256 != before.sha256


def test_a_folder_is_decoded_in_a_process_pool_with_the_same_result(project, monkeypatch):
    make_image_folder(project / "data/raw/imgs", per_class=12, size=(9, 11))
    use_dataset(project, "imgs", {**IMAGES, "color_mode": "rgb"})
    alone, _ = data.prepare("imgs")
    monkeypatch.setattr(folder, "POOL_FROM", 2)
    pooled, written = data.prepare("imgs", force=True)
    assert written and pooled.sha256 == alone.sha256


def test_unreadable_images_are_skipped_up_to_max_unreadable(project):
    root = make_image_folder(project / "data/raw/imgs", per_class=8)
    (root / "a" / "bad.png").write_bytes(b"\x89PNG garbage")
    (root / "b" / "notes.txt").write_text("hello")
    use_dataset(project, "imgs", {**IMAGES, "max_unreadable": 1})
    with pytest.raises(
        UserError, match=r"more than max_unreadable=1 unreadable images \(the last: .*notes.txt"
    ):
        data.prepare("imgs")
    assert not (project / "data" / "processed").exists()
    use_dataset(project, "imgs", {**IMAGES, "max_unreadable": 2})
    ds = data.load("imgs")
    assert [u["file"] for u in ds.manifest.unreadable] == ["a/bad.png", "b/notes.txt"]
    assert sum(ds.count(s) for s in data.SPLITS) == 16


def test_the_files_own_sizes_and_colour_are_recorded(project):
    """What a model's `trained_on` later says: the source files' sizes (from their headers) and colour."""
    root = make_image_folder(project / "data/raw/imgs", per_class=6, size=(10, 20))
    for i in range(6):  # larger colour files in a third class
        (root / "c").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "c" / f"{i}.jpg")
    use_dataset(project, "imgs", IMAGES)
    native = data.load("imgs").manifest.native_size
    assert native == {
        "median": [10, 20],
        "min": [10, 20],
        "max": [30, 40],
        "color_share": 0.3333,
        "files": 18,
    }


def test_an_unreadable_file_lists_the_formats_read_and_max_unreadable(project):
    root = make_image_folder(project / "data/raw/imgs")
    (root / "b" / "photo.heic").write_bytes(b"not decodable here")
    use_dataset(project, "imgs", IMAGES)
    with pytest.raises(UserError) as refused:
        data.prepare("imgs")
    assert "data/raw/imgs/b/photo.heic: not an image; formats read: .jpg .jpeg .png" in str(refused.value)
    assert str(refused.value).endswith("; the dataset's max_unreadable: N skips such files")


def test_a_file_over_the_byte_cap_is_refused(project):
    make_image_folder(project / "data/raw/imgs")
    use_dataset(project, "imgs", {**IMAGES, "max_file_bytes": 20})
    with pytest.raises(UserError, match=r"a/0.png: larger than 20 bytes"):
        data.prepare("imgs")


def test_a_split_reads_as_stored_in_pieces_and_as_a_tf_stream(project):
    make_image_folder(project / "data/raw/imgs", per_class=10)
    use_dataset(project, "imgs", IMAGES)
    ds = data.load("imgs")
    x, y = ds.arrays["x_train"], ds.arrays["y_train"]
    rows, labels = ds.examples("train")
    assert labels is y and x.dtype == np.uint8
    as_float = as_floats(ds, "train")
    got = list(rows.chunks(4))
    assert np.array_equal(np.concatenate(got), as_float) and max(len(b) for b in got) == 4
    streamed = list(rows.dataset(4, targets=y).unbatch().as_numpy_iterator())
    assert np.array_equal(np.stack([i for i, _ in streamed]), as_float)
    assert [int(label) for _, label in streamed] == y.tolist()


def test_a_jpeg_is_decoded_at_a_reduced_size_when_that_is_enough(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (400, 300, 3), dtype=np.uint8)).save(tmp_path / "p.jpg")
    pixels = images.decode_uint8((tmp_path / "p.jpg").read_bytes(), (32, 32, 3))
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    floats = images.decode((tmp_path / "p.jpg").read_bytes(), (32, 32, 3))
    assert np.array_equal(floats, pixels.astype(np.float32) / 255.0)  # the served model reads alike
