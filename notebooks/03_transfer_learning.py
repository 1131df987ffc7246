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

# %% tags=["parameters"]
EPOCHS = None  # None: each experiment's own (params.yaml); EarlyStopping ends most runs sooner
LIMIT = None  # train on at most LIMIT examples (None: all)
SIZES = [1, 5, 20]  # labelled examples per class on the learning curve

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np

# the project folder: params.yaml, data/, and the MLflow store mlruns/ (`make notebooks` sets it)
os.environ.setdefault("PIPELINE_ROOT", str(Path.cwd().parent))
import pipeline

# %% [markdown]
# ## Publish the hub module
#
# `pretrain` trains on 0–4 and writes its trunk to `models/hub/digits-0-4` (also logged with its
# run): what the transfer experiments load.

# %%
pretrain = pipeline.train("pretrain", epochs=EPOCHS, limit=LIMIT)
pretrain.metric, round(pretrain.value, 4)

# %% [markdown]
# ## Frozen, fine-tuned, from scratch

# %%
quick = {"train.fine_tune_epochs": EPOCHS} if EPOCHS else {}  # finetune's second phase
runs = {
    name: pipeline.train(name, quick, epochs=EPOCHS, limit=LIMIT)
    for name in ("transfer-feature", "transfer-finetune", "transfer-scratch")
}
{name: round(t.value, 4) for name, t in runs.items()}

# %%
runs["transfer-finetune"].figure("training_curves.png")

# %%
pipeline.runs("digits-transfer")

# %% [markdown]
# ## The learning curve
#
# Test accuracy per number of labels per class, transfer against scratch: what `make
# transfer-curve` draws (one parent run `transfer-curve` with a nested run per point).

# %%
from pipeline.workflows import transfer_curve

overrides = [f"train.epochs={EPOCHS}", f"train.fine_tune_epochs={EPOCHS}"] if EPOCHS else []
rows = transfer_curve.run(sizes=SIZES, seeds=1, overrides=overrides, verbose=0)
transfer_curve.figure(rows)

# %%
print("MLflow UI:", pretrain.link)
