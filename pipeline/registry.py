"""MLflow Model Registry: versions, the `champion` / `challenger` aliases, and the promotion gate.

The gate is TFX's "blessing" rule on MLflow aliases: a challenger becomes champion only if its
headline metric on the fixed holdout passes an absolute threshold and beats the champion's (on the
same holdout, re-evaluated now) by a margin. With no champion yet, the threshold alone decides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline.config import PARAMS_FILE, parse_section
from pipeline.errors import UserError

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclasses.dataclass(frozen=True)
class Gate:
    metric: str  # a test metric the objective reports, e.g. test_accuracy
    greater_is_better: bool
    threshold: float  # never promote a challenger worse than this
    margin: float  # ... nor one that does not beat the champion by at least this much


def gate_for(params: dict[str, Any], model_name: str) -> Gate:
    gates = (params.get("retrain") or {}).get("gates") or {}
    if model_name not in gates:
        raise UserError(f"{PARAMS_FILE}: retrain.gates.{model_name} is missing (the promotion rule)")
    return parse_section(Gate, gates[model_name], f"retrain.gates.{model_name}")


def register(model_uri: str, name: str, run_id: str) -> str:
    """Register a new version and point `challenger` at it; returns the version number."""
    import mlflow

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


def evaluate_version(name: str, version: str, objective, splits) -> dict[str, float]:
    import matplotlib.pyplot as plt
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    metrics, artifacts = objective.evaluate(PyfuncAdapter(model), splits)
    for item in artifacts.values():
        if not isinstance(item, str):
            plt.close(item)
    return metrics


def decide(gate: Gate, challenger: float, champion_value: float | None) -> tuple[bool, str]:
    sign = 1 if gate.greater_is_better else -1
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


def apply_gate(
    name: str,
    version: str,
    run_id: str,
    gate: Gate,
    challenger_metrics: dict[str, float],
    objective,
    splits,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Compare with the champion on the same holdout, promote when blessed, record the decision."""
    import mlflow

    if gate.metric not in challenger_metrics:
        raise UserError(f"retrain.gates.{name}.metric '{gate.metric}' is not a metric this model reports")
    current = champion(name)
    champion_value = None
    if current is not None and str(current.version) != str(version):
        champion_value = evaluate_version(name, current.version, objective, splits)[gate.metric]
    challenger_value = challenger_metrics[gate.metric]
    promoted, reason = decide(gate, challenger_value, champion_value)
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
