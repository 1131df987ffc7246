"""Characters as the models read them, and a prompt completed one character at a time.

    vocabulary = Vocabulary.of(training_text)   # every character of the training text, code 0 = <unk>
    codes = vocabulary.encode("print(x)")       # uint8 (uint16 beyond 256 characters)
    vocabulary.decode(codes)                    # back to text; <unk> shows as U+FFFD
    complete(model.predict, vocabulary, "def ", length=80, window=128, temperature=0.5)

A character model is anything whose `predict(windows)` maps windows of codes (n, T) to the
probabilities of the next character after every position, (n, T, V): the character networks and
the n-gram baseline alike. No TensorFlow here: data prep, the objective and the API share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

UNKNOWN = "<unk>"  # code 0: a character the training text never had
SHOWN_UNKNOWN = "\ufffd"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The characters a model knows, by code: code 0 is <unk>, then every character of the
    training text in code-point order."""

    chars: tuple[str, ...]  # chars[0] is UNKNOWN

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls((UNKNOWN, *sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.size <= 256 else np.uint16)

    def encode(self, text: str) -> np.ndarray:
        """Codes of `text`; a character outside the vocabulary is 0 (<unk>)."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        known = np.array([ord(c) for c in self.chars[1:]], np.uint32)  # sorted: searchable
        at = np.minimum(np.searchsorted(known, points), max(len(known) - 1, 0))
        hit = known[at] == points if len(known) else np.zeros(len(points), bool)
        return np.where(hit, at + 1, 0).astype(self.dtype)

    def decode(self, codes) -> str:
        shown = (SHOWN_UNKNOWN, *self.chars[1:])
        return "".join(shown[int(c)] for c in np.asarray(codes).reshape(-1))


def complete(
    predict: Callable[[np.ndarray], np.ndarray],
    vocabulary: Vocabulary,
    prompts: list[str] | str,
    length: int,
    window: int,
    temperature: float = 0.5,
    seed: int = 0,
) -> list[str]:
    """Each prompt continued by `length` characters, each drawn from the model's distribution of
    the next character given the last `window` characters (temperature 0: the likeliest one; below 1:
    sharper than the model, above: flatter). All prompts go through the model together; the same
    seed draws the same completions from the same model."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    rng = np.random.default_rng(seed)
    rows = [list(vocabulary.encode(p)) or [0] for p in prompts]  # an empty prompt starts from <unk>
    made: list[list[int]] = [[] for _ in prompts]
    for _ in range(length):
        context = [(row + new)[-window:] for row, new in zip(rows, made, strict=True)]
        # one shape every call (a traced model is traced once): left-aligned, padded after, each
        # read at its own last character (what follows it cannot change a prediction before it)
        batch = np.zeros((len(context), window), np.int32)
        for i, c in enumerate(context):
            batch[i, : len(c)] = c
        probabilities = np.asarray(predict(batch))
        for i, c in enumerate(context):
            made[i].append(draw(probabilities[i, len(c) - 1], temperature, rng))
    return [vocabulary.decode(new) for new in made]


def draw(probabilities: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """One code from a distribution, sharpened (temperature < 1) or flattened (> 1); never <unk>."""
    p = np.asarray(probabilities, np.float64).copy()
    p[0] = 0.0
    if temperature <= 0:
        return int(np.argmax(p))
    logits = np.log(np.maximum(p, 1e-30)) / temperature
    p = np.exp(logits - logits.max()) * (p > 0)
    return int(rng.choice(len(p), p=p / p.sum()))
