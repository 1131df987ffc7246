# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Sequence learning: RNN and LSTM on CO2
#
# The weekly Mauna Loa CO2 series, forecast 4 weeks ahead from the last 104: a plain RNN, an LSTM,
# an MLP on the flattened window, and the baselines a forecaster would otherwise use
# ([docs/lecture.md](../docs/lecture.md), section 7).

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT windows (None: all)

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
