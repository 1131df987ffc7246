"""Does a model fit what it is asked? What it was trained on (the `trained_on` facts its metadata
records, pipeline/training/run.py) against the image files `predict` reads: their colour and size.

Every image is converted to the model's size and colour mode, so a digits model answers for a
photo without complaint: these checks make that visible. They warn, never refuse. A model logged
before the facts were recorded is described from what it says itself (its input shape, classes).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

HIGH_DRIFT = 0.3  # a drift_score above this is called high (the images' limit calibrated in docs/drift.md)
SIZE_FACTOR = 10  # native sizes this many times apart (either way) are "an order of magnitude"
COLOR_SHARE = 0.5  # more than this share of colour files is "colour images"


@dataclasses.dataclass
class Inputs:
    """What a call was given, folded a file at a time: each image file's own size and colour (from its
    header), without keeping the images."""

    heights: list[int] = dataclasses.field(default_factory=list)
    widths: list[int] = dataclasses.field(default_factory=list)
    colour: int = 0

    def add(self, native: tuple[int, int, bool] | None) -> None:
        if native is not None:
            self.heights.append(native[0])
            self.widths.append(native[1])
            self.colour += bool(native[2])

    @property
    def files(self) -> int:
        return len(self.heights)

    def median(self) -> list[int]:
        return [int(np.median(self.heights)), int(np.median(self.widths))]


def facts(model) -> dict[str, Any]:
    """What a loaded model (training.loading.Loaded) was trained on: its recorded `trained_on`, or,
    for a model logged before that was recorded, its classes (input shape: see `describe`)."""
    recorded = model.metadata.get("trained_on")
    if isinstance(recorded, dict):
        return recorded
    names = model.class_names or []
    return {"classes": len(names)} if names else {}


def size(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


def describe(model, shown: str) -> str:
    """One line naming the model that answers and what it was trained on, e.g. `digits-classifier v3
    (run 258545ff, experiment cnn-same) · trained on digits (sklearn-digits): 10 classes (0 … 9), 8x8
    grayscale images, source files 8x8 px`."""
    who = f"{model.name} v{model.version}" if model.name and model.version else shown
    where = [f"run {model.run_id[:8]}"] if model.run_id else []
    if model.metadata.get("experiment"):
        where.append(f"experiment {model.metadata['experiment']}")
    head = f"{who} ({', '.join(where)})" if where else who
    found = facts(model)
    if "dataset" not in found:
        return f"{head} · trained on: not recorded (logged before models recorded it)"
    parts = [f"{found['classes']} classes{examples(model.class_names)}"] if found.get("classes") else []
    if found.get("image_size"):
        parts.append(f"{size(found['image_size'])} {found['color_mode']} images")
        native = found.get("native_size")
        if native:
            spread = (
                f" ({size(native['min'])} to {size(native['max'])})" if native["min"] != native["max"] else ""
            )
            parts.append(f"source files {size(native['median'])} px{spread}")
    else:
        parts.append(f"inputs shaped {tuple(found['input_shape'])}")
    return f"{head} · trained on {found['dataset']} ({found['source']}): {', '.join(parts)}"


def examples(names: list[str] | None) -> str:
    if not names:
        return ""
    return f" ({', '.join(names)})" if len(names) <= 4 else f" ({names[0]}, {names[1]} … {names[-1]})"


def differences(found: dict[str, Any], inputs: Inputs, channels: int) -> list[str]:
    """How the input files clearly differ from the training images: colour into a grey model (or grey
    into a colour one), native sizes an order of magnitude apart. `channels`: what the model takes,
    for a model without recorded facts."""
    if not inputs.files:
        return []
    out = []
    trained_colour = found.get("native_size", {}).get("color_share")
    if trained_colour is None:
        trained_colour = float(found.get("color_mode", "rgb" if channels == 3 else "grayscale") == "rgb")
    share = inputs.colour / inputs.files
    if share > COLOR_SHARE and trained_colour <= COLOR_SHARE:
        out.append(f"colour images ({share:.0%} of the files) into a model trained on grey ones")
    elif share <= 1 - COLOR_SHARE and trained_colour > 1 - COLOR_SHARE and channels == 3:
        out.append(f"grey images ({1 - share:.0%} of the files) into a model trained on colour ones")
    native = found.get("native_size")
    if native:
        given, trained = inputs.median(), native["median"]
        ratio = math.sqrt(given[0] * given[1]) / max(1.0, math.sqrt(trained[0] * trained[1]))
        if ratio >= SIZE_FACTOR or ratio <= 1 / SIZE_FACTOR:
            out.append(
                f"files of {size(given)} px (median) against training files of {size(trained)} px "
                f"({ratio:.3g} times the side)"
            )
    return out


def warnings(model, shown: str, inputs: Inputs, channels: int, drift, retry: str) -> list[str]:
    """The warning lines of a call (none when the inputs fit): the differences above, and a high
    drift_score. `retry` says how to give another model, e.g. `MODEL=<…>`."""
    found = facts(model)
    lines = []
    apart = differences(found, inputs, channels)
    if apart:
        trained = f" ({found['dataset']})" if found.get("dataset") else ""
        lines.append(
            f"warning: these inputs are not what {shown} was trained on{trained}: {'; '.join(apart)}; its "
            f"answers may mean nothing here: give {retry}"
        )
    if drift is not None and drift.score > HIGH_DRIFT:
        cause = f", {drift.worst} moved most" if drift.worst else ""
        lines.append(
            f"warning: drift_score {drift.score:.2f} (high: above {HIGH_DRIFT}{cause}) over {drift.examples} "
            "images: they are unlike the model's training data (docs/drift.md)"
        )
    return lines
