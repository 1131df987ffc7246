"""The Keras behind the lecture: a family's model code as the training core runs it
(`pipeline.show`), and a model's layers with the lecture's formulas beside Keras' own numbers.

    code("cnn")          the cnn family's `build` and the model code it calls, as Python
    layer_counts(model)  per layer: output shape, the output-size formula (n + 2p − k)/s + 1, the
                         parameter formula, Keras' count (trained and not), why they differ
"""

from __future__ import annotations

import dataclasses
import dis
import importlib
import inspect
import math
import types

from pipeline import models

# not the model: what a family checks before building (shown by the error it raises instead),
# how it resolves its `auto` knobs (the run's params show the values) and its error messages
LEFT_OUT = ("check", "resolve", "too_small")


@dataclasses.dataclass(frozen=True)
class Code:
    """Python source; Jupyter shows it highlighted (markdown), print() as it is."""

    title: str
    source: str

    def _repr_markdown_(self) -> str:
        return f"**{self.title}**\n\n```python\n{self.source}```\n"

    def __str__(self) -> str:
        return f"# {self.title}\n{self.source}"


def called(function: types.FunctionType) -> list[types.FunctionType]:
    """The model-family functions `function` names (directly, or as `module.name`), in order."""
    codes = [function.__code__]
    codes += [c for c in function.__code__.co_consts if isinstance(c, types.CodeType)]  # its lambdas
    names = [n for c in codes for n in c.co_names]  # globals and attributes
    # a global's name, not an attribute's (`params.head` is not the function `head`)
    loaded = [i.argval for c in codes for i in dis.get_instructions(c) if i.opname == "LOAD_GLOBAL"]
    found = []
    for name in dict.fromkeys(loaded):
        value = function.__globals__.get(name)
        if isinstance(value, types.ModuleType) and value.__name__.startswith(models.__name__):
            found += [getattr(value, n) for n in names if inspect.isfunction(getattr(value, n, None))]
        elif inspect.isfunction(value):
            found.append(value)
    return [
        f for f in found if f.__module__.startswith(models.__name__) and not f.__name__.startswith(LEFT_OUT)
    ]


def code(family: str) -> Code:
    """The family's `build` first, then each model function it calls (depth first), each once."""
    build = importlib.import_module(models.declaration(family).module).FAMILY.build
    shown, todo = [], [build]
    while todo:
        function = todo.pop(0)
        if function in shown:
            continue
        shown.append(function)
        todo = [f for f in called(function) if f not in shown] + todo
    sources = [f"# {f.__module__}.{f.__name__}\n{inspect.getsource(f)}" for f in shown]
    return Code(f"the `{family}` family's model ({build.__module__})", "\n".join(sources))


# --------------------------------------------------------------------------- formulas beside Keras


def pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(layer, padded: tuple[int, int], size: tuple[int, int]) -> str:
    """The lecture's (n + 2p − k)/s + 1 for each of rows and columns, with the layer's numbers."""
    kernel = pair(getattr(layer, "kernel_size", None) or layer.pool_size)
    strides = pair(layer.strides)
    parts = []
    for n, p, k, s in zip(size, padded, kernel, strides, strict=True):
        if layer.padding == "same":  # Keras pads k − 1 in all (the odd one at the bottom/right)
            parts.append(f"same: ⌈{n}/{s}⌉ = {math.ceil(n / s)}")
        else:
            parts.append(f"({n} + 2·{p} − {k})/{s} + 1 = {(n + 2 * p - k) // s + 1}")
    return f"{parts[0]} (rows and columns)" if parts[0] == parts[1] else " × ".join(parts)


def parameters(layer) -> tuple[str, int | None, str]:
    """(the lecture's formula with the layer's numbers, its count, why Keras may differ)."""
    import keras

    c_in = layer.input.shape[-1] if isinstance(layer.input, keras.KerasTensor) else None
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        bias = int(layer.use_bias)
        note = "" if bias else "no bias: batch norm's β is the shift"
        return f"({kh}·{kw}·{c_in} + {bias})·{layer.filters}", (kh * kw * c_in + bias) * layer.filters, note
    if isinstance(layer, keras.layers.Conv1D):
        (k,), bias = layer.kernel_size, int(layer.use_bias)
        return f"({k}·{c_in} + {bias})·{layer.filters}", (k * c_in + bias) * layer.filters, ""
    if isinstance(layer, keras.layers.Dense):
        bias = int(layer.use_bias)
        return f"({c_in} + {bias})·{layer.units}", (c_in + bias) * layer.units, ""
    if isinstance(layer, keras.layers.BatchNormalization):
        return f"4·{c_in}", 4 * c_in, "γ, β trained; mean, variance tracked"
    if isinstance(layer, keras.layers.Embedding):
        size, dim = layer.input_dim, layer.output_dim
        return f"{size}·{dim}", size * dim, "a vector of numbers per symbol"
    if isinstance(layer, keras.layers.LSTM):
        u = layer.units
        return f"4·(({c_in} + {u})·{u} + {u})", 4 * ((c_in + u) * u + u), "4 gates, each Dense on [x, h]"
    if isinstance(layer, keras.layers.GRU):
        u = layer.units
        return (
            f"3·(({c_in} + {u})·{u} + 2·{u})",
            3 * ((c_in + u) * u + 2 * u),
            "3 gates; reset_after: 2 biases",
        )
    if isinstance(layer, keras.layers.SimpleRNN):
        u = layer.units
        return f"({c_in} + {u})·{u} + {u}", (c_in + u) * u + u, "h = tanh(W x + U h + b)"
    return "", None, ""


def weights(variables) -> int:
    return sum(math.prod(v.shape) for v in variables)


def layer_counts(model):
    """A pandas DataFrame, one row per layer with weights or a changed shape: its output shape, the
    output-size formula (convolutions and pooling), the parameter formula and its count beside
    Keras' (`params`, split into `trained` and `not trained`), and a note where they differ."""
    import keras
    import pandas as pd

    rows, padded = [], (0, 0)
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:])
        if isinstance(layer, keras.layers.ZeroPadding2D):
            (top, _), (left, _) = layer.padding
            padded = (top, left)
            continue
        size = ""
        if isinstance(layer, keras.layers.Conv2D | keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            size = output_size(layer, padded, tuple(layer.input.shape[1:3]))
            padded = (0, 0)
        formula, count, note = parameters(layer)
        if not (layer.count_params() or size or isinstance(layer, keras.layers.Flatten)):
            continue
        if layer.count_params() and not layer.trainable_weights:
            note = "frozen: set, not trained"
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output shape": shape,
                "output size (n + 2p − k)/s + 1": size,
                "formula": formula,
                "by formula": "" if count is None else count,
                "params (Keras)": layer.count_params(),
                "trained": weights(layer.trainable_weights),
                "not trained": weights(layer.non_trainable_weights),
                "note": note,
            }
        )
    table = pd.DataFrame(rows).set_index("layer").rename_axis(None)
    total = sum(count for count in table["by formula"] if count != "")
    table.loc["total"] = ["", "", "", "", total, model.count_params(), *totals(model), ""]
    return table.loc[:, (table != "").any()]  # no empty column (no convolution: no output sizes)


def totals(model) -> tuple[int, int]:
    """(trained, not trained) weights of the whole model."""
    return weights(model.trainable_weights), weights(model.non_trainable_weights)
