"""A retrain merge appends a batch's images to the stored training split (nothing rewritten), and a
kill -9 at any point of it leaves the dataset as it was before or as it is after, never between."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from pipeline import data
from pipeline.data import split_files
from tests.data.test_data import IMAGES, make_image_folder, use_dataset

MERGE = """
import sys
import numpy as np
from pipeline import data
x = np.random.default_rng(int(sys.argv[1])).random((5, 8, 8, 1)).astype(np.float32)
current = data.load("imgs")
batch = data.Batch(sys.argv[1], sys.argv[1], "sha-" + sys.argv[1], x, np.arange(5) % 2)
arrays, manifest = data.new_version(current, [batch])
data.commit_version("imgs", arrays, manifest, [batch])
"""


def batch_of(seed: int) -> data.Batch:
    x = np.random.default_rng(seed).random((5, 8, 8, 1)).astype(np.float32)
    return data.Batch(str(seed), str(seed), f"sha-{seed}", x, np.arange(5) % 2)


def merge(seed: int, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_FAULT": fault or ""}
    return subprocess.run([sys.executable, "-c", MERGE, str(seed)], env=env, capture_output=True, text=True)


def expected_after(before: data.Dataset, *seeds: int) -> tuple[np.ndarray, np.ndarray]:
    xs = [np.asarray(before.arrays["x_train"]), *(before.to_stored(batch_of(s).x) for s in seeds)]
    ys = [before.arrays["y_train"], *(batch_of(s).y for s in seeds)]
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def images(project, monkeypatch):
    make_image_folder(project / "data/raw/imgs", per_class=10)
    use_dataset(project, "imgs", IMAGES)
    monkeypatch.setenv("PIPELINE_ROOT", str(project))
    return data.load("imgs")


def files(ds: data.Dataset) -> dict[str, os.stat_result]:
    folder = data.processed_dir(ds.name) / ds.manifest.images_folder
    return {key: os.stat(folder / split_files.split_file(key)) for key in split_files.IMAGE_KEYS}


def test_a_merge_appends_to_the_training_split_and_links_the_rest(images):
    batch, old = batch_of(1), files(images)
    arrays, manifest = data.new_version(images, [batch])
    data.commit_version("imgs", arrays, manifest, [batch])
    after = data.load("imgs")
    x, y = expected_after(images, 1)
    assert np.array_equal(after.arrays["x_train"], x) and np.array_equal(after.arrays["y_train"], y)
    # the same content hash as the whole merged arrays (what a fresh prep of them would record)
    assert after.sha256 == data.content_hash({**images.arrays, "x_train": x, "y_train": y})
    new = files(after)
    # one file each: appended, linked
    assert all(old[k].st_ino == new[k].st_ino for k in split_files.IMAGE_KEYS)
    assert [p.name for p in data.processed_dir("imgs").glob("images-*")] == [manifest.images_folder]
    streamed = list(after.examples("train")[0].dataset(7, targets=y).unbatch().as_numpy_iterator())
    floats = x.astype(np.float32) / np.float32(after.divisor)
    assert np.array_equal(np.stack([i for i, _ in streamed]), floats)
    assert [int(label) for _, label in streamed] == y.tolist()


@pytest.mark.parametrize("step", ["append", "stage", "files"])
def test_a_merge_killed_at_any_point_leaves_the_version_as_it_was(images, step):
    killed = merge(1, fault=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    staged = list(data.processed_dir("imgs").glob(".staging-*"))  # where the new version was staged
    assert bool(staged) == (step == "append")  # after `stage`, it was renamed into place
    before = data.load("imgs")  # hashed again (the shared split file changed) and found right
    assert not list(data.processed_dir("imgs").glob(".staging-*"))  # the killed process's: removed
    assert before.sha256 == images.sha256 and before.count("train") == images.count("train")
    assert np.array_equal(before.arrays["x_train"], images.arrays["x_train"])
    record = int(np.prod(images.example_shape))
    assert files(before)["x_train"].st_size == (images.count("train") + 5) * record  # the killed tail
    x, y = before.examples("train")
    streamed = list(x.dataset(7, targets=y).unbatch().as_numpy_iterator())  # up to the count only
    assert len(streamed) == images.count("train")
    # the next merge (another batch, or the same again) cuts the tail and yields exactly the merge
    for seeds in ([2], [2, 1]):
        done = merge(seeds[-1])
        assert done.returncode == 0, done.stderr[-2000:]
        after = data.load("imgs")
        x, y = expected_after(images, *seeds)
        assert np.array_equal(after.arrays["x_train"], x) and np.array_equal(after.arrays["y_train"], y)
        assert files(after)["x_train"].st_size == len(y) * record
    assert len(list(data.processed_dir("imgs").glob("images-*"))) == 1
