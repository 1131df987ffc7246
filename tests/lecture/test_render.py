"""lecture/render.py (`make notebooks-render`): a notebook run in the project and written as a page
with its figures, the .py's sha256 in its first line (the staleness test of every committed page
is in tests/test_notebooks.py)."""

import hashlib

import pytest

from pipeline.errors import UserError
from pipeline.lecture import render

NOTEBOOK = """# %% [markdown]
# # A tiny notebook

# %% tags=["parameters"]
WHO = "nobody"

# %%
import os, sys
print("root", os.environ["PIPELINE_ROOT"], "for", WHO)
print("log line".upper(), file=sys.stderr)

# %%
# %matplotlib inline
from matplotlib.figure import Figure
figure = Figure(figsize=(2, 2))
figure.add_subplot().plot([0, 1], [1, 0])
figure
"""


def test_a_kept_output_is_one_a_reader_sees():
    assert not render.kept({"output_type": "display_data", "data": {"text/html": "<pre style='x'></pre>"}})
    assert not render.kept({"output_type": "stream", "name": "stderr", "text": "INFO: assets written\n"})
    assert render.kept({"output_type": "stream", "name": "stdout", "text": "MLflow UI: …\n"})
    assert render.kept({"output_type": "display_data", "data": {"image/png": "…", "text/plain": ""}})


@pytest.mark.integration
def test_a_notebook_becomes_a_page_with_its_figure_and_its_sources_hash(project, capsys):
    pytest.importorskip("nbconvert", reason="the notebooks extra is not installed: make test")
    source = project / "notebooks" / "01_tiny.py"
    source.parent.mkdir()
    source.write_text(NOTEBOOK)
    assert render.main(["--settings", "WHO = 'a reader'", "01_tiny"]) == 0
    page = project / "docs" / "notebooks" / "01_tiny.md"
    text = page.read_text()
    found = render.HEADER.match(text)
    assert found["source"] == "notebooks/01_tiny.py"
    assert found["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert "# A tiny notebook" in text and "root . for a reader" in text and str(project) not in text
    assert "with `WHO = 'a reader'` after its parameters" in text  # a quicker render says so
    assert "LOG LINE" not in text  # stderr is not the lecture
    (figure,) = (project / "docs" / "notebooks" / "01_tiny_files").glob("*.png")
    assert f"01_tiny_files/{figure.name}" in text
    with pytest.raises(UserError, match="NOTEBOOKS: no notebook '02_none'.*known: 01_tiny"):
        render.main(["02_none"])
    with pytest.raises(UserError, match="NOTEBOOK_SETTINGS: not Python"):
        render.main(["--settings", "EPOCHS = ", "01_tiny"])
