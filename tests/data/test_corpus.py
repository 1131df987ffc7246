"""Text data: the topic split of the Python reference, a text file's blocks and its errors, and
the windows the character models read."""

import os

import numpy as np
import pytest

from pipeline import data
from pipeline.data import corpus
from pipeline.data.corpus import Windows
from pipeline.errors import UserError
from tests.helpers import edit_params


def test_the_python_reference_is_split_by_whole_topics_near_the_shares_and_always_alike():
    topics, version = corpus.python_reference()
    parts = corpus.topic_split(topics, 0.1, 0.1)
    assert parts == corpus.topic_split(dict(reversed(topics.items())), 0.1, 0.1)  # order-free
    names = [t for split in data.SPLITS for t in parts[split]]
    assert sorted(names) == sorted(topics)  # every topic once
    total = sum(len(t) for t in topics.values())
    share = {s: sum(len(topics[t]) for t in parts[s]) / total for s in data.SPLITS}
    # the largest topic is 13 % of the text: a split is within 1.5 points of its share all the same
    assert share["train"] == pytest.approx(0.8, abs=0.015)
    assert share["val"] == pytest.approx(0.1, abs=0.015) and share["test"] == pytest.approx(0.1, abs=0.015)
    assert version.count(".") == 2


def test_a_text_is_cut_in_three_blocks_at_line_breaks():
    text = "".join(f"line {i}\n" for i in range(100))
    blocks = corpus.block_split(text, 0.1, 0.2)
    assert "".join(blocks[s] for s in data.SPLITS) == text
    assert all(blocks[s].endswith("\n") for s in data.SPLITS)
    assert len(blocks["test"]) == pytest.approx(0.2 * len(text), abs=10)
    unbroken = corpus.block_split("x" * 1000, 0.1, 0.1)
    assert [len(unbroken[s]) for s in data.SPLITS] == [800, 100, 100]


def test_windows_read_the_text_and_the_characters_that_follow():
    codes = np.arange(23, dtype=np.uint8)
    x = Windows("t/train", codes, length=5, stride=5)
    assert len(x) == 4 and x.shape == (4, 5)  # the 4th window's last target is code 20
    assert x[1].tolist() == [5, 6, 7, 8, 9] and x.targets(1).tolist() == [6, 7, 8, 9, 10]
    assert x[:2].dtype == np.int32 and x[-1:].shape == (1, 5)


def test_overlapping_windows_score_every_character_once_after_its_context():
    codes = np.arange(100, dtype=np.uint8)
    scoring = Windows("t/test", codes, length=10, stride=10).overlapping(4)
    scored = scoring.targets()[:, 4:].ravel()
    assert scored.tolist() == list(range(5, 5 + len(scored)))  # consecutive: each once
    assert (scoring[:][:, :4] == scoring.targets()[:, :4] - 1).all()  # each with 4+ before it


def test_each_epoch_starts_at_another_offset_and_a_seed_repeats_them():
    codes = np.arange(200, dtype=np.uint8) % 97
    x = Windows("t/train", codes, length=10, stride=10)

    def epochs(stream, n=3):
        return [sorted(w[0] for w, _ in stream.unbatch().as_numpy_iterator()) for _ in range(n)]

    first = epochs(x.dataset(4, shuffle=7))
    assert len({tuple(e) for e in first}) > 1  # the windows moved between epochs
    assert first == epochs(x.dataset(4, shuffle=7))
    for w, y in x.dataset(4, shuffle=7).unbatch().as_numpy_iterator():
        assert (y[:-1] == w[1:]).all()


# --------------------------------------------------------------------------- text-file


def use_text(project, text: bytes | None, **entry):
    path = project / "data" / "raw" / "my.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_bytes(text)
    settings = {"source": "text-file", "path": "data/raw/my.txt", "val_fraction": 0.1, "test_fraction": 0.1}
    edit_params(project, lambda p: p["data"].__setitem__("my-text", {**settings, **entry}))
    return path


def test_a_text_file_is_prepared_with_the_training_vocabulary(project):
    use_text(project, ("The cat sat on the mat.\n" * 40 + "Zebra!\n" * 12).encode())
    manifest, written = data.prepare("my-text")
    assert written and manifest.kind == "text" and manifest.vocabulary[0] == "<unk>"
    dataset = data.load("my-text")
    assert sum(len(dataset.arrays[f"codes_{s}"]) for s in data.SPLITS) == 40 * 24 + 12 * 7
    # 'Z' and 'b' never occur in the training block: <unk> in the test block
    assert manifest.unknown_characters["test"] > 0 and manifest.unknown_characters["train"] == 0
    assert manifest.characters == {s: len(dataset.arrays[f"codes_{s}"]) for s in data.SPLITS}
    assert data.read_manifest("my-text") == manifest  # every text fact is a field: read back whole


@pytest.mark.parametrize(
    "content, entry, fragments",
    [
        (None, {}, ("data.my-text.path", "does not exist")),
        (b"\xff\xfe bad" * 100, {}, ("my.txt", "not utf-8 text", "data.my-text.encoding")),
        (b"short\n" * 20, {}, ("my.txt", "characters", "fewer than 64")),
        (b"x" * 2000, {"max_bytes": 1000}, ("my.txt", "larger than 1,000 bytes", "max_bytes")),
        (b"x" * 2000, {"encoding": "klingon"}, ("data.my-text.encoding", "klingon")),
    ],
)
def test_a_bad_text_file_is_one_line_and_nothing_is_written(project, content, entry, fragments):
    use_text(project, content, **entry)
    with pytest.raises(UserError) as error:
        data.prepare("my-text")
    assert all(f in str(error.value) for f in fragments) and "\n" not in str(error.value)
    assert not (project / "data" / "processed" / "my-text").exists()


def test_a_linked_or_special_text_file_is_refused(project, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("secret\n" * 100)
    path = use_text(project, None)
    os.symlink(target, path)
    with pytest.raises(UserError, match="symbolic link"):
        data.prepare("my-text")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(UserError, match="named pipe"):
        data.prepare("my-text")
