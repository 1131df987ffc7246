"""`pipeline retrieve`: nearest training images in a model's code space, printed, drawn and logged."""

import csv
import io

import mlflow
import numpy as np
import pytest
from PIL import Image

from pipeline import cli, data
from tests.helpers import assert_one_line_error, cli_in_process, loaded, png_header_only, run_cli


def write_png(path, image):
    Image.fromarray(np.round(image[..., 0] * 255).astype("uint8")).save(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("model, overrides", [("pca", []), ("autoencoder", ["--set", "train.epochs=1"])])
def test_retrieve_finds_a_training_image_itself_first(project, capsys, model, overrides):
    assert cli.main(["train", model, "--quiet", "--set", "train.limit=300", *overrides]) == 0
    x_train, y_train = loaded(data.load("digits"), "train")
    queries = [write_png(project / f"q{i}.png", x_train[i]) for i in (3, 10)]
    capsys.readouterr()
    assert cli.main(["retrieve", *queries, "--k", "4", "--model", model]) == 0
    out = capsys.readouterr().out
    assert "q3.png: 4 nearest training images by class" in out and f"#3:{y_train[3]} (" in out
    assert (project / "reports" / "retrieval" / f"{model}.png").stat().st_size > 1000
    runs = mlflow.search_runs(experiment_names=["retrieval"])
    assert list(runs["tags.mlflow.runName"]) == ["retrieve"] and runs["params.k"].iloc[0] == "4"
    assert runs["tags.model_family"].iloc[0] == model
    rows = list(
        csv.DictReader(
            io.StringIO(mlflow.artifacts.load_text(f"runs:/{runs['run_id'].iloc[0]}/neighbours.csv"))
        )
    )
    assert len(rows) == 8 and [r["train_index"] for r in rows if r["rank"] == "1"] == ["3", "10"]


@pytest.mark.slow
def test_bad_queries_and_models_are_one_line_errors(project, capsys):
    """Each refused before TensorFlow is imported; the first in a real process (its exit code and
    stderr), the others in this one (`cli_in_process`), which already has TensorFlow."""
    assert_one_line_error(
        run_cli(project, "retrieve", "x.png"), "'autoencoder' has no finished run", "make train-autoencoder"
    )
    assert_one_line_error(
        cli_in_process(project, capsys, "retrieve", "x.png", "--model", "lstm"),
        "family 'lstm' has no code space",
    )
    assert cli.main(["train", "pca", "--quiet"]) == 0
    (project / "notes.txt").write_text("not an image")
    assert_one_line_error(
        cli_in_process(project, capsys, "retrieve", "notes.txt", "--model", "pca"), "notes.txt: not an image"
    )
    (project / "link.png").symlink_to(project / "notes.txt")
    assert_one_line_error(
        cli_in_process(project, capsys, "retrieve", "link.png", "--model", "pca"), "a symbolic link"
    )
    huge = project / "huge.png"
    Image.new("L", (5000, 4000)).save(huge)
    assert_one_line_error(
        cli_in_process(project, capsys, "retrieve", str(huge), "--model", "pca"),
        "5000x4000 pixels exceeds the limit of 16777216 pixels",
    )
    bomb = png_header_only(project / "bomb.png", 60000, 60000)  # past Pillow's own limit: it raises
    assert_one_line_error(
        cli_in_process(project, capsys, "retrieve", str(bomb), "--model", "pca"),
        "bomb.png: Image size (3600000000 pixels) exceeds limit",
    )
    assert mlflow.get_experiment_by_name("retrieval") is None  # no run was started
