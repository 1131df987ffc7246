"""Batch prediction with a logged or registered model: `python -m pipeline predict` / `make predict`.

Input: a folder of images (any format Pillow reads; sub-folders are searched too; Thumbs.db,
.DS_Store, __MACOSX/ and dot-files skipped; links and special files refused) or a CSV of numeric
feature columns (a first row of numbers only is data, not a header). Output: a CSV with one row
per input — the predicted class and its probability — written atomically. A folder is read,
predicted and written a chunk at a time (CHUNK_BYTES), so memory does not grow with its size.
The model is loaded by pipeline/training/loading.py: only the forms the pipeline logs
(`--allow-unsafe-model` with PIPELINE_ALLOW_UNSAFE_MODELS=1 for others).

Every call is a run `predict` in the MLflow experiment `predictions`: the model (name, version,
run id), the input count, and how far the images are from the model's training data (the drift
profile logged with its run: `drift_*` metrics and `drift.png`, docs/drift.md).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic, config, data, images
from pipeline.errors import Option, UserError
from pipeline.monitoring import inputs
from pipeline.training import loading, resolve

CHUNK_BYTES = 32 * 2**20  # images read, predicted and written at a time: about this many float32 bytes
MODEL = Option("--model", "MODEL", "PIPELINE_PREDICT_MODEL")
INPUT = Option("--input", "INPUT", "PIPELINE_PREDICT_INPUT")
OUTPUT = Option("--output", "OUTPUT", "PIPELINE_PREDICT_OUTPUT")
MAX_UNREADABLE = Option("--max-unreadable", "MAX_UNREADABLE", "PIPELINE_PREDICT_MAX_UNREADABLE")
SAMPLE = "data/samples/digits"  # what the messages suggest
OTHER = "<a model trained on such images: a registered model, an experiment or a run id>"


@dataclasses.dataclass
class Unreadable:
    """Image files that could not be read: skipped and listed up to `limit` (--max-unreadable),
    refused beyond it (default 0: the first is refused)."""

    limit: int = 0
    files: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, why)

    def add(self, name: str, problem: str) -> None:
        self.files.append((name, problem))
        if len(self.files) <= self.limit:
            return
        formats = data.readers.formats_read()
        if not self.limit:
            skip = f"to skip unreadable images give {MAX_UNREADABLE.name(0)}N"
            raise UserError(f"{name}: {problem}; {formats}; {skip}")
        raise UserError(
            f"more than {MAX_UNREADABLE.shown(self.limit)} unreadable images (the last: {name}: {problem}); "
            f"{formats}; give a larger {MAX_UNREADABLE.name(self.limit)}N"
        )


def read_images(
    folder: Path,
    shape: tuple[int, ...],
    max_pixels: int = data.readers.MAX_PIXELS,
    seen: inputs.Inputs | None = None,
    unreadable: Unreadable | None = None,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every image under `folder` (junk such as .DS_Store skipped; links and special files refused
    now, before any is read), as (names, images) a chunk at a time. Each file's own size and colour
    go to `seen`; a file that is no image this reads to `unreadable` (refused by default)."""
    if len(shape) != 3:
        raise UserError(
            f"{folder}: a folder of images, but the model takes inputs of shape {shape}: give a CSV "
            f"file of {shape[-1] if shape else 1} numeric columns, or a model trained on images "
            f"({MODEL.flag}/MODEL=)"
        )
    files = data.regular_files(folder)
    if not files:
        raise UserError(
            f"{folder}: no images to predict (sub-folders are searched; dot-files, Thumbs.db and "
            "__MACOSX/ are skipped); give a folder holding image files"
        )
    step = max(1, min(1024, CHUNK_BYTES // (4 * int(np.prod(shape)))))
    parts = (files[start : start + step] for start in range(0, len(files), step))
    return chunks(folder, parts, shape, max_pixels, seen or inputs.Inputs(), unreadable or Unreadable())


def chunks(folder: Path, parts, shape, max_pixels: int, seen: inputs.Inputs, unreadable: Unreadable):
    for part in parts:
        names, x = [], []
        for f in part:
            name = data.shown(f.relative_to(folder))
            try:
                pixels, native = read_image(f, shape, max_pixels)
            except images.ImageError as exc:
                unreadable.add(name, str(exc))
                continue
            names.append(name)
            x.append(pixels)
            seen.add(native)
        if names:
            yield names, np.stack(x)


def read_image(path: Path, shape: tuple[int, ...], max_pixels: int):
    """(pixels as the model takes them, the file's own (height, width, colour)); an ImageError when
    it is not an image this reads. Only a regular file is opened (links were refused)."""
    with data.readers.open_regular(path) as handle:
        native = data.readers.image_header(handle)
        handle.seek(0)
        return images.decode(handle, shape, max_pixels), native


def read_table(path: Path, shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """A CSV of numeric feature columns; a first row of numbers only is data (no header)."""
    frame = data.read_csv(path, header=None)
    if frame.empty:
        raise UserError(f"{path}: no rows to predict (only a header); add rows of numbers below it")
    x = np.stack([data.numeric_column(frame, c, path, allow_missing=False) for c in frame.columns], axis=1)
    if x.shape[1:] != shape:
        raise UserError(
            f"{path}: {x.shape[1]} columns, but the model takes inputs of shape {shape}: give a CSV of "
            f"{shape[-1] if shape else 1} columns, or another model ({MODEL.flag}/MODEL=)"
        )
    return [f"line {line}" for line in frame.attrs["lines"]], x.astype(np.float32)


def image_cap() -> int:
    """retrain.max_image_pixels of the project's params.yaml (the default without one)."""
    try:
        return config.retrain_params(config.load_params()).max_image_pixels
    except UserError:
        return data.readers.MAX_PIXELS


def checked_paths(input_path: str, output: str) -> tuple[Path, Path]:
    """The input and output paths, or one line naming the option (or make variable) to fix."""
    if not input_path:
        raise UserError(
            f"{INPUT.name(input_path).strip()} is empty: give the image folder or CSV file to predict, "
            f"e.g. {INPUT.name(input_path)}{SAMPLE}"
        )
    source, target = Path(input_path), Path(output)
    if not os.path.lexists(source):
        raise UserError(
            f"{INPUT.shown(input_path)} does not exist: give an image folder or a CSV file, "
            f"e.g. {INPUT.name(input_path)}{SAMPLE}"
        )
    if target.is_dir():
        example = target / "predictions.csv"
        raise UserError(
            f"{OUTPUT.shown(output)} is a folder; give a file name, e.g. {OUTPUT.name(output)}{example}"
        )
    return source, target


def unreadable_limit(value: int | str) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise UserError(
            f"{MAX_UNREADABLE.shown(value)} is not a count: give a whole number of image files to skip, "
            f"e.g. {MAX_UNREADABLE.name(value)}5"
        )
    return int(text)


def main(
    model_uri: str, input_path: str, output: str, allow_unsafe: bool = False, max_unreadable: int | str = 0
) -> int:
    source, target = checked_paths(input_path, output)
    max_unreadable = unreadable_limit(max_unreadable)
    max_pixels = image_cap()
    resolved = resolve.resolve(model_uri, said=MODEL.shown(model_uri))  # an alias is read once
    for note in resolved.notes:
        print(f"note: {note}")
    model = loading.load(resolved.uri, allow_unsafe)  # only what the pipeline logs
    shown = model_uri if resolved.kind != "experiment" else resolved.shown()
    print(f"predict: model {inputs.describe(model, shown)}", flush=True)
    shape = model.input_shape()
    seen, unreadable = inputs.Inputs(), Unreadable(max_unreadable)
    if source.is_dir():
        chunks = read_images(source, shape, max_pixels, seen, unreadable)
    else:
        chunks = iter([read_table(source, shape)])
    drift = Folded.of(model)
    with atomic.atomic_open(target, "w") as handle:  # renamed into place once every row is written
        count = write_predictions(handle, model, model_uri, chunks, drift)
    channels = shape[-1] if len(shape) == 3 else 0
    warned = inputs.warnings(
        model, shown, seen, channels, drift.compared(), f"{MODEL.name(model_uri)}{OTHER}"
    )
    line = record(model, resolved.uri, input_path, count, drift, unreadable, warned)
    print(f"predict: {count} inputs → {output}\n  {line}")
    if unreadable.files:
        limit = MAX_UNREADABLE.shown(max_unreadable)
        print(f"predict: skipped {len(unreadable.files)} unreadable images ({limit})")
        for name, problem in unreadable.files:
            print(f"  {name}: {problem}")
    for warning in warned:
        print(warning, flush=True)
    return 0


def write_predictions(handle, model, model_uri: str, chunks, drift: Folded) -> int:
    """Predict each chunk, write its CSV rows and fold its drift statistics; returns the count."""
    from pipeline.monitoring import reference

    writer = csv.writer(handle)
    writer.writerow(["input", "predicted_class", "probability"])
    count = 0
    for names, x in chunks:
        proba = np.asarray(model.predict(x), dtype=np.float64)
        if proba.ndim != 2:
            raise UserError(
                f"model '{model_uri}' answers shape {proba.shape[1:]}, not class probabilities: predict "
                f"writes classes, so give a classifier ({MODEL.flag}/MODEL=)"
            )
        class_names = model.class_names or [str(i) for i in range(proba.shape[1])]
        for name, k, row in zip(names, proba.argmax(axis=1), proba, strict=True):
            writer.writerow([name, class_names[k], f"{row[k]:.6f}"])
        drift.add(x, reference.probabilities(proba))
        count += len(names)
    return count


@dataclasses.dataclass
class Folded:
    """The inputs' drift statistics, folded a chunk at a time (or why they are not measured)."""

    profile: Any  # the model's image drift profile, or None
    why: str = ""
    stats: Any = None  # ImageStats of the chunks so far
    drift: Any = None  # the Drift, once compared

    @classmethod
    def of(cls, model) -> Folded:
        from pipeline.monitoring import reference

        try:
            profile = reference.of_model(model)
            if profile is None or profile.KIND != "images":
                raise UserError(f"no image drift profile in the model's run {model.run_id or '(none)'}")
        except UserError as exc:
            return cls(None, str(exc))
        return cls(profile)

    def add(self, x: np.ndarray, probabilities) -> None:
        if self.profile is None:
            return
        try:
            part = self.profile.stats(x, probabilities)
        except UserError as exc:
            self.profile, self.why = None, str(exc)
            return
        self.stats = part if self.stats is None else self.stats.merge(part)

    def compared(self):
        """The inputs' Drift from the training data, or None when not measured (`why`)."""
        if self.profile is None or self.stats is None:
            return None
        if self.drift is None:
            self.drift = self.profile.compare(self.stats)
        return self.drift


def record(
    model, uri: str, input_path: str, count: int, drift: Folded, unreadable: Unreadable, warned
) -> str:
    """The call as a run `predict` in the MLflow experiment `predictions`: which model answered, how
    many inputs, the images skipped, the warnings, and the inputs' drift from the model's training
    data; returns the drift line."""
    import mlflow

    from pipeline import secrets
    from pipeline.training import tracking

    tags = {
        "model.uri": secrets.redact(uri),
        "model.name": model.name,
        "model.version": model.version,
        "model.run_id": model.run_id,
        "predict.input": input_path[:500],
    }
    if warned:
        tags["predict.warning"] = " | ".join(warned)[:5000]
    with tracking.start_run("predictions", "predict", tags):
        mlflow.log_metrics({"predict_inputs": count, "predict_unreadable": len(unreadable.files)})
        if unreadable.files:
            mlflow.log_text("".join(f"{name}\t{why}\n" for name, why in unreadable.files), "unreadable.tsv")
        compared = drift.compared()
        if compared is None:
            mlflow.set_tag("drift.profile", drift.why[:500])
            return f"drift: not measured ({drift.why})"
        compared.log("drift.png")
        return compared.line()
