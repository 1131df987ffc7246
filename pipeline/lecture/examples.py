"""The lecture's worked examples, computed by the product's own builders and Keras layers.

Each example returns an `Example`: its numbers (JSON: at least `output`), the matrices a student
reads (printed and drawn) and the params that describe it. The convolutions go through the cnn
family's own `conv` (its ZeroPadding2D + Conv2D path) with the lecture's kernel set as the
weights, pooling through its `pool`, the perceptron through a Dense layer and the mlp family,
the gradient step through the training core's optimizer: the pipeline's CNN does exactly this.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from pipeline.models import cnn, mlp
from pipeline.specs import ClassifierSpec

GRID = np.arange(9, dtype=np.float32).reshape(3, 3)  # the lecture's 3x3 input: 0..8
KERNEL = np.array([[0, 1], [2, 3]], dtype=np.float32)  # its 2x2 kernel


@dataclasses.dataclass
class Example:
    name: str
    title: str  # one line: what it shows
    numbers: dict[str, Any]  # the JSON artifact (and `--json`): at least `output`
    panels: list[dict]  # matrices to print and draw: {"title", "matrix", "shaded"?, "box"?}
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # logged as the run's params
    notes: list[str] = dataclasses.field(default_factory=list)  # printed under the matrices
    figure: Any = None  # a figure instead of the panels' grids (the parameter counts' bar chart)


def plain(array) -> Any:
    """Nested lists, whole numbers as ints: [[19, 25], [37, 43]]."""
    array = np.asarray(array, dtype=np.float64)
    if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64).tolist()
    return np.round(array, 6).tolist()


def panel(title: str, matrix, shaded=None, box=None) -> dict:
    return {"title": title, "matrix": np.atleast_2d(np.asarray(matrix)), "shaded": shaded, "box": box}


# --------------------------------------------------------------------------- convolution


def conv_params(kernel_size, strides=1, padding: Any = "valid") -> cnn.Params:
    """The cnn family's params for one Conv2D (no batch norm, so it keeps its bias)."""
    return cnn.Params(
        filters=(1,),
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        activation="relu",
        batch_norm=False,
        pooling="none",
        pool_size=2,
        pool_every=0,
        dropout=0.0,
        dense_units=1,
    )


def convolve(image: np.ndarray, kernels: np.ndarray, strides=1, padding: Any = "valid"):
    """`image` (H, W, C_in) through the cnn family's conv block with `kernels` (kh, kw, C_in, C_out)
    as its weights and a zero bias; returns (the Conv2D's output (H', W', C_out), the grid it read
    (the ZeroPadding2D's output, or the image), the Conv2D layer)."""
    kh, kw, _, filters = kernels.shape
    params = dataclasses.replace(conv_params((kh, kw), strides, padding), filters=(filters,))
    inputs = keras.Input(shape=image.shape, name="image")
    block = keras.Model(inputs, cnn.conv(inputs, filters, params, 1))
    layer = block.get_layer("conv1")
    layer.set_weights([kernels, np.zeros(filters, np.float32)])
    padded = block.get_layer("pad1").output if "pad1" in [x.name for x in block.layers] else inputs
    probe = keras.Model(inputs, [layer.output, padded])  # before the activation: the plain sum
    out, grid = probe(image[np.newaxis].astype(np.float32))
    return np.asarray(out)[0], np.asarray(grid)[0], layer


def single(kernel: np.ndarray) -> np.ndarray:
    return kernel.reshape(*kernel.shape, 1, 1)


def ring(shape, pad: tuple[int, int, int, int]) -> np.ndarray:
    """Mask of the padding cells: (top, bottom, left, right) rows/columns around the image."""
    top, bottom, left, right = pad
    mask = np.ones(shape, bool)
    mask[top : shape[0] - bottom, left : shape[1] - right] = False
    return mask


def conv_valid() -> Example:
    out, _, _ = convolve(GRID[..., None], single(KERNEL))
    flipped, _, _ = convolve(GRID[..., None], single(KERNEL[::-1, ::-1]))
    out, flipped = out[..., 0], flipped[..., 0]
    return Example(
        "conv-valid",
        'cross-correlation, no padding: Conv2D(padding="valid") slides the kernel as it is',
        {"input": plain(GRID), "kernel": plain(KERNEL), "output": plain(out), "flipped": plain(flipped)},
        [
            panel("input 3x3", GRID, box=(0, 0, 2, 2)),
            panel("kernel 2x2", KERNEL),
            panel("output (Keras) 2x2", out, box=(0, 0, 1, 1)),
            panel("true convolution (kernel flipped)", flipped),
        ],
        {"kernel_size": [2, 2], "padding": "valid", "strides": 1},
        [
            "output[0][0] = 0*0 + 1*1 + 3*2 + 4*3 = 19: the kernel is not flipped (cross-correlation)",
            "a textbook convolution flips it first ([[3, 2], [1, 0]]): that gives 'flipped'",
        ],
    )


def conv_padding() -> Example:
    out, grid, _ = convolve(GRID[..., None], single(KERNEL), padding=1)
    out = out[..., 0]
    return Example(
        "conv-padding",
        "the same kernel with one ring of zeros around the input (padding 1): 3x3 -> 4x4",
        {"input": plain(GRID), "padded": plain(grid[..., 0]), "kernel": plain(KERNEL), "output": plain(out)},
        [
            panel("input, padding 1 (shaded)", grid[..., 0], ring((5, 5), (1, 1, 1, 1)), box=(0, 1, 2, 2)),
            panel("kernel 2x2", KERNEL),
            panel("output 4x4", out, box=(0, 1, 1, 1)),
        ],
        {"kernel_size": [2, 2], "padding": 1, "strides": 1},
        ["output size = (n + 2p - k) / s + 1 = (3 + 2 - 2) / 1 + 1 = 4 per side"],
    )


def conv_stride() -> Example:
    out, grid, layer = convolve(GRID[..., None], single(KERNEL), strides=(3, 2), padding=1)
    out = out[..., 0]
    return Example(
        "conv-stride",
        "padding 1 and strides (3, 2): 3 rows down, 2 columns across per step",
        {"padded": plain(grid[..., 0]), "kernel": plain(KERNEL), "output": plain(out), "strides": [3, 2]},
        [
            panel("input, padding 1 (shaded)", grid[..., 0], ring((5, 5), (1, 1, 1, 1)), box=(3, 2, 2, 2)),
            panel("kernel 2x2", KERNEL),
            panel("output 2x2", out, box=(1, 1, 1, 1)),
        ],
        {"kernel_size": [2, 2], "padding": 1, "strides": list(layer.strides)},
        [
            "Keras orders strides and kernel sizes (rows, cols) = (height, width): "
            "model.strides: [3, 2] in params.yaml",
            "rows: (3 + 2 - 2) // 3 + 1 = 2 · cols: (3 + 2 - 2) // 2 + 1 = 2",
        ],
    )


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": total padding max((out - 1)·s + k - n, 0), the odd one at the bottom/right."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_same() -> Example:
    same, _, _ = convolve(GRID[..., None], single(KERNEL), padding="same")
    explicit, grid, _ = convolve(GRID[..., None], single(KERNEL), padding=1)
    top, bottom = same_padding(3, 2, 1)
    same_grid = np.pad(GRID, ((top, bottom), (top, bottom)))
    return Example(
        "conv-same",
        'Keras "same" beside explicit padding 1: for an even kernel "same" pads only bottom/right',
        {"output": plain(same[..., 0]), "explicit": plain(explicit[..., 0]), "same_padding": [top, bottom]},
        [
            panel(
                '"same": padded bottom/right',
                same_grid,
                ring((4, 4), (top, bottom, top, bottom)),
                (2, 2, 2, 2),
            ),
            panel('"same" output 3x3', same[..., 0], box=(2, 2, 1, 1)),
            panel("padding 1: every side", grid[..., 0], ring((5, 5), (1, 1, 1, 1))),
            panel("padding 1 output 4x4", explicit[..., 0]),
        ],
        {"kernel_size": [2, 2], "padding": "same vs 1", "strides": 1},
        [
            f'"same" keeps 3x3: a 2x2 kernel needs 1 row and 1 column of padding in all; '
            f"Keras puts {top} at the top/left and {bottom} at the bottom/right",
            "so its output is the explicit output without its first row and column",
        ],
    )


RGB_KERNELS = np.array(
    [
        [[[0, 1], [1, 0], [0, 0]], [[1, 0], [0, 1], [0, 0]]],
        [[[2, 0], [0, 1], [0, 0]], [[3, 1], [1, 0], [1, 1]]],
    ],
    dtype=np.float32,
)  # (kh, kw, c_in = 3, c_out = 2)


def conv_rgb() -> Example:
    image = np.stack([GRID, np.ones((3, 3)), GRID[::-1, ::-1]], axis=-1).astype(np.float32)  # R, G, B
    out, _, layer = convolve(image, RGB_KERNELS)
    parts = [convolve(image[..., c : c + 1], RGB_KERNELS[:, :, c : c + 1, :1])[0][..., 0] for c in range(3)]
    h, w, c_in, k = RGB_KERNELS.shape
    counts = {
        "keras": layer.count_params(),
        "formula": (h * w * c_in + 1) * k,
        "one_channel": (h * w + 1) * k,
    }
    names = "RGB"
    return Example(
        "conv-rgb",
        "three input channels: one 2-D kernel per channel, the results summed, per output channel",
        {"output": plain(out[..., 0]), "outputs": [plain(out[..., i]) for i in range(k)], "params": counts},
        [
            *(panel(f"input {names[c]}", image[..., c], box=(0, 0, 2, 2)) for c in range(3)),
            *(panel(f"kernel {names[c]} (filter 1)", RGB_KERNELS[:, :, c, 0]) for c in range(3)),
            *(panel(f"{names[c]} * kernel {names[c]}", parts[c]) for c in range(3)),
            panel("filter 1 = R + G + B", out[..., 0], box=(0, 0, 1, 1)),
            panel("filter 2", out[..., 1]),
        ],
        {"kernel_size": [2, 2], "in_channels": c_in, "filters": k},
        [
            f"parameters: (h*w*c_in + 1)*k = (2*2*3 + 1)*2 = {counts['formula']} (Keras: {counts['keras']})",
            f"the one-channel formula (h*w + 1)*k would give {counts['one_channel']}: each kernel is 2x2x3",
        ],
    )


# --------------------------------------------------------------------------- pooling


POOL_INPUT = np.array([[1, 3, 2, 9], [5, 6, 1, 7], [4, 2, 8, 0], [3, 1, 5, 6]], dtype=np.float32)


def pooling() -> Example:
    inputs = keras.Input(shape=(4, 4, 1))
    results = {}
    for kind in ("max", "min", "avg"):
        params = dataclasses.replace(conv_params(2), pooling=kind, pool_size=2)
        model = keras.Model(inputs, cnn.pool(inputs, params, 1))  # the cnn family's pooling layer
        results[kind] = np.asarray(model(POOL_INPUT[np.newaxis, ..., np.newaxis]))[0, ..., 0]
    return Example(
        "pooling",
        "2x2 pooling, stride 2, on a 4x4 input: max, min (this package's MinPooling2D) and average",
        {"input": plain(POOL_INPUT), "output": {k: plain(v) for k, v in results.items()}},
        [
            panel("input 4x4", POOL_INPUT, box=(0, 2, 2, 2)),
            *(panel(f"{kind} pooling", v, box=(0, 1, 1, 1)) for kind, v in results.items()),
        ],
        {"pool_size": 2, "pooling": "max, min, avg"},
        ["no weights: pooling layers have 0 parameters; each halves the map (4x4 -> 2x2)"],
    )


# --------------------------------------------------------------------------- neurons and learning


def perceptron() -> Example:
    x = np.array([[6, 4, 5]], dtype=np.float32)
    weights = np.array([[-2, 0.5], [2, -3], [1, 1]], dtype=np.float32)  # row i: from input i
    biases = np.array([2, 2], dtype=np.float32)
    dense = keras.layers.Dense(2)  # what the mlp family stacks
    dense.build((None, 3))
    dense.set_weights([weights, biases])
    z = np.asarray(dense(x))[0]
    model = mlp.build(mlp.Params((), "relu", 0.0), ClassifierSpec((3,), 2, 0))  # hidden_units: []
    model.get_layer("probabilities").set_weights([weights, biases])
    outputs = {
        "step": np.asarray(keras.ops.where(z > 0, 1.0, 0.0)),
        "sigmoid": np.asarray(keras.activations.sigmoid(z)),
        "relu": np.asarray(keras.activations.relu(z)),
        "softmax (mlp, hidden_units: [])": np.asarray(model(x))[0],
    }
    return Example(
        "perceptron",
        "z = w0 + x·W for x = (6, 4, 5); outputs after step, sigmoid, ReLU (and the mlp's softmax)",
        {"x": plain(x[0]), "weights": plain(weights), "biases": plain(biases), "z": plain(z)}
        | {"output": {k.split(" ")[0]: plain(v) for k, v in outputs.items()}},
        [
            panel("x", x),
            panel("W (row i: from input i)", weights),
            panel("w0 (biases)", biases),
            panel("z = w0 + x·W", z),
            *(panel(name, value) for name, value in outputs.items()),
        ],
        {"inputs": 3, "units": 2},
        ["z1 = 2 + 6*(-2) + 4*2 + 5*1 = 3 · z2 = 2 + 6*0.5 + 4*(-3) + 5*1 = -2"],
    )


def losses() -> Example:
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    p = np.array([0.9, 0.2, 0.6, 0.3], dtype=np.float32)
    squared = (y - p) ** 2
    cross = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    by_hand = {"mse": float(squared.mean()), "binary_crossentropy": float(cross.mean())}
    with_keras = {
        "mse": float(keras.losses.MeanSquaredError()(y, p)),
        "binary_crossentropy": float(keras.losses.BinaryCrossentropy()(y, p)),
    }
    return Example(
        "losses",
        "mean squared error and binary cross-entropy of 4 predictions, by hand and by Keras",
        {"y": plain(y), "y_hat": plain(p), "output": by_hand, "keras": with_keras},
        [
            panel("y", y),
            panel("ŷ", p),
            panel("(y - ŷ)²", squared),
            panel("-[y log ŷ + (1-y) log(1-ŷ)]", cross),
        ],
        {"examples": 4},
        [
            f"MSE = mean (y - ŷ)² = {by_hand['mse']:.6f} (Keras {with_keras['mse']:.6f})",
            f"BCE = {by_hand['binary_crossentropy']:.6f} (Keras {with_keras['binary_crossentropy']:.6f}, "
            "which clips ŷ to [1e-7, 1 - 1e-7])",
        ],
    )


def gradient_step(learning_rate: float = 0.1) -> Example:
    import tensorflow as tf

    from pipeline.training.keras_loop import make_optimizer

    x = np.array([[1, 2], [3, 1]], dtype=np.float32)
    y = np.array([[5], [4]], dtype=np.float32)
    dense = keras.layers.Dense(1)  # ŷ = x·w + b
    dense.build((None, 2))
    dense.set_weights([np.array([[0.5], [-0.5]], np.float32), np.zeros(1, np.float32)])
    before = [np.asarray(w) for w in dense.get_weights()]
    loss = keras.losses.MeanSquaredError()
    with tf.GradientTape() as tape:
        j_before = loss(y, dense(x))
    gradients = tape.gradient(j_before, [v.value for v in dense.trainable_variables])
    by_hand = 2 * x.T @ (x @ before[0] + before[1] - y) / len(x)  # ∂J/∂w = 2/n Σ (ŷ - y) x
    make_optimizer("sgd", learning_rate).apply(gradients, dense.trainable_variables)  # the core's SGD
    after = [np.asarray(w) for w in dense.get_weights()]
    j_after = float(loss(y, dense(x)))
    numbers = {
        "learning_rate": learning_rate,
        "weights_before": plain(before[0][:, 0]),
        "bias_before": plain(before[1]),
        "gradient": plain(np.asarray(gradients[0])[:, 0]),
        "gradient_by_hand": plain(by_hand[:, 0]),
        "bias_gradient": plain(np.asarray(gradients[1])),
        "output": {"weights": plain(after[0][:, 0]), "bias": plain(after[1])},
        "loss": {"before": float(j_before), "after": j_after},
    }
    return Example(
        "gradient-step",
        f"one plain SGD step W <- W - η ∂J/∂W (η = {learning_rate}) on ŷ = x·w + b, J = MSE",
        numbers,
        [
            panel("x (2 examples)", x),
            panel("y", y),
            panel("w, b before", np.r_[before[0][:, 0], before[1]]),
            panel("∂J/∂w, ∂J/∂b", np.r_[np.asarray(gradients[0])[:, 0], np.asarray(gradients[1])]),
            panel("w, b after", np.r_[after[0][:, 0], after[1]]),
        ],
        {"learning_rate": learning_rate, "optimizer": "sgd"},
        [f"J before {float(j_before):.4f} -> after one step {j_after:.4f}"],
    )


# --------------------------------------------------------------------------- parameter counts


def formula(layer) -> str:
    """The lecture's count for a Conv2D or Dense layer, written out."""
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        return f"({kh}*{kw}*{layer.input.shape[-1]} + {int(layer.use_bias)})*{layer.filters}"
    if isinstance(layer, keras.layers.Dense):
        return f"({layer.input.shape[-1]} + {int(layer.use_bias)})*{layer.units}"
    if isinstance(layer, keras.layers.BatchNormalization):
        return f"4*{layer.input.shape[-1]} (gamma, beta trained; mean, variance tracked)"
    return ""


def layer_rows(model) -> list[dict]:
    return [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "params": layer.count_params(),
            "formula": formula(layer),
        }
        for layer in model.layers
        if layer.count_params() or isinstance(layer, keras.layers.Flatten | keras.layers.MaxPooling2D)
    ]


def count_lines(name: str, rows: list[dict]) -> list[str]:
    lines = [f"{name}: {sum(r['params'] for r in rows):,} parameters"]
    lines += [f"  {r['layer']:<14} {r['type']:<19} {r['params']:>8,}  {r['formula']}".rstrip() for r in rows]
    return [*lines, ""]


def bars(tables: dict[str, list[dict]]):
    from pipeline import plots

    fig, axes = plots.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], tables.items(), strict=True):
        ax.barh([r["layer"] for r in rows][::-1], [r["params"] for r in rows][::-1], color="tab:blue")
        ax.set(
            title=f"{name}: {sum(r['params'] for r in rows):,} parameters",
            xlabel="parameters",
            xscale="symlog",
        )
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def parameter_counts(experiments=("mlp", "cnn-same", "cnn-valid")) -> Example:
    """The default MLP and CNNs of params.yaml, built by their families, counted layer by layer."""
    from pipeline import config, data
    from pipeline.training.plan import make_plan

    params = config.load_params()
    tables = {}
    for name in experiments:
        plan = make_plan(params, name)
        dataset = data.load(plan.exp.dataset, params)
        _, spec = plan.objective.prepare(dataset, plan.train, plan.objective_params)
        tables[name] = layer_rows(plan.family.build(plan.model, spec))
    totals = {name: sum(r["params"] for r in rows) for name, rows in tables.items()}
    return Example(
        "params",
        "parameters of the default MLP and CNNs (params.yaml), layer by layer, with the formula per row",
        {"output": totals, "layers": tables},
        [],
        {"experiments": list(experiments)},
        [
            *(line for name, rows in tables.items() for line in count_lines(name, rows)),
            "the CNNs' Conv2D rows have + 0, not + 1: BatchNormalization right after each one adds its",
            "own shift (beta) per filter, which would cancel a conv bias, so the conv has none",
            "Conv2D weights do not depend on the image size; the Dense layer after Flatten does",
            "(cnn-valid's smaller maps give it fewer): on 8x8 digits that dense head, not the",
            "convolutions, makes the CNNs bigger than the MLP",
        ],
        bars(tables),
    )


EXAMPLES = {
    "perceptron": perceptron,
    "losses": losses,
    "gradient-step": gradient_step,
    "conv-valid": conv_valid,
    "conv-padding": conv_padding,
    "conv-stride": conv_stride,
    "conv-same": conv_same,
    "conv-rgb": conv_rgb,
    "pooling": pooling,
    "params": parameter_counts,
}
