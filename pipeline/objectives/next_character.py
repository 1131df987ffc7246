"""Next-character objective: a text's characters predicted one at a time, scored in bits per character.

Every model reads windows of `window` codes and answers, at every position, the probabilities of
the character that follows (sequence to sequence): the character networks and the n-gram baseline
alike (pipeline/text.py). Networks train on windows that do not overlap, from a random offset each
epoch (data.corpus.Windows), with sparse categorical cross-entropy (in nats) as the loss.

Scoring: the test text is read in windows that repeat the last `context` characters of the window
before; only each window's positions after its first `context` are scored. So every scored
character has at least `context` characters before it, is scored once, and every model is scored
on exactly the same positions.

  test_bits_per_char     -mean log2 P(the character | the ones before it): lower is better;
                         log2 of the vocabulary size is a uniform guess, 0 a perfect one
  test_accuracy          how often the likeliest character is the one that follows
validation_bits_per_char and validation_accuracy are the same on the validation text: tune on these.

After every epoch (and once at the end) the model completes the `prompts`: completions.txt.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pipeline import inference
from pipeline.data.corpus import Windows
from pipeline.errors import UserError
from pipeline.objectives import Objective, limit_rows
from pipeline.specs import TextSpec
from pipeline.text import Vocabulary, complete

SCORED_WINDOWS = 256  # windows scored at once: bounds the (windows, T, V) probabilities held
BRACKETS = {")": "(", "]": "[", "}": "{"}


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section, shared by every run of the task (so all score the same positions)."""

    window: int  # characters a model reads at once, training and scoring
    context: int  # every scored character has at least this many characters before it
    prompts: tuple[str, ...]  # completed after every epoch and at the end (completions.txt)
    completion_length: int  # characters added to each prompt
    temperature: float  # of the completions: 0 the likeliest character, 1 the model's own odds


@dataclasses.dataclass
class Splits:
    x_train: Windows  # training text, windows that do not overlap (a random offset each epoch)
    x_val: Windows
    x_test: Windows
    vocabulary: list[str]  # code i is vocabulary[i]; code 0 is <unk>
    y_train: None = None  # the text is its own target (Windows.targets)

    @property
    def class_names(self) -> list[str]:
        return self.vocabulary  # the logged model's metadata: how to read its outputs

    @property
    def validation(self):
        return (self.x_val, None) if len(self.x_val) else None


def check_params(params: Params) -> None:
    if params.window < 2 or not 0 <= params.context < params.window:
        raise UserError(
            f"objective.window must be at least 2 and objective.context in [0, window) "
            f"(got {params.window}, {params.context})"
        )
    if params.completion_length < 0 or params.temperature < 0:
        raise UserError("objective.completion_length and objective.temperature must not be negative")


def prepare(dataset, train, params: Params) -> tuple[Splits, TextSpec]:
    """Windows of each split; `train.limit` keeps the first N training windows."""
    if dataset.kind != "text":
        raise UserError(f"dataset '{dataset.name}' is {dataset.kind}; next-character prediction needs text")
    check_params(params)
    windows = {}
    for split in ("train", "val", "test"):
        codes = dataset.arrays[f"codes_{split}"]
        windows[split] = Windows(f"{dataset.name}/{split}", codes, params.window, params.window)
    if train.limit is not None:
        kept = len(limit_rows(len(windows["train"]), train.limit))
        windows["train"] = Windows(windows["train"].name, windows["train"].codes[: kept * params.window + 1],
                                   params.window, params.window)  # fmt: skip
    for split in ("train", "test"):
        if not len(windows[split]):
            raise UserError(
                f"dataset '{dataset.name}': the {split} split has {len(windows[split].codes)} characters, "
                f"too few for one window of objective.window = {params.window}"
            )
    vocabulary = list(dataset.manifest.vocabulary)
    splits = Splits(windows["train"], windows["val"], windows["test"], vocabulary)
    return splits, TextSpec(len(vocabulary), params.window, train.seed)


def predict(model, x) -> np.ndarray:
    """(windows, T, V) next-character probabilities, from a Keras model or anything with .predict."""
    return np.asarray(inference.predict(model, x), dtype=np.float32)


def scored(model, windows: Windows, context: int):
    """(log2 P, whether the likeliest was right) of every scored character, a batch of windows at a time."""
    scoring = windows.overlapping(context)
    for start in range(0, len(scoring), SCORED_WINDOWS):
        batch = slice(start, start + SCORED_WINDOWS)
        probabilities = predict(model, scoring[batch])[:, context:]
        targets = scoring.targets(batch)[:, context:]
        picked = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0]
        yield np.log2(np.maximum(picked, 1e-30)), probabilities.argmax(-1) == targets


def score(model, windows: Windows, context: int, split: str) -> dict[str, float]:
    log2, right = zip(*scored(model, windows, context), strict=True)
    log2, right = np.concatenate([b.ravel() for b in log2]), np.concatenate([b.ravel() for b in right])
    return {f"{split}_bits_per_char": float(-log2.mean()), f"{split}_accuracy": float(right.mean())}


def completions(model, splits: Splits, params: Params) -> str:
    """The prompts, each completed (same seed every time: what changes is the model)."""
    vocabulary = Vocabulary(tuple(splits.vocabulary))
    made = complete(
        inference.for_many_calls(model),
        vocabulary,
        list(params.prompts),
        params.completion_length,
        params.window,
        params.temperature,
    )
    return "".join(f"{prompt!r} → {text!r}\n" for prompt, text in zip(params.prompts, made, strict=True))


def evaluate(model, splits: Splits, params: Params) -> tuple[dict[str, float], dict]:
    """Bits per character and accuracy on the test (and validation) text; the final completions."""
    metrics = score(model, splits.x_test, params.context, "test")
    if len(splits.x_val):
        metrics |= score(model, splits.x_val, params.context, "validation")
    return metrics, {"completions.txt": completions(model, splits, params)}


def epoch_artifacts(model, splits: Splits, params: Params) -> dict[str, str]:
    """What the run logs after every epoch: the prompts completed by the model so far."""
    return {"completions_by_epoch.txt": completions(model, splits, params)} if params.prompts else {}


def problem(dataset, params: Params) -> str:
    """Runs on the same text, scored after the same context, are ranked together."""
    return f"{dataset.name}: next character after {params.context}+ characters"


# --------------------------------------------------------------------------- short and long memory


def bracket_distances(codes: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """For each position, how far back the bracket its character closes was opened (0: not a
    closing bracket, or one without a match). Brackets are matched within a paragraph."""
    text = Vocabulary(tuple(vocabulary)).decode(codes)
    distance = np.zeros(len(text), np.int64)
    stack: list[tuple[str, int]] = []
    for i, char in enumerate(text):
        if char == "\n" and text[i - 1 : i] == "\n":
            stack.clear()  # a blank line: a new paragraph
        elif char in "([{":
            stack.append((char, i))
        elif char in BRACKETS and stack and stack[-1][0] == BRACKETS[char]:
            distance[i] = i - stack.pop()[1]
    return distance


def memory(model, splits: Splits, params: Params, sample: int = 2000, seed: int = 0) -> list[dict]:
    """How far back a model remembers, on the test text: rows of (what, characters, bits_per_char).

    `context m`: bits per character when the model sees only the last m characters before each of
    `sample` fixed positions (a model with short memory stops improving as m grows); `closing
    bracket, opened d back`: the scored closing brackets, by how far back their opening bracket is."""
    rows, predict_many = [], inference.for_many_calls(model)  # traced once: many calls of one shape
    codes, window = splits.x_test.codes, params.window
    rng = np.random.default_rng(seed)
    at = np.sort(
        rng.choice(np.arange(window, len(codes) - 1), min(sample, len(codes) - 1 - window), replace=False)
    )
    lengths = [m for m in (1, 2, 4, 8, 16, 32, 64, 128, 256) if m <= window]
    for m in lengths:
        # the m characters first in a window, read at its m-th position (what follows cannot
        # change a prediction before it): every model reads windows of one shape
        inputs = np.zeros((len(at), window), np.int32)
        inputs[:, :m] = codes[at[:, None] - m + 1 + np.arange(m)]
        last = np.concatenate([predict_many(inputs[i : i + 500])[:, m - 1] for i in range(0, len(at), 500)])
        bits = -np.log2(np.maximum(last[np.arange(len(at)), codes[at + 1]], 1e-30))
        rows.append({"what": f"context {m}", "characters": len(at), "bits_per_char": float(bits.mean())})
    return rows + bracket_rows(model, splits, params)


def bracket_rows(model, splits: Splits, params: Params) -> list[dict]:
    """Bits per character of the scored closing brackets, by how far back their opener is."""
    scoring = splits.x_test.overlapping(params.context)
    distance = bracket_distances(scoring.codes, splits.vocabulary)
    # the distance of each scored target: position start + 1 + t in the split's text
    positions = scoring.starts()[:, None] + 1 + np.arange(params.context, params.window)
    log2 = np.concatenate([b for b, _ in scored(model, splits.x_test, params.context)])
    back = distance[positions]
    rows = []
    for low, high in ((1, 8), (9, 32), (33, params.window)):
        if low > params.window:
            break
        chosen = (back >= low) & (back <= high)
        bits = float(-log2[chosen].mean()) if chosen.any() else math.nan
        rows.append({"what": f"closing bracket, opened {low}-{high} back", "characters": int(chosen.sum()),
                     "bits_per_char": bits})  # fmt: skip
    return rows


OBJECTIVE = Objective(
    name="next_character",
    loss="sparse_categorical_crossentropy",  # nats per character; bits = nats / ln 2
    headline="test_bits_per_char",
    directions={"bits_per_char": "min", "accuracy": "max", "loss": "min"},
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    params=Params,
    keras_metrics=lambda: ["accuracy"],
    problem=problem,
    epoch_artifacts=epoch_artifacts,
)
