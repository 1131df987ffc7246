"""`make predict`'s inputs read as a person reads them, and its mistakes as one line."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import UserError
from pipeline.monitoring import inputs
from pipeline.tools import predict
from tests.helpers import REPO, assert_one_line_error, run_cli, smooth_photo, write_batch, write_heic


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


@pytest.mark.integration  # `python -m pipeline` in a real process
def test_an_output_folder_is_one_line(project, tmp_path):
    (tmp_path / "in.csv").write_text("1,2\n")
    result = run_cli(project, "predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path))
    assert_one_line_error(result, f"--output {tmp_path} is a folder; give a file name")


def test_junk_is_skipped_and_links_are_refused(tmp_path):
    folder = write_batch(tmp_path / "in", np.zeros((2, 8, 8, 1)), [1, 2], ready=False)
    for junk in ("Thumbs.db", ".DS_Store", "1/desktop.ini", "__MACOSX/1/._0.png"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_bytes(b"junk")
    ((names, x),) = predict.read_images(folder, (8, 8, 1), 1000)
    assert names == ["1/0.png", "2/1.png"] and x.shape == (2, 8, 8, 1)
    os.symlink("/etc/hostname", folder / "1" / "linked.png")
    with pytest.raises(UserError, match="linked.png: a symbolic link"):
        predict.read_images(folder, (8, 8, 1), 1000)


def test_a_folder_is_read_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "CHUNK_BYTES", 3 * 8 * 8 * 4)  # three 8x8 grey images a chunk
    folder = write_batch(tmp_path / "in", np.random.default_rng(0).random((7, 8, 8, 1)), [1] * 7, ready=False)
    chunks = list(predict.read_images(folder, (8, 8, 1), 1000))
    assert [len(names) for names, _ in chunks] == [3, 3, 1]
    assert [x.shape for _, x in chunks] == [(3, 8, 8, 1), (3, 8, 8, 1), (1, 8, 8, 1)]
    assert sum((names for names, _ in chunks), []) == [f"1/{i}.png" for i in range(7)]


def grey_png(path, side=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), 200, np.uint8), "L").save(path)


def test_unreadable_images_are_skipped_and_listed_up_to_the_limit(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    for name in ("a.png", "c.png"):
        grey_png(folder / name)
    (folder / "b.heic").write_bytes(b"not really an image")
    (folder / "d.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    skipped = predict.Unreadable(2)
    chunks = list(predict.read_images(folder, (8, 8, 1), 1000, unreadable=skipped))
    assert [names for names, _ in chunks] == [["a.png", "c.png"]]
    assert skipped.files == [("b.heic", "not an image"), ("d.svg", "not an image")]
    with pytest.raises(UserError) as refused:  # the default: the first is refused
        list(predict.read_images(folder, (8, 8, 1), 1000))
    message = str(refused.value)
    assert message.startswith("b.heic: not an image; formats read: .jpg .jpeg .png .gif .bmp .tif")
    assert message.endswith("more that Pillow reads; to skip unreadable images give --max-unreadable N")
    with pytest.raises(UserError, match=r"^more than --max-unreadable 1 unreadable images \(the last: d.svg"):
        list(predict.read_images(folder, (8, 8, 1), 1000, unreadable=predict.Unreadable(1)))
    monkeypatch.setenv("PIPELINE_PREDICT_MAX_UNREADABLE", "1")  # started by make: its variable is named
    with pytest.raises(
        UserError, match=r"^more than MAX_UNREADABLE=1 unreadable .* give a larger MAX_UNREADABLE=N"
    ):
        list(predict.read_images(folder, (8, 8, 1), 1000, unreadable=predict.Unreadable(1)))


DIGITS_FACTS = {
    "dataset": "digits",
    "source": "sklearn-digits",
    "input_shape": [8, 8, 1],
    "classes": 10,
    "image_size": [8, 8],
    "color_mode": "grayscale",
    "native_size": {"median": [8, 8], "min": [8, 8], "max": [8, 8], "color_share": 0.0},
}


class Model:
    """What inputs.describe and inputs.warnings read of a loaded model (training.loading.Loaded)."""

    def __init__(self, metadata, name="digits-classifier", version="3", run_id="258545ff" + "0" * 24):
        self.metadata, self.name, self.version, self.run_id = metadata, name, version, run_id
        self.class_names = metadata.get("class_names")


def test_the_model_line_names_the_model_and_what_it_was_trained_on():
    names = [str(d) for d in range(10)]
    model = Model({"experiment": "cnn-same", "class_names": names, "trained_on": DIGITS_FACTS})
    assert inputs.describe(model, "digits-classifier") == (
        "digits-classifier v3 (run 258545ff, experiment cnn-same) · trained on digits (sklearn-digits): "
        "10 classes (0, 1 … 9), 8x8 grayscale images, source files 8x8 px"
    )
    older = Model({"class_names": names})  # logged before models recorded what they learnt from
    assert inputs.describe(older, "x").endswith("trained on: not recorded (logged before models recorded it)")


def test_photos_into_a_grey_digits_model_warn_and_digits_do_not():
    photos, digits = inputs.Inputs(), inputs.Inputs()
    for _ in range(4):
        photos.add((120, 160, True))
        digits.add((8, 8, False))
    model = Model({"trained_on": DIGITS_FACTS})
    warned = inputs.warnings(model, "digits-classifier", photos, 1, None, "MODEL=<…>")
    assert warned == [
        "warning: these inputs are not what digits-classifier was trained on (digits): colour images "
        "(100% of the files) into a model trained on grey ones; files of 120x160 px (median) against "
        "training files of 8x8 px (17.3 times the side); its answers may mean nothing here: give MODEL=<…>"
    ]
    assert inputs.warnings(model, "digits-classifier", digits, 1, None, "MODEL=<…>") == []
    # a model logged before the facts were recorded: its input (grey) still tells colour apart
    older = inputs.warnings(Model({}), "old", photos, 1, None, "--model <…>")
    assert len(older) == 1 and "colour images (100% of the files) into a model trained on grey" in older[0]


def test_a_high_drift_score_is_a_warning_not_a_bare_number():
    class Drift:
        score, worst, examples = 0.97, "mean_image", 40

    warned = inputs.warnings(Model({"trained_on": DIGITS_FACTS}), "m", inputs.Inputs(), 1, Drift(), "")
    assert warned == [
        "warning: drift_score 0.97 (high: above 0.3, mean_image moved most) over 40 images: they are "
        "unlike the model's training data (docs/drift.md)"
    ]
    Drift.score = 0.2
    assert inputs.warnings(Model({}), "m", inputs.Inputs(), 1, Drift(), "") == []


@pytest.mark.integration
def test_make_predict_names_its_variables(project, tmp_path):
    """A real process through make (no stub): its messages name INPUT=, MAX_UNREADABLE=, not the flags."""

    def error_of(*args):
        done = subprocess.run(
            ["make", "-f", str(REPO / "Makefile"), f"PY={sys.executable}", "VENV_STAMP=", "predict", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PIPELINE_ROOT": str(project)},
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        return line

    assert error_of() == (
        "error: INPUT= is empty: give the image folder or CSV file to predict, e.g. INPUT=data/samples/digits"
    )
    assert error_of("INPUT=nowhere").startswith("error: INPUT=nowhere does not exist: give an image folder")
    assert error_of(f"INPUT={tmp_path}", "MAX_UNREADABLE=some").startswith(
        "error: MAX_UNREADABLE=some is not a count: give a whole number"
    )
    assert_one_line_error(
        run_cli(project, "predict", "--input", "nowhere"), "error: --input nowhere does not exist"
    )


def test_phone_photos_are_predicted_like_any_image(tmp_path):
    (tmp_path / "in").mkdir()
    write_heic(tmp_path / "in" / "IMG_0001.HEIC", smooth_photo(16, 16))
    Image.fromarray(smooth_photo(16, 16)).save(tmp_path / "in" / "twin.png")
    ((names, x),) = predict.read_images(tmp_path / "in", (8, 8, 3), 1000)
    assert names == ["IMG_0001.HEIC", "twin.png"] and np.abs(x[0] - x[1]).max() < 0.03
