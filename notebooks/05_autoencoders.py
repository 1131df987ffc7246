# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Autoencoders: reduction, anomaly detection, retrieval
#
# An autoencoder trained on the digits 0–4 only reconstructs 5–9 badly, so its reconstruction error
# flags them; PCA with as many components is the linear autoencoder, IsolationForest a detector
# without a code ([docs/lecture.md](../docs/lecture.md), section 8).

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
# ## Reduction: 64 pixels to a code of 8
#
# Try `{"objective.latent_dim": 2}`: the run then logs `latent_space.png`, the test digits in the
# 2-D code space.

# %%
detectors = {
    name: pipeline.train(name, epochs=EPOCHS, limit=LIMIT)
    for name in ("autoencoder", "pca", "isolation-forest")
}
{name: round(t.value, 4) for name, t in detectors.items()}  # test ROC-AUC

# %%
detectors["autoencoder"].figure("reconstructions.png")

# %% [markdown]
# ## Anomaly detection: the ROC curves
#
# Each detector's anomaly score on the test digits (normal 0–4 and anomalous 5–9), every
# threshold at once.

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import roc_auc_score, roc_curve

from pipeline.objectives import anomaly

splits = detectors["autoencoder"].outcome.splits  # the test split every detector was scored on
fig, ax = plt.subplots(figsize=(4.8, 4.5))
for name, trained in detectors.items():
    scores = anomaly.predict(trained.model.native(), splits.x_test)
    fpr, tpr, _ = roc_curve(splits.test_is_anomaly, scores)
    ax.plot(fpr, tpr, label=f"{name} ({roc_auc_score(splits.test_is_anomaly, scores):.3f})")
ax.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curves (test)")
ax.legend(loc="lower right");

# %% [markdown]
# ## Retrieval: the nearest training digits in code space
#
# What `python -m pipeline retrieve IMAGE` does for an image file, here for a few test digits.

# %%
from pipeline import data
from pipeline.tools import retrieve

run = retrieve.code_model("autoencoder")  # its latest finished run
digits = data.load(run.data.tags["dataset"])
pool, labels = digits.examples("train")
queries = splits.x_test[[0, 1, 2]]
distances, indices = retrieve.neighbours(retrieve.load(run), queries, pool, k=8)
retrieve.grid(queries, pool, labels, distances, indices, digits.class_names, "nearest in code space")

# %%
pipeline.runs("digits-anomaly")

# %%
print("MLflow UI:", detectors["autoencoder"].link)
