# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Perceptrons, losses, one gradient step, and why go deep
#
# The lecture's first part ([docs/lecture.md](../docs/lecture.md), sections 1–4), computed by the
# pipeline's own layers and optimizer. Every worked example is logged as a run of the MLflow
# experiment `lecture`, every training as a run of its task, as `python -m pipeline` logs them.
# Change a number, rerun the cell.

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
# ## Perceptron recap
#
# Three inputs, two neurons: z = w0 + x·W, then an activation. The numbers come from a Keras
# `Dense` layer with the lecture's weights, and from the `mlp` family with no hidden layer.

# %%
perceptron = pipeline.example("perceptron")
perceptron.numbers["z"], perceptron.numbers["output"]

# %%
perceptron.figure

# %% [markdown]
# The same sum by hand, with NumPy: change `x` or the weights and compare.

# %%
x = np.array(perceptron.numbers["x"], dtype=float)
W = np.array(perceptron.numbers["weights"])
z = np.array(perceptron.numbers["biases"]) + x @ W
{"z": z, "step": (z > 0).astype(int), "sigmoid": 1 / (1 + np.exp(-z)), "relu": np.maximum(z, 0)}

# %% [markdown]
# ## Losses
#
# Mean squared error and binary cross-entropy of four predictions, by hand and by Keras.

# %%
losses = pipeline.example("losses")
losses.numbers["output"]

# %%
y, y_hat = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.3])  # change y_hat
{
    "mse": np.mean((y - y_hat) ** 2),
    "binary_crossentropy": -np.mean(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)),
}

# %% [markdown]
# ## One gradient-descent step
#
# W ← W − η ∂J/∂W on ŷ = x·w + b, by the training core's own SGD optimizer. Try another
# learning rate η: too large and the loss after the step is larger than before.

# %%
step = pipeline.example("gradient-step", learning_rate=0.1)
step.numbers["output"], step.numbers["loss"]

# %%
step.figure

# %% [markdown]
# ## Why go deep: a wide against a deep network
#
# `mlp-wide` (one hidden layer of 256 ReLU units) and `mlp-deep` (four layers of 16) have about
# as many weights and fit the same wavy function. A ReLU network is piecewise linear; each layer
# can fold the pieces of the one before, so depth multiplies the pieces where width adds to them.

# %%
wide = pipeline.train("mlp-wide", epochs=EPOCHS, limit=LIMIT)
deep = pipeline.train("mlp-deep", epochs=EPOCHS, limit=LIMIT)
{t.experiment: (t.metric, round(t.value, 4), int(t.metrics["model_params"])) for t in (wide, deep)}

# %%
wide.figure("fitted_curve.png")

# %%
deep.figure("fitted_curve.png")

# %% [markdown]
# The latest run of each experiment of the task, as `make report` shows them, and the runs in the
# MLflow UI (`make ui` serves it). Try `pipeline.train("mlp-deep", {"model.hidden_units": [8, 8]})`.

# %%
pipeline.runs("function-approximation")

# %%
print("MLflow UI:", deep.link)
