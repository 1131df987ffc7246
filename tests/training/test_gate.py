"""The promotion gate (pipeline/training/gate.py): the pure rule, the Decision the run and the model
version record, and applying it (the registry's aliases and tags)."""

import dataclasses
import json
import math

import mlflow
import pytest

from pipeline.training import gate, registry, tracking
from pipeline.training.plan import Gate

ACCURACY = Gate(metric="test_accuracy", threshold=0.9, margin=0.01, greater_is_better=True)
RMSE = Gate(metric="test_rmse", threshold=1.0, margin=0.05, greater_is_better=False)


def promoted(rule, challenger, champion=None) -> bool:
    return gate.decide(rule, challenger, champion).promoted


def test_the_rule_needs_the_threshold_and_the_margin_over_the_champion():
    assert promoted(ACCURACY, 0.95) and not promoted(ACCURACY, 0.85)  # no champion: the threshold alone
    assert promoted(ACCURACY, 0.95, 0.93) and not promoted(ACCURACY, 0.935, 0.93)
    assert promoted(RMSE, 0.5, 0.6) and not promoted(RMSE, 0.58, 0.6)  # lower is better
    assert not promoted(RMSE, 1.2)
    assert "gain +0.0050 below the margin 0.01" in gate.decide(ACCURACY, 0.935, 0.93).why


def test_a_non_finite_metric_never_passes():
    rule = dataclasses.replace(ACCURACY, threshold=0.0, margin=0.0)
    assert not promoted(rule, float("nan")) and not promoted(rule, float("nan"), 0.5)
    assert not promoted(dataclasses.replace(RMSE, margin=0.0), float("-inf"), 0.5)
    assert promoted(rule, 0.9, float("nan"))  # a champion that scores NaN is replaced


def test_a_rule_without_its_direction_is_refused():
    with pytest.raises(ValueError, match="no direction"):
        gate.decide(dataclasses.replace(ACCURACY, greater_is_better=None), 0.95)


def test_the_decision_names_what_users_see():
    decision = gate.decide(ACCURACY, 0.95, 0.93, challenger_version="2", champion_version="1")
    assert decision.tags() == {
        "gate.decision": "promoted",
        "gate.reason": "test_accuracy 0.9500 beats champion 0.9300 by +0.0200",
        "gate.metric": "test_accuracy",
        "gate.challenger_version": "2",
        "gate.champion_version": "1",
    }
    assert decision.metrics() == {"gate_challenger": 0.95, "gate_champion": 0.93}
    first = gate.decide(ACCURACY, 0.85, challenger_version="1")
    assert first.metrics() == {"gate_challenger": 0.85}  # no champion, no gate_champion
    assert first.tags()["gate.decision"] == "not promoted" and first.tags()["gate.champion_version"] == "none"


def test_a_journaled_decision_round_trips():
    decision = gate.decide(RMSE, 0.5, 0.6, challenger_version="3", champion_version="2")
    text = json.dumps(dataclasses.asdict(decision))  # what the retrain journal holds
    assert gate.Decision(**json.loads(text)) == decision and set(json.loads(text)) == gate.FIELDS
    odd = gate.Decision(**json.loads(json.dumps(dataclasses.asdict(gate.decide(ACCURACY, 0.95, math.nan)))))
    assert odd.promoted and math.isnan(odd.champion)


def registered(client, run_id: str) -> str:
    """A model version of `m` (its files are not read here); returns the version."""
    return str(client.create_model_version("m", f"runs:/{run_id}/model", run_id=run_id).version)


def test_applying_moves_the_champion_and_records_on_the_run_and_the_version(project):
    tracking.configure()
    client = mlflow.MlflowClient()
    experiment_id = tracking.get_or_create_experiment("digits-classification")
    runs = [client.create_run(experiment_id).info.run_id for _ in range(3)]
    client.create_registered_model("m")
    first, second, third = (registered(client, run) for run in runs)
    decision = gate.decide(ACCURACY, 0.95, challenger_version=first)
    assert gate.apply("m", runs[0], decision, {"retrain.batches": "b1"}) == decision
    assert str(registry.champion("m").version) == first
    recorded = client.get_run(runs[0]).data
    assert recorded.metrics == {"gate_challenger": 0.95}
    assert recorded.tags["gate.decision"] == "promoted" and recorded.tags["retrain.batches"] == "b1"
    tags = client.get_model_version("m", first).tags
    assert tags["gate_challenger"] == "0.950000" and tags["gate.reason"] == decision.why
    # judged against v1, but the champion moved to v3 meanwhile: not compared with it, not promoted
    stale = gate.decide(ACCURACY, 0.97, 0.95, challenger_version=second, champion_version=first)
    client.set_registered_model_alias("m", registry.CHAMPION, third)
    applied = gate.apply("m", runs[1], stale)
    assert not applied.promoted and "the champion moved to v3" in applied.why
    assert str(registry.champion("m").version) == third
    assert client.get_model_version("m", second).tags["gate.decision"] == "not promoted"
