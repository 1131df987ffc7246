"""A gate's optional `drift:` sub-section: parsed into a typed DriftLimit, checked key by key."""

import pytest

from pipeline import config
from pipeline.errors import UserError
from pipeline.training.plan import DriftLimit, make_plan
from tests.conftest import edit_params


def gate_with(project, drift):
    edit_params(project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(drift=drift))
    return make_plan(config.load_params(), "cnn-same").gate


def test_a_gate_without_drift_has_no_limit(project):
    assert make_plan(config.load_params(), "cnn-same").gate.drift is None


def test_drift_limit_is_parsed_typed(project):
    gate = gate_with(project, {"max": 0.3, "action": "quarantine"})
    assert gate.drift == DriftLimit(max=0.3, action="quarantine")
    assert gate_with(project, {"max": 1, "action": "warn"}).drift.max == 1.0


@pytest.mark.parametrize(
    "drift, message",
    [
        ({"mx": 0.3, "action": "warn"}, r"unknown key 'retrain.gates.digits-classifier.drift.mx'.*'max'"),
        ({"max": 0.3}, r"missing key 'retrain.gates.digits-classifier.drift.action'"),
        ({"max": 0.3, "action": "quarantaine"}, r"drift.action = 'quarantaine' is not one of.*'quarantine'"),
        ({"max": 1.5, "action": "warn"}, r"drift.max = 1.5 must be in \(0, 1\]"),
        ({"max": 0, "action": "warn"}, r"drift.max = 0.0 must be in \(0, 1\]"),
        ("high", r"drift = 'high' is not a mapping or null"),
    ],
)
def test_a_bad_drift_limit_is_named(project, drift, message):
    with pytest.raises(UserError, match=message):
        gate_with(project, drift)
