"""MLflow Model Registry: versions, the `champion` / `challenger` aliases, and the promotion gate.

The gate is TFX's "blessing" rule on MLflow aliases: a challenger becomes champion only if its
gate metric on the fixed holdout passes an absolute threshold and beats the champion's (on the
same holdout) by a margin. The champion is re-evaluated now, unless its own run was scored on
the same data the same way (its `scored_on_sha256` tag equals the challenger's, see `scored_on`):
then its run's metric is that score, bit for bit (tests/training/test_loading.py), and loading
the champion again would only cost time. With no champion yet, the threshold alone decides;
a champion that cannot be read (a locked store, an unreachable server) is an error, never "no
champion", and a metric that is not a finite number never passes. Which way the metric improves
is the objective's to say (pipeline.objectives).

Every process that may move `champion` holds one lock (`alias_lock`, the file layout.retrain_lock()):
`make retrain` for its whole cycle, `make train-<exp>` / `train-all` around the gate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import layout
from pipeline.errors import PipelineError, UserError, first_line

CHAMPION, CHALLENGER = "champion", "challenger"


@contextlib.contextmanager
def alias_lock(holder: str, wait: bool):
    """The lock around moving `champion`. wait=False (a retrain cycle): exit at once when another
    process holds it; wait=True (a training's gate): wait for it. Released when the process ends,
    however it ends (flock)."""
    path = layout.retrain_lock()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            held_by = handle.read().strip() or "unknown"
            if not wait:
                raise PipelineError(
                    f"another retrain is running ({held_by}; lock {path}); not starting a second one"
                ) from None
            # said once, so that a training that seems to hang says what it waits for
            print(f"{holder}: waiting for {held_by} to release {path}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} ({holder}) since {since}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock, also when the process is killed


def register(model_uri: str, name: str, run_id: str) -> str:
    """Register a new version and point `challenger` at it; returns the version number. A run that
    already has a version (a cycle killed after registering it) gets that one back, not a second."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if found:
            version = str(min(int(v.version) for v in found))
        else:
            # MLflow prints "Successfully registered model ..." and "Created version ..." to stderr;
            # the pipeline's own line says which version the run got, and what the gate made of it
            with contextlib.redirect_stderr(io.StringIO()):
                version = str(mlflow.register_model(model_uri, name, tags={"run_id": run_id}).version)
        client.set_registered_model_alias(name, CHALLENGER, version)
    except MlflowException as exc:
        raise PipelineError(
            f"cannot register the challenger of '{name}' ({first_line(exc)}); nothing promoted"
        ) from None
    return version


def unreadable(name: str, exc: Exception) -> PipelineError:
    return PipelineError(
        f"cannot read the champion of '{name}' from the registry ({first_line(exc)}); nothing promoted"
    )


def champion(name: str):
    """The champion ModelVersion, or None when the model or its `champion` alias does not exist
    yet. Any other failure to read it is an error (PipelineError): never taken for "no champion"."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise unreadable(name, exc) from None
    except Exception as exc:  # a network error the client did not wrap
        raise unreadable(name, exc) from None
    version = (model.aliases or {}).get(CHAMPION)
    if version is None:
        return None
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:
        raise unreadable(name, exc) from None


def evaluate_version(name: str, version: str, plan, splits) -> dict[str, float]:
    """The objective's metrics of a registered version on `splits`, as loading.py loads it safely
    (a served model: its Keras model, on the same arrays as the challenger)."""
    from pipeline.training import loading

    model = loading.load(f"models:/{name}/{version}")
    metrics, _ = plan.objective.evaluate(model.arrays, splits, plan.objective_params)  # artifacts: not logged
    return metrics


def decide(gate, higher_is_better: bool, challenger: float, champion_value: float | None) -> tuple[bool, str]:
    sign = 1 if higher_is_better else -1
    if not math.isfinite(challenger):
        return False, f"{gate.metric} {challenger} is not a finite number"
    if sign * (challenger - gate.threshold) < 0:
        return False, f"{gate.metric} {challenger:.4f} fails the threshold {gate.threshold}"
    if champion_value is None:
        return True, f"no champion yet; {gate.metric} {challenger:.4f} passes the threshold {gate.threshold}"
    if not math.isfinite(champion_value):
        return True, (
            f"the champion's {gate.metric} is {champion_value} (not a number); {gate.metric} "
            f"{challenger:.4f} passes the threshold {gate.threshold}"
        )
    gain = sign * (challenger - champion_value)
    if gain < gate.margin:
        return False, (
            f"{gate.metric} {challenger:.4f} vs champion {champion_value:.4f}: "
            f"gain {gain:+.4f} below the margin {gate.margin}"
        )
    return True, f"{gate.metric} {challenger:.4f} beats champion {champion_value:.4f} by {gain:+.4f}"


SCORED_ON_TAG = "scored_on_sha256"


def scored_on(plan, splits) -> str:
    """Everything a model's test metrics depend on besides the model: every field of the objective's
    splits (the holdout, and what a metric takes from the training split, e.g. MASE's scale), the
    objective (name, params) and the code that scores (its module, pipeline.inference). Two runs
    with the same value scored their models on the same data the same way."""
    from pipeline import inference

    digest = hashlib.sha256()
    for field in dataclasses.fields(splits):
        value = getattr(splits, field.name)
        digest.update(field.name.encode())
        if hasattr(value, "fingerprint"):  # images read on use (data.streams.Rows): what they are
            digest.update(value.fingerprint().encode())
        elif isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value)
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(value.tobytes())
        else:
            digest.update(json.dumps(value, default=str).encode())
    params = dataclasses.asdict(plan.objective_params) if plan.objective_params is not None else None
    digest.update(json.dumps([plan.objective.name, params], sort_keys=True, default=str).encode())
    for module in (sys.modules[plan.objective.evaluate.__module__], inference):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def recorded_value(current, metric: str, key: str) -> float | None:
    """The champion's gate metric as its own run recorded it, when that run was scored on what
    `scored_on` calls `key`; None otherwise (an older run, other data, a model the pipeline did not
    train, a challenger whose key is unknown: ''), and the gate re-evaluates."""
    import mlflow

    if not current.run_id or not key:
        return None
    try:
        run = mlflow.MlflowClient().get_run(current.run_id)
    except Exception:  # a deleted run: re-evaluating says what is wrong, if anything is
        return None
    if run.data.tags.get(SCORED_ON_TAG) != key or metric not in run.data.metrics:
        return None
    return float(run.data.metrics[metric])


def champion_value(name: str, current, outcome) -> tuple[float | None, str]:
    """The champion's gate metric on the challenger's (`outcome`'s) holdout and how it was had
    ("recorded" by its run, or "re-evaluated"); (None, "none"): no champion, or the challenger is
    the champion already. A champion that cannot be scored is an error."""
    plan, splits = outcome.plan, outcome.splits
    if current is None or str(current.version) == str(outcome.model_version):
        return None, "none"
    recorded = recorded_value(current, plan.gate.metric, outcome.scored_on)
    if recorded is not None:
        return recorded, "recorded"
    return rescore(name, current, plan, splits), "re-evaluated"


def rescore(name: str, current, plan, splits) -> float:
    """The champion's gate metric, loaded (safely) and evaluated on `splits` now."""
    try:
        return float(evaluate_version(name, current.version, plan, splits)[plan.gate.metric])
    except UserError as exc:  # e.g. a champion the pipeline did not log: refused, nothing promoted
        raise UserError(f"the gate cannot score champion v{current.version} of {name}: {exc}") from None
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError(
            f"cannot evaluate the champion v{current.version} of '{name}' on the holdout "
            f"({first_line(exc, typed=True)}); nothing promoted"
        ) from None


def gate_decision(outcome, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The gate's decision for a registered challenger (nothing moved or recorded yet): tags
    `gate.*`, metrics `gate_challenger` / `gate_champion`, and `promoted`."""
    plan, version = outcome.plan, outcome.model_version
    name, gate = plan.register_as, plan.gate
    if gate.metric not in outcome.metrics:
        raise PipelineError(f"the challenger's run {outcome.run_id} has no {gate.metric}; nothing promoted")
    current = champion(name)
    value, scored = champion_value(name, current, outcome)
    challenger_value = float(outcome.metrics[gate.metric])
    higher = plan.objective.direction(gate.metric) == "max"
    promoted, reason = decide(gate, higher, challenger_value, value)
    decision: dict[str, Any] = {
        "gate.decision": "promoted" if promoted else "not promoted",
        "gate.reason": reason,
        "gate.metric": gate.metric,
        "gate.challenger_version": str(version),
        "gate.champion_version": str(current.version) if current else "none",
        "gate.champion_score": scored,  # recorded by its run on this holdout, or re-evaluated now
        **(extra or {}),
        "gate_challenger": challenger_value,
        "promoted": promoted,
    }
    if value is not None:
        decision["gate_champion"] = value
    return decision


def record_gate(name: str, version: str, run_id: str, decision: dict[str, Any]) -> None:
    """Apply a decision: move `champion` when promoted, then record it as tags and metrics on the
    run and tags on the model version (all idempotent: a killed cycle replays it)."""
    import time

    import mlflow
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient()
    if decision["promoted"]:
        client.set_registered_model_alias(name, CHAMPION, version)
    recorded = {k: v for k, v in decision.items() if k != "promoted"}
    now = int(time.time() * 1000)
    client.log_batch(  # the run's part in one write
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in recorded.items() if k.startswith("gate_")],
        tags=[RunTag(k, v) for k, v in recorded.items() if not k.startswith("gate_")],
    )
    for key, value in recorded.items():  # the registry has no batch call for version tags
        client.set_model_version_tag(name, version, key, f"{value:.6f}" if key.startswith("gate_") else value)


def apply_gate(outcome, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Compare a registered run's model with the champion on the same holdout, promote it when
    blessed, and record the decision on the run and the model version."""
    decision = gate_decision(outcome, extra)
    record_gate(outcome.plan.register_as, outcome.model_version, outcome.run_id, decision)
    return decision
