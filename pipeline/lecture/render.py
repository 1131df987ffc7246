"""`make notebooks-render`: each notebook of notebooks/ run from start to end in this project,
written as a page docs/notebooks/<notebook>.md with its figures beside it as PNG files, so the
lecture can be read before anything is run.

The `.py` pair stays the source of truth, without outputs; a page records the sha256 of the `.py`
it was run from (tests/test_notebooks.py fails on a page older than its notebook). The notebooks
train sandboxed (docs/api.md): rendering changes nothing in production. Needs the `notebooks`
extra (nbclient, nbconvert, jupytext).

    python -m pipeline.lecture.render [--settings "EPOCHS = 3; LIMIT = 500"] [NOTEBOOK ...]

NOTEBOOK: stems, e.g. 02_convolutional_networks (default: all); `--settings` is a cell run right
after the notebook's parameters cell (papermill's way), shown on the page, for a quicker render.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

from pipeline import atomic
from pipeline.config import project_root
from pipeline.errors import UserError

NOTEBOOKS = "notebooks"
PAGES = "docs/notebooks"
CELL_TIMEOUT = 1800  # seconds per cell: a full transfer curve trains for minutes
# the page's first line: what it was rendered from (the test reads it)
HEADER = re.compile(r"<!-- rendered from (?P<source>\S+) sha256 (?P<sha256>[0-9a-f]{64})")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def header(source: Path, root: Path, seconds: float, settings: str) -> str:
    relative = source.relative_to(root).as_posix()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    how = f"with `{settings}` after its parameters" if settings else "at the notebook's default settings"
    return (
        f"<!-- rendered from {relative} sha256 {sha256(source)} by `make notebooks-render`; "
        "edit the .py, then render again -->\n\n"
        f"> This page is [`{relative}`](../../{relative}) run from start to end in a trained project "
        f"({when}, {seconds / 60:.0f} min, {how}): what the notebook shows once run. The numbers are "
        "one run's; yours differ.\n\n"
    )


def kept(output) -> bool:
    """Outputs worth a reader's eye: not stderr's log lines, nor the empty displays rich leaves
    behind in Jupyter."""
    if output.get("output_type") == "stream":
        return output.get("name") == "stdout" and bool(output.get("text", "").strip())
    data = output.get("data", {})
    text = data.get("text/html", "") or data.get("text/plain", "")
    shown = re.sub(r"<[^>]+>", "", text if isinstance(text, str) else "".join(text))
    return bool(shown.strip()) or "image/png" in data


def parameterised(notebook, settings: str):
    """`notebook` with a cell of `settings` right after its `parameters` cell (papermill's way)."""
    from nbformat import v4

    if settings:
        (at,) = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
        notebook.cells.insert(at + 1, v4.new_code_cell(settings, metadata={"tags": ["injected-parameters"]}))
    return notebook


def executed(source: Path, root: Path, settings: str = ""):
    """The notebook of `source` (a .py), run in notebooks/ with PIPELINE_ROOT set to `root`."""
    import jupytext
    from nbclient import NotebookClient

    notebook = parameterised(jupytext.read(source), settings)
    os.environ["PIPELINE_ROOT"] = str(root)  # the kernel inherits it
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},
    ).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if kept(o)]
    return notebook


def render(source: Path, root: Path, settings: str = "") -> Path:
    """Run one notebook and write its page and figures (replacing the old ones whole)."""
    from nbconvert import MarkdownExporter

    started = time.perf_counter()
    notebook = executed(source, root, settings)
    files = f"{source.stem}_files"
    body, resources = MarkdownExporter().from_notebook_node(
        notebook, resources={"output_files_dir": files, "unique_key": source.stem}
    )
    body = body.replace(str(root), ".")  # no machine's paths in a page
    pages = root / PAGES
    figures = pages / files
    shutil.rmtree(figures, ignore_errors=True)
    figures.mkdir(parents=True)
    for name, data in resources.get("outputs", {}).items():
        (pages / name).write_bytes(data)
    page = pages / f"{source.stem}.md"
    atomic.write_text(page, header(source, root, time.perf_counter() - started, settings) + body)
    return page


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.lecture.render")
    parser.add_argument("--settings", default="", help='e.g. "EPOCHS = 3; LIMIT = 500"')
    parser.add_argument("names", nargs="*", metavar="NOTEBOOK")
    args = parser.parse_args(argv)
    names, root = args.names, project_root()
    try:
        ast.parse(args.settings)
    except SyntaxError as exc:
        raise UserError(
            f"NOTEBOOK_SETTINGS: not Python ({exc.msg}); type e.g. 'EPOCHS = 3; LIMIT = 500'"
        ) from None
    sources = sorted((root / NOTEBOOKS).glob("[0-9][0-9]_*.py"))
    if names:
        unknown = sorted(set(names) - {s.stem for s in sources})
        if unknown:
            known = ", ".join(s.stem for s in sources)
            raise UserError(f"NOTEBOOKS: no notebook '{unknown[0]}' in {NOTEBOOKS}/; known: {known}")
        sources = [s for s in sources if s.stem in names]
    for source in sources:
        started = time.perf_counter()
        page = render(source, root, args.settings)
        print(f"notebooks-render: {page.relative_to(root)} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
