"""The typed contract between a source and the stored versions (pipeline/data/manifest.py): every
fact a source states is a field, kept by a retrain merge; older manifests still read; a source whose
arrays are neither images nor a table (a text corpus) is stored like any other."""

import dataclasses
import json
from typing import ClassVar, Literal

import numpy as np
import pytest

from pipeline import data
from pipeline.data import sources
from tests.data.test_data import IMAGES, make_image_folder, use_dataset
from tests.helpers import loaded


def test_a_merge_keeps_every_fact_the_source_stated(project):
    make_image_folder(project / "data/raw/imgs", per_class=8)
    use_dataset(project, "imgs", {**IMAGES, "max_unreadable": 1})
    (project / "data/raw/imgs/a/broken.png").write_bytes(b"\x89PNG garbage")
    current = data.load("imgs")
    x, y = loaded(current, "val")
    batch = data.Batch("b1", "b1", "0" * 64, x[:2], y[:2])
    arrays, manifest = data.new_version(current, [batch])
    facts = set(data.Facts.model_fields)
    assert manifest.model_dump(include=facts) == current.manifest.model_dump(include=facts)
    assert manifest.unreadable == [{"file": "a/broken.png", "reason": manifest.unreadable[0]["reason"]}]
    assert manifest.sha256 == data.content_hash(arrays) != current.sha256
    assert manifest.shapes["x_train"][0] == current.count("train") + 2
    assert [b.id for b in manifest.batches] == ["b1"]


def test_a_manifest_written_before_the_typed_contract_still_reads(project):
    """The keys the old dict carried: `value_range` (never read: dropped), the file names (now
    derived from the sha256), an integer divisor."""
    manifest = data.load("digits").manifest
    old = json.loads((data.processed_dir("digits") / "manifest.json").read_text())
    assert old["arrays"] == manifest.arrays and old["images"] == {"folder": manifest.images_folder}
    old |= {"value_range": [0.0, 1.0], "divisor": 16}
    (data.processed_dir("digits") / "manifest.json").write_text(json.dumps(old))
    again = data.read_manifest("digits")
    assert again == manifest and again.pixels and again.divisor == 16.0
    assert not data.prepare("digits")[1]  # up to date: nothing rebuilt


@dataclasses.dataclass(frozen=True)
class CorpusSource(sources.Source):
    """A stand-in for a text source: characters of whole documents, split by document."""

    KIND: ClassVar[str] = "text"
    source: Literal["corpus"]
    seed: int
    val_fraction: float = 0.0

    def raw_key(self, name):
        return "corpus-v1", "three documents"

    def build(self, name, staging=None):
        documents = [b"def f(x):\n    return x\n", b"import os\n", b"class A:\n    pass\n"]
        arrays = {}
        for split, document in zip(data.SPLITS, documents, strict=True):
            arrays[f"text_{split}"] = np.frombuffer(document, np.uint8)
            arrays[f"starts_{split}"] = np.array([0], np.int64)  # where each document begins
        return data.Prepared(arrays, data.Facts(kind="text", split="by document", split_seed=self.seed))


def test_a_source_that_is_neither_images_nor_a_table_is_stored_and_verified_alike(project, monkeypatch):
    monkeypatch.setitem(sources.SOURCES, "corpus", CorpusSource)
    use_dataset(project, "py", {"source": "corpus", "seed": 0})
    dataset = data.load("py")
    assert dataset.kind == "text" and not dataset.manifest.pixels and dataset.manifest.images is None
    assert bytes(dataset.arrays["text_val"]) == b"import os\n"
    assert dataset.sha256 == data.content_hash(dataset.arrays) and not data.prepare("py")[1]
    with pytest.raises(ValueError, match="kind"):
        data.Facts(kind="audio")  # a new kind is a new value of Facts.kind, nothing else
