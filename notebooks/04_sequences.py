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
# section 7).

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT windows (None: all; for text, windows of 128 characters)

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np

# the project folder: params.yaml, data/, and the MLflow store mlruns/ (`make notebooks` sets it)
os.environ.setdefault("PIPELINE_ROOT", str(Path.cwd().parent))
import pipeline

# %%
forecasters = {
    name: pipeline.train(name, epochs=EPOCHS, limit=LIMIT)
    for name in ("lstm", "rnn", "dense-window", "naive", "seasonal-naive")
}
{name: round(t.value, 4) for name, t in forecasters.items()}  # test RMSE in ppm

# %%
forecasters["lstm"].figure("forecast.png")

# %%
pipeline.runs("co2-forecast")

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

# %%
print("MLflow UI:", forecasters["lstm"].link)

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

# %%
writers = {
    name: pipeline.train(name, epochs=EPOCHS, limit=LIMIT) for name in ("char-ngram", "char-rnn", "char-lstm")
}
{name: round(t.value, 3) for name, t in writers.items()}  # test bits per character

# %% [markdown]
# The same prompt, completed by each: every character drawn from the model's odds, sharpened by
# the temperature (0 would always take the likeliest one, and loops). The networks' runs also log
# `completions_by_epoch.txt`: the prompts completed after every epoch.

# %%
PROMPT = "The default value of "
for name in writers:
    print(f"{name:>10}: {PROMPT}{pipeline.complete(PROMPT, name, length=60, temperature=0.5)!r}")

# %% [markdown]
# ## Short- and long-term memory, in numbers
#
# `pipeline.memory` scores each model on the test text when it may read only the last *m*
# characters, and on closing brackets by how far back their opening bracket is. The n-gram stops
# improving once *m* passes its order; a plain RNN's state fades within a few dozen characters;
# an LSTM's gates keep an open bracket in mind across the window.

# %%
import pandas as pd

pd.concat({name: pipeline.memory(name, sample=500)["bits_per_char"] for name in writers}, axis=1).round(3)
