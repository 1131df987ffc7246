"""The registered models carry their own preprocessing (pipeline/objectives/served/): loaded with
plain MLflow in a Python session without the pipeline, they answer as the pipeline does."""

import base64
import io
import json
import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from pipeline import data
from pipeline.training import loading
from tests.helpers import point_at, write_heic

# what a user outside the project runs: MLflow only (the pipeline cannot be imported); one session
# answers each (model URI, records) pair of the request file
OUTSIDE = """
import json, sys
sys.modules["pipeline"] = None  # not importable: the model must not need it
import mlflow
answers = []
for uri, records in json.load(open(sys.argv[1])):
    found = mlflow.pyfunc.load_model(uri).predict(records)
    answers.append(found if isinstance(found, list) else found.to_dict("records"))
print(json.dumps(answers))
"""
CLASSIFIER, FORECASTER = "models:/digits-classifier@champion", "models:/co2-forecaster@champion"


def answers_outside(project, folder, requests: list[tuple[str, list[dict]]]) -> list:
    request = folder / "requests.json"
    request.write_text(json.dumps(requests))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIPELINE_ROOT")}
    done = subprocess.run(
        [sys.executable, "-c", OUTSIDE, str(request)],
        cwd=folder,
        env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((pixels[..., 0] * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def project(champions, monkeypatch):
    """Not conftest's fresh project: the `champions` one, trained once per test run; the tests
    here only load and query its models."""
    point_at(monkeypatch, champions)
    return champions


@pytest.fixture
def classifier(project):
    return CLASSIFIER


@pytest.fixture(scope="module")
def outside(champions, tmp_path_factory):
    """What both champions answer in one Python session without the pipeline (one process start and
    one TensorFlow import for the two tests): the classifier on image files (PNG, HEIC) and pixel
    records, the forecaster on its last 150 weeks in shuffled order."""
    folder = tmp_path_factory.mktemp("outside")
    with pytest.MonkeyPatch.context() as patch:
        point_at(patch, champions)
        x = data.load("digits").examples("test")[0].read(slice(6))
        recent = history(150)
    files = []
    for i, image in enumerate(x[:3]):
        files.append(folder / f"{i}.png")
        files[-1].write_bytes(png(image))
    files.append(write_heic(folder / "IMG_0001.HEIC", (x[3].repeat(3, axis=-1) * 255).astype(np.uint8)))
    records = [{"image": base64.b64encode(f.read_bytes()).decode()} for f in files]
    records += [{"pixels": image.ravel().tolist()} for image in x[4:]]
    shuffled = recent.sample(frac=1, random_state=0)  # any order: sorted by date
    classified, forecast = answers_outside(
        champions, folder, [(CLASSIFIER, records), (FORECASTER, shuffled.to_dict("records"))]
    )
    return types.SimpleNamespace(x=x, files=files, classified=classified, recent=recent, forecast=forecast)


@pytest.mark.slow
def test_the_classifier_answers_outside_the_pipeline_as_inside(project, outside, classifier):
    # inside: the pipeline's reader on the same files, the champion's Keras model on the arrays
    answers = outside.classified
    model = loading.load(classifier)
    inputs = np.stack([*(data.read_image(f, (8, 8, 1)) for f in outside.files), *outside.x[4:]])
    proba = model.predict(inputs).astype(np.float64)
    proba /= proba.sum(axis=1, keepdims=True)
    names = model.class_names
    assert [a["class"] for a in answers] == [names[k] for k in proba.argmax(axis=1)]
    got = np.array([[a["probabilities"][n] for n in names] for a in answers])
    assert np.allclose(got, proba, atol=1e-6)
    metadata = model.metadata
    assert metadata["model_name"] == "digits-classifier" and metadata["class_names"] == names
    assert metadata["data_hash"] == data.read_manifest("digits").sha256


def big_png() -> str:
    buffer = io.BytesIO()
    Image.new("L", (4097, 4097)).save(buffer, format="PNG")  # one pixel-row over 4096 x 4096
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    "record, message",
    [
        ({"image": "not base64!"}, "record 0: 'image' is not valid base64"),
        (
            {"image": base64.b64encode(b"GIF89a....").decode()},
            "record 0: 'image' not an image (PNG or JPEG or HEIF)",
        ),
        ({"image": "BIG"}, "4097x4097 pixels exceeds the limit of 16777216 pixels"),
        ({"pixels": [0.5] * 10}, "record 0: 'pixels' must be 64 finite numbers"),
        ({"pixels": [float("nan")] * 64}, "record 0: 'pixels' must be 64 finite numbers"),
        ({"other": 1}, "'image' (base64 PNG or JPEG) or 'pixels' (64 values)"),
    ],
)
def test_a_bad_record_is_one_line_naming_it(classifier, record, message):
    model = loading.load(classifier).pyfunc()
    record = {"image": big_png()} if record == {"image": "BIG"} else record
    with pytest.raises(MlflowException) as error:
        model.predict([record])
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"  # MLflow's scoring protocol: a 400


@pytest.fixture
def forecaster(project):
    return FORECASTER


def history(n: int, end: int = -1) -> pd.DataFrame:
    """The co2 series' last `n` weeks up to index `end`, as a user would send them."""
    ds = data.load("co2")
    dates = np.concatenate([ds.arrays[f"dates_{s}"] for s in ("train", "val", "test")])
    values = np.concatenate([ds.arrays[f"values_{s}"] for s in ("train", "val", "test")])
    end = len(dates) + end + 1 if end < 0 else end
    return pd.DataFrame({"date": [str(d) for d in dates[end - n : end]], "value": values[end - n : end]})


@pytest.mark.slow
def test_the_forecaster_answers_dated_forecasts_outside_as_inside(project, outside, forecaster):
    answers = outside.forecast
    assert [a["date"] for a in answers] == ["2002-01-05", "2002-01-12", "2002-01-19", "2002-01-26"]
    window = outside.recent["value"].to_numpy(np.float32)[-104:].reshape(1, 104, 1)
    expected = loading.load(forecaster).predict(window).astype(np.float64)[0]
    assert np.allclose([a["value"] for a in answers], expected, atol=1e-9)


@pytest.mark.slow
def test_a_gap_in_the_history_is_filled_as_the_training_data_was(forecaster):
    model = loading.load(forecaster).pyfunc()
    recent = history(104)
    full = model.predict(recent)
    gapped = model.predict(recent.drop(index=[50]))  # one week missing: time-interpolated
    assert list(gapped["date"]) == list(full["date"])
    assert np.allclose(gapped["value"], full["value"], atol=0.5)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda h: h.iloc[-50:], "the history starts 2001-01-20; the model reads 104 W-SAT steps"),
        (lambda h: pd.concat([h, h.iloc[-1:]]), "date 2001-12-29 is given twice"),
        (
            lambda h: h.assign(date=h["date"].where(h.index != h.index[-1], "2001-12-30")),
            "not on the model's W-SAT",
        ),
        (
            lambda h: h.assign(value=h["value"].where(h.index != h.index[3], np.inf)),
            "record 3: 'value' inf is not a finite number",
        ),
        (lambda h: h.assign(date=h["date"].where(h.index != h.index[0], "soon")), "record 0: 'date' 'soon'"),
        (lambda h: h.drop(columns="date"), "every record needs 'date' and 'value' (missing 'date')"),
    ],
)
@pytest.mark.slow
def test_a_bad_history_is_one_line(forecaster, change, message):
    model = loading.load(forecaster).pyfunc()
    with pytest.raises(MlflowException) as error:
        model.predict(change(history(104)))
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1
