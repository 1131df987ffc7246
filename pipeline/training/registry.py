"""MLflow Model Registry: versions, the `champion` / `challenger` aliases, and the promotion gate.

The gate is TFX's "blessing" rule on MLflow aliases: a challenger becomes champion only if its
gate metric on the fixed holdout passes an absolute threshold and beats the champion's (on the
same holdout, re-evaluated now) by a margin. With no champion yet, the threshold alone decides.
Which way the metric improves is the objective's to say (pipeline.objectives).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

CHAMPION, CHALLENGER = "champion", "challenger"


def register(model_uri: str, name: str, run_id: str) -> str:
    """Register a new version and point `challenger` at it; returns the version number."""
    import mlflow

    # MLflow prints "Successfully registered model ..." and "Created version ..." to stderr; the
    # pipeline's own line says which version the run got, and what the gate made of it
    with contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(model_uri, name, tags={"run_id": run_id}).version
    mlflow.MlflowClient().set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def champion(name: str):
    """The champion ModelVersion, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


class PyfuncAdapter:
    """Gives a loaded MLflow pyfunc model the `predict(x, verbose=0)` the objectives call."""

    def __init__(self, model):
        self.model = model

    def predict(self, x, verbose=0):
        return np.asarray(self.model.predict(x))


def evaluate_version(name: str, version: str, plan, splits) -> dict[str, float]:
    import matplotlib.pyplot as plt
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    metrics, artifacts = plan.objective.evaluate(PyfuncAdapter(model), splits, plan.objective_params)
    for item in artifacts.values():
        if not isinstance(item, str):
            plt.close(item)
    return metrics


def decide(gate, higher_is_better: bool, challenger: float, champion_value: float | None) -> tuple[bool, str]:
    sign = 1 if higher_is_better else -1
    if sign * (challenger - gate.threshold) < 0:
        return False, f"{gate.metric} {challenger:.4f} fails the threshold {gate.threshold}"
    if champion_value is None:
        return True, f"no champion yet; {gate.metric} {challenger:.4f} passes the threshold {gate.threshold}"
    gain = sign * (challenger - champion_value)
    if gain < gate.margin:
        return False, (
            f"{gate.metric} {challenger:.4f} vs champion {champion_value:.4f}: "
            f"gain {gain:+.4f} below the margin {gate.margin}"
        )
    return True, f"{gate.metric} {challenger:.4f} beats champion {champion_value:.4f} by {gain:+.4f}"


def apply_gate(outcome, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Compare a registered run's model with the champion on the same holdout, promote it when
    blessed, and record the decision on the run and the model version."""
    import mlflow

    plan, version, run_id = outcome.plan, outcome.model_version, outcome.run_id
    name, gate = plan.register_as, plan.gate
    higher = plan.objective.direction(gate.metric) == "max"
    current = champion(name)
    champion_value = None
    if current is not None and str(current.version) != str(version):
        champion_value = evaluate_version(name, current.version, plan, outcome.splits)[gate.metric]
    challenger_value = outcome.metrics[gate.metric]
    promoted, reason = decide(gate, higher, challenger_value, champion_value)
    client = mlflow.MlflowClient()
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    decision = {
        "gate.decision": "promoted" if promoted else "not promoted",
        "gate.reason": reason,
        "gate.metric": gate.metric,
        "gate.challenger_version": version,
        "gate.champion_version": current.version if current else "none",
        **(extra or {}),
    }
    values = {"gate_challenger": challenger_value}
    if champion_value is not None:
        values["gate_champion"] = champion_value
    for key, value in decision.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(name, version, key, value)
    for key, value in values.items():
        client.log_metric(run_id, key, value)
        client.set_model_version_tag(name, version, key, f"{value:.6f}")
    return {**decision, **values, "promoted": promoted}
