# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Sequence learning: RNN and LSTM on CO2 and on text
#
# The weekly Mauna Loa CO2 series, forecast 4 weeks ahead from the last 104: a plain RNN, an LSTM,
# an MLP on the flattened window, and the baselines a forecaster would otherwise use; then the
# lecture's sentence completion, character by character ([docs/lecture.md](../docs/lecture.md),
# section 7). What you train here is sandboxed: no model registered, no `champion` moved, nothing
# in `make report`.

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT windows (None: all; for text, windows of 128 characters)

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
# ## The recurrent families in Keras
#
# Each network reads the window's one-step changes, scaled (a fixed Conv1D and a Normalization
# layer), and predicts the change from the last level for each week ahead, which is added back:
# the network never has to extrapolate the rising level. Between them, the LSTM family stacks
# `layers.LSTM`, the RNN family `layers.SimpleRNN`, and `dense-window` flattens the weeks into a
# Dense stack, which forgets their order.

# %%
pipeline.show("lstm")

# %%
pipeline.show("rnn")

# %%
pipeline.show("dense-window")

# %%
forecasters = {
    name: pipeline.train(name, epochs=EPOCHS, limit=LIMIT)
    for name in ("lstm", "rnn", "dense-window", "naive", "seasonal-naive")
}
{name: round(t.value, 4) for name, t in forecasters.items()}  # test RMSE in ppm

# %% [markdown]
# Keras' account of the trained networks, and the lecture's formulas beside its counts: an LSTM
# layer has 4·((inputs + units)·units + units) weights (four gates, each a Dense layer on the
# input and the previous state), a SimpleRNN (inputs + units)·units + units.

# %%
forecasters["lstm"].summary()

# %%
keras_view.layer_counts(forecasters["lstm"].model.keras())

# %%
keras_view.layer_counts(forecasters["rnn"].model.keras())

# %%
forecasters["dense-window"].summary()

# %%
forecasters["lstm"].figure("forecast.png")

# %% [markdown]
# ## Vanishing gradients, seen through the gradient's norm
#
# The recurrent runs log `recurrent_grad_norm_1` every epoch: the size of the loss's gradient with
# respect to the recurrent kernel, the weights that carry the state from week to week. In a plain
# RNN the part that comes from early weeks shrinks at every step back; the LSTM's gates keep it.

# %%
import matplotlib.pyplot as plt
import mlflow

fig, ax = plt.subplots(figsize=(6.5, 3.5))
for name in ("rnn", "lstm"):
    history = mlflow.MlflowClient().get_metric_history(forecasters[name].run_id, "recurrent_grad_norm_1")
    ax.plot([m.step + 1 for m in history], [m.value for m in history], marker="o", label=name)
ax.set(xlabel="epoch", ylabel="gradient norm", yscale="log", title="recurrent_grad_norm_1")
ax.legend();

# %% [markdown]
# ## Your own forecaster: a GRU
#
# A model of the data's shape can also be given as a function of its spec (`pipeline.specs`):
# here the window's length and the training split's statistics, for the same front and back end
# as the families (`pipeline.models.windows`). `pipeline.fit` builds it when it starts the run and
# trains it on `lstm`'s data and settings.

# %%
import keras
from keras import layers

from pipeline.models.windows import forecast_levels, scaled_differences


def my_gru(spec):
    levels = keras.Input(shape=(spec.lookback, 1), name="levels")
    x = scaled_differences(levels, spec)  # the weekly changes, scaled
    x = layers.GRU(16)(x)
    return keras.Model(levels, forecast_levels(x, levels, spec), name="my-gru")


mine = pipeline.fit(my_gru, "lstm", epochs=EPOCHS, limit=LIMIT)
mine.metric, round(mine.value, 4), int(mine.metrics["model_params"])

# %%
pipeline.runs("co2-forecast", sandbox=True)

# %% [markdown]
# ## Sentence completion: the next character
#
# The lecture's text example. The Python reference that ships with Python (79 topics, about
# 465,000 characters of English and code; whole topics go to train, validation and test) is read
# one character at a time, and each model predicts the next one: a character n-gram with
# Kneser-Ney smoothing (the baseline: it sees the last few characters only), a plain RNN and an
# LSTM. Every model is scored on the same test characters, each with at least 32 characters
# before it, in **bits per character** (lower is better; a uniform guess over the 104 characters
# costs 6.7 bits).

# %% [markdown]
# Both networks are the `char-recurrent` family: each character is looked up in an embedding,
# the recurrent layer (`SimpleRNN` for `char-rnn`, `LSTM` for `char-lstm`) reads the window, and a
# Dense softmax gives the odds of every next character, at every position of the window at once.

# %%
pipeline.show("char-lstm")

# %%
writers = {
    name: pipeline.train(name, epochs=EPOCHS, limit=LIMIT) for name in ("char-ngram", "char-rnn", "char-lstm")
}
{name: round(t.value, 3) for name, t in writers.items()}  # test bits per character

# %%
writers["char-lstm"].summary()

# %%
keras_view.layer_counts(writers["char-rnn"].model.keras())

# %% [markdown]
# The same prompt, completed by each: every character drawn from the model's odds, sharpened by
# the temperature (0 would always take the likeliest one, and loops). The networks' runs also log
# `completions_by_epoch.txt`: the prompts completed after every epoch.

# %%
PROMPT = "The default value of "
for name in writers:
    print(f"{name:>10}: {PROMPT}{pipeline.complete(PROMPT, writers[name], length=60, temperature=0.5)!r}")

# %% [markdown]
# ## Short- and long-term memory, in numbers
#
# `pipeline.memory` scores each model on the test text when it may read only the last *m*
# characters, and on closing brackets by how far back their opening bracket is. The n-gram stops
# improving once *m* passes its order; a plain RNN's state fades within a few dozen characters;
# an LSTM's gates keep an open bracket in mind across the window.

# %%
import pandas as pd

pd.concat({name: pipeline.memory(t, sample=500)["bits_per_char"] for name, t in writers.items()}, axis=1).round(3)

# %% [markdown]
# ## Exercises
#
# Write your answer in place of the `...`, run the cell, then the check below it.
#
# **1. Why the RNN's gradient shrinks, with numbers.** In a SimpleRNN the state is
# h_t = tanh(W x_t + U h_(t−1) + b); the gradient reaching the input k steps back is multiplied by
# U·tanh′ once per step. Take one unit with U = 0.9 and small inputs (tanh′ ≈ 1): how many steps
# back does the gradient first fall below 1 % of the last step's? The check measures it with
# Keras' GradientTape on such a SimpleRNN.

# %% tags=["answer:vanishing"]
STEPS = ...

# %% tags=["check:vanishing"]
exercises.vanishing_steps(STEPS)

# %% [markdown]
# **2. An LSTM's weights.** How many parameters has `layers.LSTM(32)` reading one number per week?

# %% tags=["answer:lstm-params"]
LSTM_PARAMS = ...

# %% tags=["check:lstm-params"]
exercises.lstm_parameters(LSTM_PARAMS)

# %%
print("MLflow UI:", forecasters["lstm"].link)
