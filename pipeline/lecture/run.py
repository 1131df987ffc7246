"""`python -m pipeline lecture [EXAMPLE ...] [--json]` (`make lecture`): the lecture's worked examples.

Each example (pipeline/lecture/examples.py) is computed by the product's own builders and
Keras layers, printed as small matrices, and logged as one run of the MLflow experiment `lecture`
(run name = the example's name) with a picture (`<example>.png`: input grid, kernel, output;
padding cells shaded, the window of one output cell in red) and its numbers (`<example>.json`).
`--json` prints one JSON object keyed by example name instead of the matrices.
"""

from __future__ import annotations

import contextlib
import json
import sys

import numpy as np

from pipeline import plots
from pipeline.config import suggest
from pipeline.errors import UserError
from pipeline.lecture.examples import EXAMPLES, Example
from pipeline.training import tracking

TASK = "lecture"
WIDTH = 100  # console columns before matrices wrap to the next row


def chosen(names: list[str]) -> list[str]:
    """The examples asked for, in the lecture's order (all of them when none is named)."""
    for name in names:
        if name not in EXAMPLES:
            raise UserError(
                f"unknown example '{name}'{suggest(name, EXAMPLES)}; known: {', '.join(EXAMPLES)}"
            )
    return [name for name in EXAMPLES if not names or name in names]


def cell(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def block(panel: dict) -> list[str]:
    """One matrix as text lines under its title, columns right-aligned."""
    matrix = np.atleast_2d(np.asarray(panel["matrix"], dtype=float))
    cells = [[cell(v) for v in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    lines = [" ".join(c.rjust(width) for c in row) for row in cells]
    return [panel["title"], *lines]


def side_by_side(blocks: list[list[str]]) -> list[str]:
    """Blocks next to each other, wrapped to WIDTH columns."""
    out, row, used = [], [], 0
    for b in [*blocks, None]:
        width = max(len(line) for line in b) + 3 if b else 0
        if b is None or (row and used + width > WIDTH):
            widths = [max(len(line) for line in x) + 3 for x in row]
            for i in range(max(len(x) for x in row)):
                out.append(
                    "  "
                    + "".join(
                        (x[i] if i < len(x) else "").ljust(w) for x, w in zip(row, widths, strict=True)
                    ).rstrip()
                )
            out.append("")
            row, used = [], 0
        if b is not None:
            row.append(b)
            used += width
    return out


def render(example: Example) -> str:
    lines = [f"== {example.name}: {example.title}", ""]
    if example.panels:
        lines += side_by_side([block(p) for p in example.panels])
    lines += [f"  {note}".rstrip() for note in example.notes]
    return "\n".join(lines) + "\n"


def figure_of(example: Example):
    """The example's picture: its own figure, or its matrices drawn as grids."""
    return example.figure or plots.matrices(example.panels, f"{example.name}: {example.title}")


def log(example: Example, figure) -> str:
    """One MLflow run of the `lecture` experiment: params, `figure`, numbers; returns its id."""
    import mlflow

    tags = {"git_commit": tracking.git_commit(), "lecture_example": example.name}
    with tracking.start_run(TASK, example.name, tags, example.title) as run:
        tracking.log_params(example.params)
        output = example.numbers["output"]
        if isinstance(output, dict) and all(isinstance(v, int | float) for v in output.values()):
            mlflow.log_metrics({str(k): float(v) for k, v in output.items()})  # e.g. the two losses
        mlflow.log_dict(example.numbers, f"{example.name}.json")
        mlflow.log_figure(figure, f"{example.name}.png")
        return run.info.run_id


def main(names: list[str], as_json: bool = False) -> int:
    selected = chosen(names)
    tracking.configure()
    results = {}
    for name in selected:
        example = EXAMPLES[name]()
        # with --json, stdout carries the JSON object only
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            run_id = log(example, figure_of(example))
        results[name] = example.numbers
        if not as_json:
            print(render(example) + f"  (run {run_id} in MLflow experiment '{TASK}')\n")
    if as_json:
        print(json.dumps(results, default=str))
    else:
        print(f"lecture: {len(selected)} example(s) logged to experiment '{TASK}' at {tracking.shown_uri()}")
    return 0
