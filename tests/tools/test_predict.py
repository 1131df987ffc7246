"""`make predict`'s inputs read as a person reads them, and its mistakes as one line."""

import os

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.tools import predict
from tests.helpers import assert_one_line_error, run_cli, write_batch


def test_a_headerless_csv_keeps_its_first_row(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,2,3\n4,5,6\n")
    names, x = predict.read_table(path, (3,))
    assert names == ["line 1", "line 2"] and x.tolist() == [[1, 2, 3], [4, 5, 6]]
    path.write_text("a,b,c\n1,2,3\n")
    names, x = predict.read_table(path, (3,))
    assert names == ["line 2"] and x.tolist() == [[1, 2, 3]]


def test_a_header_only_csv_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n")
    with pytest.raises(UserError, match="no rows to predict"):
        predict.read_table(path, (3,))


def test_an_output_folder_is_one_line(project, tmp_path):
    (tmp_path / "in.csv").write_text("1,2\n")
    result = run_cli(project, "predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path))
    assert_one_line_error(result, f"--output '{tmp_path}' is a folder")


def test_junk_is_skipped_and_links_are_refused(tmp_path):
    folder = write_batch(tmp_path / "in", np.zeros((2, 8, 8, 1)), [1, 2], ready=False)
    for junk in ("Thumbs.db", ".DS_Store", "1/desktop.ini", "__MACOSX/1/._0.png"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_bytes(b"junk")
    names, x = predict.read_images(folder, (8, 8, 1), 1000)
    assert names == ["1/0.png", "2/1.png"] and x.shape == (2, 8, 8, 1)
    os.symlink("/etc/hostname", folder / "1" / "linked.png")
    with pytest.raises(UserError, match="linked.png: a symbolic link"):
        predict.read_images(folder, (8, 8, 1), 1000)
