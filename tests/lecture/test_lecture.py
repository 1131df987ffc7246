"""`pipeline lecture`: every worked example's numbers, computed by the product's own layers."""

import json

import mlflow
import numpy as np
import pytest

from pipeline import cli
from pipeline.lecture import examples as ex
from pipeline.lecture import run as lecture
from tests.helpers import assert_one_line_error, cli_in_process


def test_conv_valid_is_cross_correlation():
    numbers = ex.conv_valid().numbers
    assert numbers["output"] == [[19, 25], [37, 43]]
    assert numbers["flipped"] == [[5, 11], [23, 29]]  # the kernel flipped: a textbook convolution


def test_conv_padding_and_stride():
    assert ex.conv_padding().numbers["output"] == [
        [0, 3, 8, 4],
        [9, 19, 25, 10],
        [21, 37, 43, 16],
        [6, 7, 8, 0],
    ]
    stride = ex.conv_stride()
    assert stride.numbers["output"] == [[0, 8], [6, 8]] and stride.params["strides"] == [3, 2]


def test_the_examples_run_through_the_cnn_familys_padding_and_conv_layers():
    out, grid, layer = ex.convolve(ex.GRID[..., None], ex.single(ex.KERNEL), strides=(3, 2), padding=1)
    assert layer.name == "conv1" and layer.padding == "valid" and layer.strides == (3, 2)  # cnn.conv's path
    assert grid.shape == (5, 5, 1) and grid[0].sum() == 0  # its ZeroPadding2D's output


def test_same_pads_bottom_right_only_for_an_even_kernel():
    numbers = ex.conv_same().numbers
    assert numbers["same_padding"] == [0, 1]
    assert numbers["output"] == [row[1:] for row in numbers["explicit"][1:]]
    assert numbers["output"] == [[19, 25, 10], [37, 43, 16], [7, 8, 0]]


def test_rgb_sums_one_kernel_per_channel_and_counts_the_channels():
    numbers = ex.conv_rgb().numbers
    image = np.stack([ex.GRID, np.ones((3, 3)), ex.GRID[::-1, ::-1]], axis=-1)
    k = ex.RGB_KERNELS
    expected = [
        [float(np.sum(image[i : i + 2, j : j + 2, :] * k[..., 0])) for j in range(2)] for i in range(2)
    ]
    assert numbers["output"] == expected == [[25, 30], [40, 45]] and len(numbers["outputs"]) == 2
    assert numbers["params"] == {"keras": 26, "formula": 26, "one_channel": 10}


def test_pooling_max_min_avg():
    output = ex.pooling().numbers["output"]
    assert output == {"max": [[6, 9], [4, 8]], "min": [[1, 1], [1, 0]], "avg": [[3.75, 4.75], [2.5, 4.75]]}


def test_perceptron():
    numbers = ex.perceptron().numbers
    assert numbers["z"] == [3, -2]
    output = numbers["output"]
    assert output["step"] == [1, 0] and output["relu"] == [3, 0]
    assert output["sigmoid"] == pytest.approx([1 / (1 + np.exp(-3)), 1 / (1 + np.exp(2))], abs=1e-6)
    assert output["softmax"] == pytest.approx(
        [np.exp(3) / (np.exp(3) + np.exp(-2)), np.exp(-2) / (np.exp(3) + np.exp(-2))], abs=1e-5
    )


def test_losses_equal_keras():
    numbers = ex.losses().numbers
    assert numbers["output"]["mse"] == pytest.approx(0.075)
    bce = -np.mean(np.log([0.9, 0.8, 0.6, 0.7]))
    assert numbers["output"]["binary_crossentropy"] == pytest.approx(bce, rel=1e-6)
    assert numbers["keras"] == pytest.approx(numbers["output"], rel=1e-5)


def test_one_gradient_step():
    numbers = ex.gradient_step(0.1).numbers
    assert numbers["gradient"] == pytest.approx([-14.5, -14.0]) == numbers["gradient_by_hand"]
    assert numbers["bias_gradient"] == pytest.approx([-8.5])
    assert numbers["output"]["weights"] == pytest.approx([0.5 + 1.45, -0.5 + 1.4])  # W - η ∂J/∂W
    assert numbers["output"]["bias"] == pytest.approx([0.85])
    assert numbers["loss"] == pytest.approx({"before": 19.625, "after": 6.56})


def test_parameter_counts_of_the_default_networks(project):
    numbers = ex.parameter_counts().numbers
    mlp = (64 + 1) * 256 + (256 + 1) * 128 + (128 + 1) * 10
    convs = 3 * 3 * 1 * 32 + 4 * 32 + 3 * 3 * 32 * 64 + 4 * 64  # no conv bias: batch norm's beta
    same = convs + (4 * 4 * 64 + 1) * 128 + (128 + 1) * 10  # 8x8 -> pooled 4x4
    valid = convs + (2 * 2 * 64 + 1) * 128 + (128 + 1) * 10  # 8 -> 6 -> 4, pooled 2x2
    assert numbers["output"] == {"mlp": mlp, "cnn-same": same, "cnn-valid": valid}
    conv1 = next(r for r in numbers["layers"]["cnn-same"] if r["layer"] == "conv1")
    assert conv1["formula"] == "(3*3*1 + 0)*32" and conv1["params"] == 288


def test_lecture_command_logs_one_run_per_example_and_prints_json(project, capsys):
    assert cli.main(["lecture", "conv-valid", "pooling", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout holds the JSON object only
    assert list(printed) == ["conv-valid", "pooling"]
    assert printed["conv-valid"]["output"] == [[19, 25], [37, 43]]
    runs = mlflow.search_runs(experiment_names=["lecture"])
    assert sorted(runs["tags.mlflow.runName"]) == ["conv-valid", "pooling"]
    run_id = runs[runs["tags.mlflow.runName"] == "conv-valid"]["run_id"].iloc[0]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert names == {"conv-valid.png", "conv-valid.json"}
    assert json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/conv-valid.json"))["output"] == [
        [19, 25],
        [37, 43],
    ]
    assert runs[runs["tags.mlflow.runName"] == "conv-valid"]["params.padding"].iloc[0] == "valid"


def test_console_output_is_small_matrices(project, capsys):
    assert lecture.main(["conv-stride"]) == 0
    out = capsys.readouterr().out
    assert "output 2x2" in out and "0 8" in out and "6 8" in out and "(rows, cols) = (height, width)" in out


def test_every_example_has_an_output_and_an_unknown_one_is_refused(project, capsys):
    assert list(ex.EXAMPLES) == [
        "perceptron", "losses", "gradient-step", "conv-valid", "conv-padding",
        "conv-stride", "conv-same", "conv-rgb", "pooling", "params",
    ]  # fmt: skip
    assert_one_line_error(
        cli_in_process(project, capsys, "lecture", "conv-vaild"), "unknown example 'conv-vaild'", "conv-valid"
    )


@pytest.mark.slow
def test_all_examples_in_one_call(project, capsys):
    assert lecture.main([], as_json=True) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == list(ex.EXAMPLES) and all("output" in v for v in printed.values())
    for name in ("conv-valid", "conv-padding", "conv-stride", "conv-same", "conv-rgb"):
        output = printed[name]["output"]
        assert isinstance(output, list) and all(isinstance(row, list) for row in output)  # rows x columns
    assert printed["perceptron"]["z"] == [3, -2]
    assert len(mlflow.search_runs(experiment_names=["lecture"])) == 10
