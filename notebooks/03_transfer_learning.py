# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Transfer learning
#
# A CNN trained on the digits 0–4 (`pretrain`) publishes its trunk as a TF Hub module; the digits
# 5–9 are then learnt from 5 labels per class with the module frozen (`transfer-feature`),
# fine-tuned (`transfer-finetune`), or the same architecture from scratch (`transfer-scratch`)
# ([docs/lecture.md](../docs/lecture.md), section 6).
#
# What you train here is sandboxed: no model registered, nothing in `make report`, and the
# module `pretrain` publishes goes to this kernel's sandbox, which the transfer runs below read;
# `models/hub/digits-0-4`, the module `make train-transfer-…` reads, stays as it is.

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT examples (None: all)
SIZES = [1, 5, 20]  # labelled examples per class on the learning curve

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
# ## Publish the hub module
#
# `pretrain` is the `cnn` family's network (its Keras code is in notebook 2) trained on 0–4; its
# trunk, the convolutional blocks up to `flatten`, is written as a hub module (also logged with
# its run).

# %%
pretrain = pipeline.train("pretrain", epochs=EPOCHS, limit=LIMIT)
pretrain.metric, round(pretrain.value, 4)

# %% [markdown]
# ## The `transfer` family in Keras
#
# The module as one Keras layer (`HubLayer`), frozen or not, then a new dense head for the five
# new classes. `mode: scratch` rebuilds the trunk from the module's architecture with random
# weights.

# %%
pipeline.show("transfer")

# %% [markdown]
# ## Frozen, fine-tuned, from scratch

# %%
quick = {"train.fine_tune_epochs": EPOCHS} if EPOCHS else {}  # finetune's second phase
runs = {
    name: pipeline.train(name, quick, epochs=EPOCHS, limit=LIMIT)
    for name in ("transfer-feature", "transfer-finetune", "transfer-scratch")
}
{name: round(t.value, 4) for name, t in runs.items()}

# %% [markdown]
# ### Frozen against trainable weights
#
# Frozen (`transfer-feature`), only the head learns: (features + 1)·classes weights, while the
# module's weights stay as `pretrain` left them (Keras: *Non-trainable params*). The module's own
# count is the trunk's: its Conv2D kernels (no bias: batch norm's β is the bias) and 4 numbers per
# channel for each batch normalisation, (3·3·1)·32 + 4·32 + (3·3·32)·64 + 4·64 = 19,104.

# %%
runs["transfer-feature"].summary()

# %%
keras_view.layer_counts(runs["transfer-feature"].model.keras())

# %% [markdown]
# Fine-tuned (`transfer-finetune`): the head first, then the module unfrozen and trained at a
# lower learning rate. Unfrozen, its kernels and β, γ are trained, 288 + 64 + 18,432 + 128 =
# 18,912 of its 19,104; the batch norms' 192 moving means and variances never are (they stay in
# inference mode: a few labels would wreck them). From scratch (`transfer-scratch`): the same
# trunk with random weights, all of it trained.

# %%
runs["transfer-finetune"].summary()

# %%
keras_view.layer_counts(runs["transfer-finetune"].model.keras())

# %%
runs["transfer-scratch"].summary()

# %%
runs["transfer-finetune"].figure("training_curves.png")

# %% [markdown]
# ## Your own model on the few labels
#
# A small CNN of your own, trained from scratch on `transfer-scratch`'s few labelled digits 5–9
# (its data, EarlyStopping and metrics), beside the three runs above.

# %%
import keras
from keras import layers

my_few = keras.Sequential(
    [
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(5, activation="softmax"),
    ],
    name="my-few-shot-cnn",
)
mine = pipeline.fit(my_few, "transfer-scratch", epochs=EPOCHS, limit=LIMIT)
mine.metric, round(mine.value, 4), int(mine.metrics["model_params"])

# %%
pipeline.runs("digits-transfer", sandbox=True)

# %% [markdown]
# ## The learning curve
#
# Test accuracy per number of labels per class, transfer against scratch: what `make
# transfer-curve` draws (one parent run `transfer-curve` with a nested run per point), here
# sandboxed too (reports/transfer-curve/ is left as it is).

# %%
from pipeline.workflows import transfer_curve

overrides = [f"train.epochs={EPOCHS}", f"train.fine_tune_epochs={EPOCHS}"] if EPOCHS else []
rows = transfer_curve.run(sizes=SIZES, seeds=1, overrides=overrides, verbose=0, sandbox=True)
transfer_curve.figure(rows)

# %% [markdown]
# ## Exercises
#
# Write your answer in place of the `...`, run the cell, then the check below it.
#
# **1. The feature vector's length.** The module is `pretrain`'s trunk: two 3×3 convolutions with
# `padding: same` (32 and 64 filters) on 8×8×1 digits, one 2×2 max pooling after the last, then
# `flatten`. How many numbers does it give per image?

# %% tags=["answer:feature-length"]
FEATURES = ...

# %% tags=["check:feature-length"]
exercises.feature_length(FEATURES)

# %% [markdown]
# **2. What learns when the module is frozen?** `transfer-feature` learns five classes (the digits
# 5–9). How many weights would it train if the new task had all ten digits?

# %% tags=["answer:trainable-head"]
TRAINED_WEIGHTS = ...

# %% tags=["check:trainable-head"]
exercises.trainable_weights(TRAINED_WEIGHTS)

# %%
print("MLflow UI:", pretrain.link)
