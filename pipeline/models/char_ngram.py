"""The character n-gram baseline: interpolated Kneser-Ney (pipeline/models/kneser_ney.py), its
order chosen on the validation split.

It counts every n-gram of the training text up to `max_order` characters, then keeps the order
whose predictions of the validation text cost the fewest bits per character. Its probabilities
come from at most order - 1 characters back: what it cannot know is what a network's memory is for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.models import Family, Logged, kneser_ney
from pipeline.models.kneser_ney import KneserNey
from pipeline.models.schemas import NgramParams as Params
from pipeline.specs import TextSpec


def check(params: Params, spec: TextSpec) -> None:
    if params.max_order < 1:
        raise UserError(f"model.max_order must be at least 1 (got {params.max_order})")
    if params.max_order >= spec.window:
        raise UserError(
            f"model.max_order ({params.max_order}) must be below objective.window ({spec.window}): "
            "the model reads order - 1 characters of each window"
        )


def build(params: Params, spec: TextSpec) -> KneserNey:
    return KneserNey(spec.vocabulary_size, params.max_order)


def fit(model: KneserNey, x_train, y_train, validation) -> None:
    """Counts from the training text; the order from the validation text (data.corpus.Windows)."""
    model.fit(x_train.codes, None if validation is None else validation[0].codes)


def tables_file(model: KneserNey, folder: Path) -> dict[str, Path]:
    path = folder / "tables.npz"
    np.savez_compressed(path, **model.arrays())
    return {"tables": path}


def count_params(model: KneserNey) -> int:
    """The counts it keeps: every n-gram up to the chosen order, raw and continuation."""
    return int(sum(len(a) for name, a in model.arrays().items() if name.endswith("_counts")))


FAMILY = Family(
    name="char-ngram",
    build=build,
    check=check,
    fit_estimator=fit,
    count_params=count_params,
    # models-from-code: kneser_ney.py rebuilds the model from its count tables
    logged=Logged("code", code=kneser_ney, files=tables_file),
)
