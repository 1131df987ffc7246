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
# without a code ([docs/lecture.md](../docs/lecture.md), section 8). What you train here is
# sandboxed: no model registered, nothing in `make report`.

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
# ## The `autoencoder` family in Keras
#
# An encoder (64 pixels → a code of `latent_dim` numbers) and a decoder (the code → 64 pixels),
# two Keras models chained into one, trained to give back its input (loss: mean squared error).

# %%
pipeline.show("autoencoder")

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
detectors["autoencoder"].summary()

# %% [markdown]
# The encoder and the decoder are one layer each of the whole model (`Functional`). Inside them,
# the lecture's formulas beside Keras' counts: strided convolutions halve the map (`same`:
# ⌈n/s⌉), each Conv2D has (h·w·c_in + 1)·k weights, each Dense (inputs + 1)·units.

# %%
autoencoder = detectors["autoencoder"].model.keras()
keras_view.layer_counts(autoencoder.get_layer("encoder"))

# %%
keras_view.layer_counts(autoencoder.get_layer("decoder"))

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
# What `python -m pipeline retrieve IMAGE` does for an image file, here for a few test digits,
# with the autoencoder trained above.

# %%
from pipeline import data
from pipeline.tools import retrieve

digits = data.load(detectors["autoencoder"].outcome.plan.exp.dataset)
pool, labels = digits.examples("train")
queries = splits.x_test.read([0, 1, 2])
distances, indices = retrieve.neighbours(autoencoder, queries, pool, k=8)
retrieve.grid(queries, pool.read(indices), labels, distances, indices, digits.class_names, "nearest in code space")

# %% [markdown]
# ## Your own autoencoder
#
# Built as keras-io builds one: an encoder and a decoder, chained. The task reads the codes of
# the sub-model named `encoder` (for retrieval's precision at 10), so name it so. `pipeline.fit`
# trains it to reconstruct the digits 0–4, on `autoencoder`'s data and settings, and scores it as
# the detectors above.

# %%
import keras
from keras import layers

encoder = keras.Sequential(
    [keras.Input(shape=(8, 8, 1)), layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(8)],
    name="encoder",
)
decoder = keras.Sequential(
    [keras.Input(shape=(8,)), layers.Dense(64, activation="sigmoid"), layers.Reshape((8, 8, 1))],
    name="decoder",
)
my_autoencoder = keras.Sequential([encoder, decoder], name="my-autoencoder")
mine = pipeline.fit(my_autoencoder, "autoencoder", epochs=EPOCHS, limit=LIMIT)
mine.metric, round(mine.value, 4), int(mine.metrics["model_params"])

# %%
pipeline.runs("digits-anomaly", sandbox=True)

# %% [markdown]
# ## Exercises
#
# Write your answer in place of the `...`, run the cell, then the check below it.
#
# **1. PCA as the linear autoencoder.** How many principal components keep 90 % of the variance
# of the training digits (0–4)? The check fits scikit-learn's PCA on `pca`'s training split.

# %% tags=["answer:pca-components"]
COMPONENTS = ...

# %% tags=["check:pca-components"]
exercises.pca_components(COMPONENTS)

# %% [markdown]
# **2. ROC-AUC by hand.** A detector scores six test images; the 1s are anomalies. The ROC-AUC is
# the share of (anomaly, normal) pairs in which the anomaly has the higher score. What is it?

# %%
exercises.AUC_SCORES, exercises.AUC_LABELS

# %% tags=["answer:roc-auc"]
AUC = ...

# %% tags=["check:roc-auc"]
exercises.roc_auc(AUC)

# %%
print("MLflow UI:", detectors["autoencoder"].link)
