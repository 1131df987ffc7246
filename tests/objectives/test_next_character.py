"""The next-character objective: windows, the scored positions every model shares, bits per
character, the memory table; and the text-completion task trained end to end on a small slice."""

import math

import mlflow
import numpy as np
import pytest

import pipeline
from pipeline import config, data
from pipeline.errors import UserError
from pipeline.models.kneser_ney import KneserNey
from pipeline.objectives import next_character
from pipeline.objectives.next_character import Params
from tests.helpers import edit_params, train

PARAMS = Params(window=16, context=8, prompts=("ab",), completion_length=5, temperature=0.0)
TEXT = "a (b) [c] {d}, and (a longer one, opened well before it closes).\n" * 30


class Uniform:
    """A model that knows nothing: every character equally likely."""

    def __init__(self, size):
        self.size = size

    def predict(self, windows, verbose=0):
        return np.full((*np.shape(windows), self.size), 1 / self.size, np.float32)


@pytest.fixture
def text_dataset(project):
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "t.txt").write_text(TEXT)
    entry = {"source": "text-file", "path": "data/raw/t.txt", "val_fraction": 0.2, "test_fraction": 0.2}
    edit_params(project, lambda p: p["data"].__setitem__("t", entry))
    return data.load("t")


def train_params(limit=None):
    return config.TrainParams(1, 4, 0.01, "adam", 1, 0, limit, "default")


def test_splits_are_windows_that_do_not_overlap_and_limit_keeps_the_first(text_dataset):
    splits, spec = next_character.prepare(text_dataset, train_params(), PARAMS)
    assert spec.vocabulary_size == len(splits.vocabulary) and spec.window == 16
    assert splits.x_train.stride == 16 and len(splits.x_train) == (len(splits.x_train.codes) - 17) // 16 + 1
    limited, _ = next_character.prepare(text_dataset, train_params(limit=3), PARAMS)
    assert len(limited.x_train) == 3 and (limited.x_train[:] == splits.x_train[:3]).all()


def test_a_split_too_short_for_a_window_or_a_dataset_of_another_kind_is_one_line(text_dataset, project):
    with pytest.raises(UserError, match="too few for one window of objective.window = 4096"):
        next_character.prepare(text_dataset, train_params(), Params(4096, 8, (), 5, 0.0))
    with pytest.raises(UserError, match="needs text"):
        next_character.prepare(data.load("digits"), train_params(), PARAMS)
    with pytest.raises(UserError, match="objective.context in"):
        next_character.prepare(text_dataset, train_params(), Params(16, 16, (), 5, 0.0))


def test_every_model_is_scored_on_the_same_characters(text_dataset):
    splits, spec = next_character.prepare(text_dataset, train_params(), PARAMS)
    uniform = next_character.score(Uniform(spec.vocabulary_size), splits.x_test, PARAMS.context, "test")
    assert uniform["test_bits_per_char"] == pytest.approx(math.log2(spec.vocabulary_size), rel=1e-5)
    ngram = KneserNey(spec.vocabulary_size, 4).fit(splits.x_train.codes, splits.x_val.codes)
    metrics, artifacts = next_character.evaluate(ngram, splits, PARAMS)
    assert metrics["test_bits_per_char"] < 1.0 and metrics["test_accuracy"] > 0.7  # a repeated line
    assert set(metrics) == {
        "test_bits_per_char",
        "test_accuracy",
        "validation_bits_per_char",
        "validation_accuracy",
    }
    assert artifacts["completions.txt"].startswith("'ab' → ")
    assert next_character.OBJECTIVE.direction("test_bits_per_char") == "min"


def test_closing_brackets_know_how_far_back_they_were_opened():
    vocabulary = ["<unk>", *sorted(set("f(x) [a, (b)]\n{"))]
    codes = np.array([vocabulary.index(c) for c in "f(x) [a, (b)]\n\n{x)"])
    distance = next_character.bracket_distances(codes, vocabulary)
    assert distance[3] == 2 and distance[11] == 2 and distance[12] == 7
    assert distance[-1] == 0  # a ')' that closes no '(' (the '{' was opened after a blank line)


def test_the_memory_table_shows_an_ngram_forgets_beyond_its_order(text_dataset):
    splits, spec = next_character.prepare(text_dataset, train_params(), PARAMS)
    ngram = KneserNey(spec.vocabulary_size, 3).fit(splits.x_train.codes)
    rows = {r["what"]: r for r in next_character.memory(ngram, splits, PARAMS, sample=100)}
    assert rows["context 1"]["bits_per_char"] > rows["context 2"]["bits_per_char"]
    assert rows["context 2"]["bits_per_char"] == pytest.approx(rows["context 16"]["bits_per_char"])


@pytest.mark.integration
def test_the_text_task_trains_logs_completions_and_completes_prompts(project):
    """char-lstm for one epoch on a few windows and the n-gram baseline: same positions scored, the
    same param names, completions per epoch, and pipeline.complete / pipeline.memory on both."""
    small = ["train.epochs=1", "train.limit=20", "objective.completion_length=10"]
    lstm = train("char-lstm", [*small, "model.units=[16]"])
    ngram = train("char-ngram", small)
    for outcome in (lstm, ngram):
        assert 0 < outcome.metrics["test_bits_per_char"] < math.log2(len(outcome.splits.vocabulary))
    runs = {
        r.info.run_name: r
        for r in mlflow.search_runs(experiment_names=["text-completion"], output_format="list")
    }
    # the same model and objective param names (a baseline claims no Keras train.* keys)
    named = {n: {k for k in r.data.params if not k.startswith("train.")} for n, r in runs.items()}
    assert named["char-lstm"] == named["char-ngram"]
    assert (
        runs["char-ngram"].data.params["model.cell"]
        == runs["char-lstm"].data.params["model.max_order"]
        == "n/a"
    )
    listed = {a.path for a in mlflow.MlflowClient().list_artifacts(lstm.run_id)}
    assert {"completions.txt", "completions_by_epoch.txt"} <= listed
    by_epoch = mlflow.artifacts.load_text(f"runs:/{lstm.run_id}/completions_by_epoch.txt")
    assert by_epoch.startswith("epoch 1\n'def ' → ")
    for name in ("char-lstm", "char-ngram"):
        made = pipeline.complete(["def ", "The "], name, length=12, temperature=0)
        assert len(made) == 2 and all(len(m) == 12 for m in made)
    table = pipeline.memory("char-ngram")
    assert "context 64" in table.index and (table["characters"] > 0).all()
