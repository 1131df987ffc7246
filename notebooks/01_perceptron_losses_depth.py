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
#
# What you train here is **sandboxed**: it registers no model, moves no `champion`, and is left
# out of `make report`; `pipeline.runs(task, sandbox=True)` shows it beside the project's own runs
# (marked `sandbox`). Only `make train-…` and `make retrain` change production.

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
from pipeline.lecture import exercises

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
# Both are the `mlp-regressor` family: this is its Keras code, as the pipeline runs it
# (`hidden_units` is `[256]` for the wide one, `[16, 16, 16, 16]` for the deep one).

# %%
pipeline.show("mlp-deep")

# %%
wide = pipeline.train("mlp-wide", epochs=EPOCHS, limit=LIMIT)
deep = pipeline.train("mlp-deep", epochs=EPOCHS, limit=LIMIT)
{t.experiment: (t.metric, round(t.value, 4), int(t.metrics["model_params"])) for t in (wide, deep)}

# %% [markdown]
# Keras' own account of each trained model. A Dense layer has (inputs + 1)·units weights: one per
# input and a bias, per unit. The wide net: (1 + 1)·256 + (256 + 1)·1 = 769; the deep one
# (1 + 1)·16 + 3·(16 + 1)·16 + (16 + 1)·1 = 865, as Keras counts.

# %%
wide.summary()

# %%
deep.summary()

# %%
wide.figure("fitted_curve.png")

# %%
deep.figure("fitted_curve.png")

# %% [markdown]
# ## Your own network, tracked like the families
#
# `pipeline.fit` trains any Keras model on an experiment's data and objective (its splits,
# EarlyStopping, per-epoch metrics, test metrics and figures), as a run of the same task under
# your name. Change the layers and run it again.

# %%
import keras
from keras import layers

my_mlp = keras.Sequential(
    [
        keras.Input(shape=(1,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(1),  # linear: any real number
    ],
    name="my-mlp",
)
mine = pipeline.fit(my_mlp, "mlp-deep", epochs=EPOCHS, limit=LIMIT)
mine.metric, round(mine.value, 4), int(mine.metrics["model_params"])

# %%
mine.figure("fitted_curve.png")

# %% [markdown]
# The latest run of each experiment of the task, as `make report` shows them, and yours beside
# them (`sandbox`: yes). The runs are in the MLflow UI (`make ui` serves it).

# %%
pipeline.runs("function-approximation", sandbox=True)

# %% [markdown]
# ## Exercises
#
# Write your answer in place of the `...`, run the cell, then the check below it.
#
# **1. A perceptron that computes AND.** Two inputs, each 0 or 1, one neuron with a step
# activation: output 1 when w·x + b > 0. Choose the weights and the bias so that it fires for
# (1, 1) only.

# %% tags=["answer:perceptron-and"]
WEIGHTS = [..., ...]  # w1, w2
BIAS = ...

# %% tags=["check:perceptron-and"]
exercises.perceptron_and(WEIGHTS, BIAS)

# %% [markdown]
# **2. A step too far.** With the gradient-step example's data, find a learning rate η for which
# one step makes the loss *larger* than before.

# %% tags=["answer:overshoot"]
LEARNING_RATE = ...

# %% tags=["check:overshoot"]
exercises.overshooting_step(LEARNING_RATE)

# %% [markdown]
# **3. Count the weights.** Without running a model: how many weights would `mlp-deep` (one
# input, one output) have with three hidden layers of 32 units instead of four of 16?

# %% tags=["answer:deep-weights"]
DEEP_WEIGHTS = ...

# %% tags=["check:deep-weights"]
exercises.weights_of("mlp-deep", DEEP_WEIGHTS, hidden_units=[32, 32, 32])

# %%
print("MLflow UI:", deep.link)
