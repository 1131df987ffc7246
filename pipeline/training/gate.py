"""The promotion gate: a registered challenger becomes champion only if blessed.

TFX's "blessing" rule on MLflow aliases: the challenger's gate metric on its holdout must pass an
absolute threshold and beat the champion's by a margin, the champion re-evaluated now on the same
holdout. With no champion yet the threshold alone decides; a metric that is not a finite number
never passes; a champion that cannot be read or scored is an error, never "no champion". Which way
the metric improves is the objective's to say (`plan.gate_for` sets the rule's direction from it).

    decide(rule, challenger, champion) → Decision   pure: the rule and two numbers in
    judge(outcome) → Decision                       the champion loaded (safely) and scored; no writes
    apply(name, run_id, decision) → Decision        `champion` moved when promoted, then recorded

Callers hold `registry.alias_lock` around judging and applying (workflows/train_and_gate.py,
workflows/retrain.py), so two processes never move `champion` at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from pipeline.errors import PipelineError, UserError, first_line
from pipeline.training import registry


@dataclasses.dataclass(frozen=True)
class Decision:
    """One gate decision; `tags()` and `metrics()` are what the run and the model version record."""

    metric: str  # the rule's metric, e.g. test_accuracy
    threshold: float
    margin: float
    challenger: float  # the challenger's metric on its holdout
    champion: float | None  # the champion's on the same holdout; None: no champion to beat
    promoted: bool
    why: str
    challenger_version: str = ""  # '' until the challenger is registered
    champion_version: str = "none"

    @property
    def verdict(self) -> str:
        return "promoted" if self.promoted else "not promoted"

    def tags(self) -> dict[str, str]:
        return {
            "gate.decision": self.verdict,
            "gate.reason": self.why,
            "gate.metric": self.metric,
            "gate.challenger_version": self.challenger_version,
            "gate.champion_version": self.champion_version,
        }

    def metrics(self) -> dict[str, float]:
        found = {"gate_challenger": self.challenger}
        if self.champion is not None:
            found["gate_champion"] = self.champion
        return found


FIELDS = {field.name for field in dataclasses.fields(Decision)}  # a journaled decision's keys


def decide(rule, challenger: float, champion: float | None = None, **versions: str) -> Decision:
    """The rule (a plan.Gate, its direction set) applied to the challenger's and the champion's
    metric (None: no champion); `versions`: challenger_version, champion_version, as recorded."""
    if rule.greater_is_better is None:
        raise ValueError(f"the gate on {rule.metric} has no direction (plan.gate_for sets it)")
    metric, threshold, margin = rule.metric, rule.threshold, rule.margin

    def decision(promoted: bool, why: str) -> Decision:
        return Decision(metric, threshold, margin, challenger, champion, promoted, why, **versions)

    sign = 1 if rule.greater_is_better else -1
    if not math.isfinite(challenger):
        return decision(False, f"{metric} {challenger} is not a finite number")
    if sign * (challenger - threshold) < 0:
        return decision(False, f"{metric} {challenger:.4f} fails the threshold {threshold}")
    if champion is None:
        return decision(True, f"no champion yet; {metric} {challenger:.4f} passes the threshold {threshold}")
    if not math.isfinite(champion):
        why = f"the champion's {metric} is {champion} (not a number); {metric} {challenger:.4f} passes"
        return decision(True, f"{why} the threshold {threshold}")
    gain = sign * (challenger - champion)
    if gain < margin:
        versus = f"{metric} {challenger:.4f} vs champion {champion:.4f}"
        return decision(False, f"{versus}: gain {gain:+.4f} below the margin {margin}")
    return decision(True, f"{metric} {challenger:.4f} beats champion {champion:.4f} by {gain:+.4f}")


def judge(outcome) -> Decision:
    """The decision for a challenger (a training.run.Outcome: its plan, metrics, holdout and, once
    registered, version), the champion re-evaluated on the challenger's holdout. Nothing is written."""
    plan = outcome.plan
    name, rule = plan.register_as, plan.gate
    if rule.metric not in outcome.metrics:
        raise PipelineError(f"the challenger's run {outcome.run_id} has no {rule.metric}; nothing promoted")
    current = registry.champion(name)
    challenger_version = str(outcome.model_version or "")
    champion = None
    if current is not None and str(current.version) != challenger_version:  # not the champion already
        champion = score(name, str(current.version), plan, outcome.splits)
    champion_version = str(current.version) if current else "none"
    versions = {"challenger_version": challenger_version, "champion_version": champion_version}
    return decide(rule, float(outcome.metrics[rule.metric]), champion, **versions)


def score(name: str, version: str, plan, splits) -> float:
    """A registered version's gate metric on `splits`, loaded as training/loading.py loads it
    safely (a served model: its Keras model, on the same arrays as the challenger)."""
    from pipeline.training import loading

    try:
        model = loading.load(f"models:/{name}/{version}")
        metrics, _ = plan.objective.evaluate(model.arrays, splits, plan.objective_params)  # figures unlogged
        return float(metrics[plan.gate.metric])
    except UserError as exc:  # e.g. a champion the pipeline did not log: refused, nothing promoted
        raise UserError(f"the gate cannot score champion v{version} of {name}: {exc}") from None
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError(
            f"cannot evaluate the champion v{version} of '{name}' on the holdout "
            f"({first_line(exc, typed=True)}); nothing promoted"
        ) from None


def apply(name: str, run_id: str, decision: Decision, tags: Mapping[str, str] | None = None) -> Decision:
    """Move `champion` to the challenger when promoted, then record the decision (and `tags`, e.g. a
    retrain's batches) on its run and model version; idempotent, so a killed cycle replays it.
    A promotion judged against another champion than the current one (moved while a cycle was
    interrupted) is recorded as not promoted: the challenger was never compared with it."""
    import time

    import mlflow
    from mlflow.entities import Metric, RunTag

    decision = still_current(name, decision)
    version = decision.challenger_version
    client = mlflow.MlflowClient()
    if decision.promoted:
        client.set_registered_model_alias(name, registry.CHAMPION, version)
    labels, metrics = {**decision.tags(), **(tags or {})}, decision.metrics()
    now = int(time.time() * 1000)
    client.log_batch(  # the run's part in one write
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        tags=[RunTag(key, value) for key, value in labels.items()],
    )
    shown = {**labels, **{key: f"{value:.6f}" for key, value in metrics.items()}}
    for key, value in shown.items():  # the registry has no batch call for version tags
        client.set_model_version_tag(name, version, key, value)
    return decision


def still_current(name: str, decision: Decision) -> Decision:
    """`decision`, or, when it promotes against a champion that has moved since, not promoted."""
    if not decision.promoted:
        return decision
    current = registry.champion(name)
    now = str(current.version) if current else "none"
    if now in (decision.champion_version, decision.challenger_version):  # replayed after the move
        return decision
    judged, moved = (("no champion" if v == "none" else f"v{v}") for v in (decision.champion_version, now))
    why = f"the champion moved to {moved} after this challenger was judged against {judged}; not compared"
    return dataclasses.replace(decision, promoted=False, why=why)
