"""A character n-gram model with interpolated Kneser-Ney smoothing: the baseline a character
network has to beat, with the .fit / .predict the text objective calls.

Characters are integer codes 0..V-1. P(c | h) is the probability of the next character c after
the n-1 characters h before it (Chen & Goodman, 1998, interpolated Kneser-Ney):

    P_k(c | h) = (max(N(h c) - D_k, 0) + D_k * T(h) * P_{k-1}(c | h')) / N(h)      when N(h) > 0
               = P_{k-1}(c | h')                                                   otherwise

h' is h without its oldest character, N(h c) the count of h followed by c, N(h) = sum over c,
T(h) the number of distinct characters seen after h, and D_k = n1 / (n1 + 2 n2) (n1, n2: the
k-grams seen once, twice). At the top order N counts are raw; below it they are continuation
counts (how many distinct characters precede the k-gram), Kneser and Ney's insight. P_0 is
uniform over the vocabulary, so every distribution sums to 1 and no character has probability 0.

An n-gram of codes is stored as one integer, the codes read as a number in base V (the newest
character last), so the orders are bounded by V^N < 2^63 (order 9 for 104 characters).

This file is also how the fitted model is logged (MLflow models-from-code, nothing pickled): the
count tables are an .npz artifact read with allow_pickle=False; it imports nothing from the pipeline.
"""

from __future__ import annotations

import math

import mlflow
import numpy as np

POSITIONS = 8192  # positions scored at once (bounds the (positions, V) arrays held)


def highest_order(vocabulary_size: int) -> int:
    """The largest n whose n-grams of `vocabulary_size` codes fit one int64 key."""
    return max(1, int(63 / math.log2(max(vocabulary_size, 2))))


def ngram_keys(codes: np.ndarray, n: int, base: int) -> np.ndarray:
    """Every n-gram of `codes` (stride 1) as one int64, the oldest character most significant."""
    count = len(codes) - n + 1
    keys = np.zeros(max(count, 0), np.int64)
    for i in range(n):
        keys = keys * base + codes[i : i + count]
    return keys


class Table:
    """The counts of one order: sorted n-gram keys with their counts, grouped by context."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, base: int):
        self.keys, self.counts = keys.astype(np.int64), counts.astype(np.float64)
        self.next = self.keys % base
        self.contexts, self.starts, self.types = np.unique(
            self.keys // base, return_index=True, return_counts=True
        )
        self.totals = np.add.reduceat(self.counts, self.starts) if len(self.keys) else np.zeros(0)
        once, twice = np.sum(self.counts == 1), np.sum(self.counts == 2)
        self.discount = float(once / (once + 2 * twice)) if once else 0.5

    @classmethod
    def counted(cls, keys: np.ndarray, base: int) -> Table:
        unique, counts = np.unique(keys, return_counts=True)
        return cls(unique, counts, base)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_keys": self.keys, f"{prefix}_counts": self.counts}

    def context(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(where each context's entries start, or -1 when never seen; N(h), 0 when never seen)."""
        if not len(self.contexts):
            return np.full(len(contexts), -1), np.zeros(len(contexts))
        at = np.minimum(np.searchsorted(self.contexts, contexts), len(self.contexts) - 1)
        seen = self.contexts[at] == contexts
        return np.where(seen, at, -1), np.where(seen, self.totals[at], 0.0)

    def count(self, keys: np.ndarray) -> np.ndarray:
        """N(h c) of each n-gram key (0 when never seen)."""
        if not len(self.keys):
            return np.zeros(len(keys))
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.counts[at], 0.0)

    def weight(self, at: np.ndarray, total: np.ndarray) -> np.ndarray:
        """D T(h) / N(h): the share the lower order gets after each seen context (1 after an unseen one)."""
        seen = at >= 0
        return np.where(seen, self.discount * self.types[at] / np.where(seen, total, 1.0), 1.0)

    def add_discounted(self, out: np.ndarray, rows: np.ndarray, at: np.ndarray, scale: np.ndarray) -> None:
        """out[row, c] += scale * max(N(h c) - D, 0) / N(h) for every c seen after each row's context."""
        seen = at >= 0
        rows, at, scale = rows[seen], at[seen], scale[seen] / self.totals[at[seen]]
        lengths = self.types[at]
        entries = np.repeat(self.starts[at] - np.cumsum(lengths) + lengths, lengths) + np.arange(
            lengths.sum()
        )
        value = np.maximum(self.counts[entries] - self.discount, 0) * np.repeat(scale, lengths)
        out[np.repeat(rows, lengths), self.next[entries]] += value


class KneserNey:
    """Interpolated Kneser-Ney over `vocabulary_size` codes, of order `order` (the n of n-gram);
    `fit` counts up to `max_order` and keeps the order with the best validation log-likelihood."""

    def __init__(self, vocabulary_size: int, max_order: int, order: int | None = None):
        self.size = vocabulary_size
        self.max_order = min(max_order, highest_order(vocabulary_size))
        self.order = order or self.max_order
        self.raw: list[Table] = []  # raw[k - 1]: order k's counts (its top-level form)
        self.continued: list[Table] = []  # continued[k - 1]: order k's continuation counts
        self.validation_bits: dict[int, float] = {}  # order → validation bits per character

    def fit(self, codes: np.ndarray, validation: np.ndarray | None = None) -> KneserNey:
        codes = np.asarray(codes, np.int64)
        grams = [ngram_keys(codes, n, self.size) for n in range(1, self.max_order + 1)]
        self.raw = [Table.counted(keys, self.size) for keys in grams]
        # order k's continuation count: the distinct (k+1)-grams ending in it (the last order has none)
        self.continued = [
            Table.counted(np.unique(grams[k]) % self.size**k, self.size) for k in range(1, self.max_order)
        ]
        if validation is not None and len(validation) > self.max_order:
            self.validation_bits = self.bits_per_order(np.asarray(validation, np.int64))
            self.order = min(self.validation_bits, key=self.validation_bits.__getitem__)
        return self

    def target_probabilities(self, codes: np.ndarray, at: np.ndarray) -> list[np.ndarray]:
        """P_n(codes[i] | the characters before it) for each i in `at` and each order n up to
        max_order (every i has max_order - 1 characters before it): one number per position."""
        lower, answers = np.full(len(at), 1.0 / self.size), []
        context = np.zeros(len(at), np.int64)
        for n in range(1, self.max_order + 1):
            if n > 1:  # the context grows by one older character
                context = context + codes[at - (n - 1)] * self.size ** (n - 2)
            key = context * self.size + codes[at]
            tables = [self.raw[n - 1], *self.continued[n - 1 : n]]
            top, *below = [self.interpolated(table, context, key, lower) for table in tables]
            answers.append(top)
            lower = below[0] if below else lower
        return answers

    @staticmethod
    def interpolated(table: Table, context: np.ndarray, key: np.ndarray, lower: np.ndarray) -> np.ndarray:
        where, total = table.context(context)
        discounted = np.maximum(table.count(key) - table.discount, 0) / np.where(where >= 0, total, 1.0)
        return discounted + table.weight(where, total) * lower

    def bits_per_order(self, codes: np.ndarray) -> dict[int, float]:
        """Bits per character of every order up to max_order on `codes`, scored on every position
        that has max_order - 1 characters before it (the same positions for each order)."""
        total = np.zeros(self.max_order)
        positions = np.arange(self.max_order - 1, len(codes))
        for start in range(0, len(positions), POSITIONS):
            answers = self.target_probabilities(codes, positions[start : start + POSITIONS])
            total -= [np.log2(p).sum() for p in answers]
        return {n + 1: float(bits / len(positions)) for n, bits in enumerate(total)}

    def distributions(self, history: np.ndarray, available: np.ndarray) -> np.ndarray:
        """P(· | history), (positions, V): `history` (positions, order - 1) holds the characters
        before each position, newest last; `available` how many of them are real (a window's start:
        fewer, and the order drops to fit them)."""
        count = len(history)
        top = np.minimum(available + 1, self.order)  # each position's order
        out, share = np.zeros((count, self.size)), np.zeros(count)
        rows = np.arange(count)
        contexts = [np.zeros(count, np.int64)]
        for n in range(2, self.order + 1):  # the context of order n, of n - 1 characters
            contexts.append(contexts[-1] + history[:, -(n - 1)] * self.size ** (n - 2))
        for n in range(self.order, 0, -1):  # from each position's own order down
            share = np.where(top == n, 1.0, share)  # a position starts at its order, raw counts
            steps = [(self.raw[n - 1], top == n)]
            if n < self.order:  # positions that started above n: continuation counts
                steps.append((self.continued[n - 1], top > n))
            for table, mine in steps:
                where, total = table.context(contexts[n - 1][mine])
                table.add_discounted(out, rows[mine], where, share[mine])
                share[mine] *= table.weight(where, total)
        return out + share[:, None] / self.size

    def predict(self, windows: np.ndarray, verbose: int = 0) -> np.ndarray:
        """(windows, T, V) probabilities of the character after each position of each window, given
        the characters up to it within the window: what a character network answers."""
        windows = np.asarray(windows, np.int64)
        count, length = windows.shape
        width = self.order - 1
        padded = np.concatenate([np.zeros((count, width), np.int64), windows], axis=1)
        out = np.zeros((count, length, self.size), np.float32)
        available = np.minimum(np.arange(length) + 1, width)
        per_call = max(1, POSITIONS // max(length, 1))
        for first in range(0, count, per_call):
            rows = padded[first : first + per_call]
            history = np.lib.stride_tricks.sliding_window_view(rows[:, 1:], width, axis=1)
            flat = history.reshape(-1, width)
            answer = self.distributions(flat, np.tile(available, len(rows)))
            out[first : first + per_call] = answer.reshape(len(rows), length, self.size)
        return out

    def __repr__(self) -> str:
        bits = ", ".join(f"{n}: {b:.3f}" for n, b in self.validation_bits.items())
        chosen = f"; validation bits per character by order: {bits}" if bits else ""
        return f"KneserNey(order {self.order} of at most {self.max_order}, {self.size} characters{chosen})"

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as the .npz the logged model reads: its sizes and the count tables up
        to the chosen order (no model_config: MLflow would log it as params beside the run's own)."""
        found = {"sizes": np.array([self.size, self.max_order, self.order])}
        for k in range(self.order):
            found |= self.raw[k].arrays(f"raw_{k + 1}")
            if k < self.order - 1:
                found |= self.continued[k].arrays(f"continued_{k + 1}")
        return found

    @classmethod
    def rebuilt(cls, arrays) -> KneserNey:
        """A fitted model from its `arrays()`."""
        model = cls(*(int(n) for n in arrays["sizes"]))
        size, order = model.size, model.order
        model.raw = [
            Table(arrays[f"raw_{k}_keys"], arrays[f"raw_{k}_counts"], size) for k in range(1, order + 1)
        ]
        model.continued = [
            Table(arrays[f"continued_{k}_keys"], arrays[f"continued_{k}_counts"], size)
            for k in range(1, order)
        ]
        return model


class CharacterModel(mlflow.pyfunc.PythonModel):
    """The logged model: windows of codes (windows, T) in, next-character probabilities out."""

    def load_context(self, context):
        with np.load(context.artifacts["tables"], allow_pickle=False) as tables:
            self.model = KneserNey.rebuilt(tables)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        return self.model.predict(np.asarray(model_input))


mlflow.models.set_model(CharacterModel())
