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
# padding, trained and compared, their Keras code and Keras' own numbers beside the lecture's
# formulas. Every example is a run of the MLflow experiment `lecture`. What you train here is
# sandboxed: no model registered, no `champion` moved, nothing in `make report`.

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT examples (None: all)

# %% tags=["setup"]
# %matplotlib inline
import os
from pathlib import Path

import numpy as np

# the project folder: params.yaml, data/, and the MLflow store mlruns/ (`make notebooks` sets it)
os.environ.setdefault("PIPELINE_ROOT", str(Path.cwd().parent))
import pipeline
from pipeline.lecture import exercises, keras_view

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
# ## The `cnn` family in Keras
#
# The network `cnn-same` and `cnn-valid` train, as the pipeline builds it: Conv2D blocks (each
# with batch normalisation), max pooling, a dense layer, a softmax over the ten digits. The two
# experiments differ only in `model.padding` (params.yaml).

# %%
pipeline.show("cnn-same")

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
same.summary()

# %%
valid_cnn.summary()

# %% [markdown]
# ### The lecture's formulas beside Keras' numbers
#
# For every layer of the trained `cnn-same`: its output size by (n + 2p − k)/s + 1 (Keras'
# `same` pads k − 1 in all, so the size is ⌈n/s⌉), its parameters by (h·w·c_in + 1)·k for a
# Conv2D and (inputs + 1)·units for a Dense layer, and Keras' count, split into trained and not.
#
# - The Conv2D rows read **+ 0**, not + 1: the family builds its convolutions without a bias
#   (`use_bias=not params.batch_norm`), because the batch normalisation right after each adds its
#   own shift β per filter, which would cancel a bias. Same model, one redundant weight per filter
#   fewer.
# - A BatchNormalization layer has 4 numbers per channel: γ and β are trained, the moving mean and
#   variance are tracked from the batches, not trained; Keras counts all four, so *Total params*
#   is larger than *Trainable params* by 2 per channel.
# - The dense layer after `flatten` holds most of the weights: (4·4·64 + 1)·128 = 131,200.

# %%
keras_view.layer_counts(same.model.keras())

# %% [markdown]
# `cnn-valid`: no padding, so each 3×3 convolution takes 2 rows and 2 columns off the map.

# %%
keras_view.layer_counts(valid_cnn.model.keras())

# %%
valid_cnn.figure("confusion_matrix.png")

# %% [markdown]
# The project's runs of the task (what `make report` shows) with yours beside them
# (`sandbox`: yes).

# %%
pipeline.runs("digits-classification", sandbox=True)

# %% [markdown]
# ## Exercises
#
# Write your answer in place of the `...`, run the cell, then the check below it.
#
# **1. A 4×4 output.** A 3×3 kernel slides over an 8×8 digit. Choose the padding (`"valid"`,
# `"same"`, a number of zero rings, or `[rows, cols]`) and the stride so that the output is 4×4.
# The check runs it through the `cnn` family's own conv block.

# %% tags=["answer:output-4x4"]
PADDING = ...
STRIDE = ...

# %% tags=["check:output-4x4"]
exercises.output_4x4(PADDING, STRIDE)

# %% [markdown]
# **2. Count a convolution's weights.** A Conv2D with 64 filters of 3×3 reads a map with 32
# channels, and has a bias. How many parameters does it have?

# %% tags=["answer:conv-params"]
CONV_PARAMS = ...

# %% tags=["check:conv-params"]
exercises.conv_parameters(CONV_PARAMS)

# %% [markdown]
# **3. As good with fewer parameters.** `cnn-valid` has 53,290 parameters, most of them in the
# dense layer after `flatten`. Build a model with fewer than 20,000 whose test accuracy is within
# 2 points of `cnn-valid`'s, or better (8×8×1 images in, 10 class probabilities out; compile it
# yourself to choose its optimizer). `pipeline.fit` trains it on `cnn-valid`'s data with
# `cnn-valid`'s settings, and the check compares it with `cnn-valid`'s run above. The model given
# here is a start, not an answer.

# %% tags=["answer:small-cnn"]
import keras
from keras import layers

my_cnn = keras.Sequential(
    [
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ],
    name="small-cnn",
)

# %%
mine = pipeline.fit(my_cnn, "cnn-valid", epochs=EPOCHS, limit=LIMIT)
mine.summary()

# %% tags=["check:small-cnn"]
exercises.as_good(mine, "cnn-valid", max_params=20_000)

# %%
print("MLflow UI:", same.link)
