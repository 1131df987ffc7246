"""A model's drift reference: the profile of the data it was trained on, logged with its run when a
registered model is trained (artifact `drift/profile.json`, small JSON), and found again from the
model wherever it answers: `make predict`, the scoring server, a retrain cycle.

    RunOptions(extra_artifacts=reference.for_run)    # workflows/train_and_gate.py, for registered models
    profile = reference.of_model(loaded)             # a loading.Loaded model → its run's profile, or None
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import UserError, first_line
from pipeline.monitoring import profiles
from pipeline.monitoring.profiles import Profile

ARTIFACT = "drift/profile.json"


def probabilities(output) -> np.ndarray | None:
    """`output` when it is class probabilities (a row per image, two or more columns), else None."""
    p = np.asarray(output, dtype=np.float64)
    return p if p.ndim == 2 and p.shape[1] >= 2 else None


def fit_for(plan, model, dataset) -> Profile:
    """The profile of `dataset`'s training split. Images: with the model's class probabilities on
    the validation split (the confidence test's reference; no model: no confidence test); a series:
    with the objective's season."""
    if dataset.kind == "images":
        x_val = dataset.examples("val")[0]  # read a chunk at a time by the objective's predict
        ready = model is not None and len(x_val)
        proba = probabilities(plan.objective.predict(model, x_val)) if ready else None
        return profiles.fit(dataset, proba)
    return profiles.fit(dataset, season=getattr(plan.objective_params, "season", None))


def for_run(plan, model, splits, dataset) -> dict[str, str]:
    """RunOptions.extra_artifacts: the drift profile logged beside a registered model; {} (and one
    line) when its data has none, e.g. a table."""
    try:
        return {ARTIFACT: profiles.to_json(fit_for(plan, model, dataset))}
    except UserError as exc:
        print(f"{plan.exp.name}: no drift profile ({exc})", file=sys.stderr)
        return {}


def of_run(run_id: str) -> Profile | None:
    """The drift profile logged with run `run_id`; None when the run has none (a model trained
    before profiles existed). One larger than profiles.MAX_BYTES is not even downloaded; a
    malformed one is refused (UserError, one line)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    folder, name = ARTIFACT.rsplit("/", 1)
    try:
        found = {Path(f.path).name: f for f in client.list_artifacts(run_id, folder)}
    except (MlflowException, OSError):
        return None
    info = found.get(name)
    if info is None or info.is_dir:
        return None
    if (info.file_size or 0) > profiles.MAX_BYTES:
        raise UserError(f"run {run_id}: its {ARTIFACT} is larger than {profiles.MAX_BYTES // 2**20} MiB")
    with tempfile.TemporaryDirectory(prefix="pipeline-profile-") as keep:
        try:
            path = client.download_artifacts(run_id, ARTIFACT, keep)
        except (MlflowException, OSError) as exc:
            raise UserError(f"run {run_id}: cannot read its {ARTIFACT} ({first_line(exc)})") from None
        return profiles.load(Path(path))


def of_model(loaded) -> Profile | None:
    """The drift profile of a loaded model (pipeline.training.loading.Loaded): its run's."""
    return of_run(loaded.run_id) if loaded.run_id else None
