# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Convolutional networks
#
# Convolution, padding, stride, pooling, RGB channels and parameter counts, computed by the `cnn`
# family's own padding, Conv2D and pooling code with the lecture's kernels as its weights
# ([docs/lecture.md](../docs/lecture.md), section 5); then the two CNNs that differ only in their
# padding, trained and compared. Every example is a run of the MLflow experiment `lecture`.

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT examples (None: all)

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np

# the project folder: params.yaml, data/, and the MLflow store mlruns/ (`make notebooks` sets it)
os.environ.setdefault("PIPELINE_ROOT", str(Path.cwd().parent))
import pipeline

# %% [markdown]
# ## Convolution is cross-correlation
#
# The 3×3 input 0..8 and the kernel [[0, 1], [2, 3]]: the kernel slides as it is, unflipped.

# %%
valid = pipeline.example("conv-valid")
valid.numbers["output"], valid.numbers["flipped"]

# %%
valid.figure

# %% [markdown]
# Your own input and kernel through the same code: `convolve` runs the `cnn` family's conv block
# with `kernels` (rows, cols, channels in, filters) as its weights. Change them, or the stride and
# padding (`"valid"`, `"same"`, `1`, `[ph, pw]`).

# %%
from pipeline.lecture.examples import convolve

image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
kernel = np.array([[1, 0], [0, -1]], dtype=np.float32).reshape(2, 2, 1, 1)
output, grid, _ = convolve(image, kernel, strides=1, padding="valid")
output[..., 0]

# %% [markdown]
# ## Padding and stride
#
# One ring of zeros makes the 3×3 input 5×5 and the output 4×4: (n + 2p − k)/s + 1. Keras'
# `padding="same"` pads an even kernel only at the bottom and right. Strides of 3 rows × 2 columns
# skip most windows.

# %%
for name in ("conv-padding", "conv-same", "conv-stride"):
    worked = pipeline.example(name)
    print(f"{name}: {worked.title}\n  output {worked.numbers['output']}")

# %%
pipeline.example("conv-stride").figure

# %% [markdown]
# ## RGB channels, pooling, parameter counts
#
# A filter has one kernel per input channel; their sums add up to one output channel:
# (h·w·c_in + 1)·k parameters. Pooling has no weights. A Conv2D's count does not grow with the
# image, a Dense layer's does.

# %%
rgb = pipeline.example("conv-rgb")
rgb.numbers["params"]

# %%
pooling = pipeline.example("pooling")
pooling.figure

# %%
counts = pipeline.example("params")
counts.numbers["output"]

# %%
counts.figure

# %% [markdown]
# ## `cnn-same` against `cnn-valid`
#
# The same network, `padding: same` against `valid`: valid's maps shrink 8 → 6 → 4, so its dense
# layer has fewer weights. Try `{"model.pooling": "avg"}` or `{"model.kernel_size": 5}`.

# %%
same = pipeline.train("cnn-same", epochs=EPOCHS, limit=LIMIT)
valid_cnn = pipeline.train("cnn-valid", epochs=EPOCHS, limit=LIMIT)
{t.experiment: (t.metric, round(t.value, 4), int(t.metrics["model_params"])) for t in (same, valid_cnn)}

# %%
valid_cnn.figure("confusion_matrix.png")

# %%
pipeline.runs("digits-classification")

# %%
print("MLflow UI:", same.link)
