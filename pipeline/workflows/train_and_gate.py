"""One experiment of params.yaml as `make train-<experiment>` runs it: trained in one MLflow run,
then, when it registers a model, put through the promotion gate (champion only if blessed). The
gate holds the lock `make retrain` holds, so two processes never move `champion` at once."""

from __future__ import annotations

import dataclasses

from pipeline.monitoring import reference
from pipeline.training import gate, registry
from pipeline.training.run import Outcome, RunOptions, run


def train(name: str, overrides: list[str] | None = None, options: RunOptions | None = None) -> Outcome:
    """Train `name`; a registered model's run also logs the drift profile of its training data
    (monitoring.reference: what predict, the scoring server and retrain compare new data with)."""
    options = options or RunOptions()
    if options.extra_artifacts is None:
        options = dataclasses.replace(options, extra_artifacts=reference.for_run)
    outcome = run(name, overrides, options)
    if outcome.model_version is None:
        return outcome
    with registry.alias_lock(f"gate of {name}", wait=True):
        decision = gate.apply(outcome.plan.register_as, outcome.run_id, gate.judge(outcome))
    return dataclasses.replace(outcome, decision=decision)
