"""One experiment of params.yaml, resolved and checked against its family's and objective's schemas
before any data is read or any run started, and what its run logs as params and tags."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from pipeline import config, models, objectives
from pipeline.config import PARAMS_FILE, SeedParams, TrainParams, parse_section
from pipeline.errors import UserError
from pipeline.models import Family
from pipeline.objectives import Objective


@dataclasses.dataclass(frozen=True)
class DriftLimit:
    """`retrain.gates.<name>.drift`: how far new data may drift from the training data
    (`drift_score`, 0 = indistinguishable, 1 = no overlap; docs/drift.md), and what happens beyond."""

    max: float  # a batch whose drift_score exceeds this has drifted
    action: Literal["warn", "quarantine"]  # warn: train on it and record it; quarantine: set it aside


@dataclasses.dataclass(frozen=True)
class Gate:
    """A registered model's promotion rule (`retrain.gates.<name>` in params.yaml)."""

    metric: str  # a test metric the objective reports, e.g. test_accuracy
    threshold: float  # never promote a challenger worse than this
    margin: float  # ... nor one that does not beat the champion by at least this much
    # optional and checked: which way the metric improves is the objective's to say
    greater_is_better: bool | None = None
    drift: DriftLimit | None = None  # optional: what new batches' drift may be


@dataclasses.dataclass(frozen=True)
class Plan:
    """An experiment resolved and validated: what `run` trains."""

    exp: config.Experiment
    family: Family
    objective: Objective
    model: Any  # the family's Params
    train: Any  # TrainParams (Keras), SeedParams (estimators) or the family's own subclass
    objective_params: Any  # the objective's Params, or None
    register_as: str | None = None  # registered model name (MLflow registry), if opted in
    gate: Gate | None = None


def gate_for(params: dict[str, Any], model_name: str, objective: Objective, experiment: str = "") -> Gate:
    """The promotion rule of `model_name`, checked against the objective that will be scored."""
    where = f"retrain.gates.{model_name}"
    gates = (params.get("retrain") or {}).get("gates") or {}
    if model_name not in gates:
        example = gate_example(params, experiment, model_name, objective) if experiment else ""
        raise UserError(f"{PARAMS_FILE}: {where} is missing (the promotion rule){example and '; ' + example}")
    gate = parse_section(Gate, gates[model_name], where)
    if not (math.isfinite(gate.threshold) and math.isfinite(gate.margin)):
        raise UserError(f"{PARAMS_FILE}: {where}: threshold and margin must be finite numbers")
    test_metrics = [f"test_{name}" for name in objective.directions]
    if not gate.metric.startswith("test_") or not reported_exactly(objective, gate.metric):
        raise UserError(
            f"{PARAMS_FILE}: {where}.metric '{gate.metric}' is not a test metric the {objective.name} "
            f"objective reports{config.suggest(gate.metric, test_metrics)}; known: {', '.join(test_metrics)}"
        )
    if gate.drift is not None and not 0 < gate.drift.max <= 1:
        raise UserError(
            f"{PARAMS_FILE}: {where}.drift.max = {gate.drift.max} must be in (0, 1]: drift_score runs "
            "from 0 (like the training data) to 1 (no overlap)"
        )
    higher = objective.direction(gate.metric) == "max"
    if gate.greater_is_better is not None and gate.greater_is_better != higher:
        raise UserError(
            f"{PARAMS_FILE}: {where}.greater_is_better: {gate.greater_is_better} contradicts "
            f"{gate.metric}, which is better when {'higher' if higher else 'lower'} (drop the key)"
        )
    return dataclasses.replace(gate, greater_is_better=higher)


def gate_example(params: dict[str, Any], experiment: str, model_name: str, objective: Objective) -> str:
    """What to paste into params.yaml for `model_name`'s gate, in YAML flow style: the objective's
    headline metric and a threshold that fits the task (suggested_threshold)."""
    threshold, why = suggested_threshold(params, experiment, objective)
    gate = f"{model_name}: {{metric: {objective.headline}, threshold: {threshold!r}, margin: 0.005}}"
    if (params.get("retrain") or {}).get("gates"):
        return f"under retrain.gates add `{gate}` ({why})"
    return f"add `retrain: {{gates: {{{gate}}}}}` ({why})"


def registration_example(params: dict[str, Any], experiment: str, objective: Objective) -> str:
    """What to paste into params.yaml so that `experiment` registers a model: its register_as line
    and a gate (gate_example)."""
    return (
        f"in {PARAMS_FILE} add `register_as: {experiment}` to experiments.{experiment} and "
        f"{gate_example(params, experiment, experiment, objective).removeprefix('add ')}, then "
        f"make train-{experiment}"
    )


def suggested_threshold(params: dict[str, Any], experiment: str, objective: Objective) -> tuple[float, str]:
    """(a threshold for the objective's headline metric, why). A score (higher is better): 0.05 under
    the experiment's latest run, but not under 1.5 x chance (or the run itself, when lower); without
    a run, 1.5 x chance. An error (lower is better): 10 % over the latest run, else over the task's
    best run. Never another task's figure (digits' 0.95)."""
    from pipeline.training import tracking

    metric, exp = objective.headline, config.resolve_experiment(params, experiment)
    tracking.configure()
    latest = tracking.latest_run(exp.task, experiment)
    value = latest.data.metrics.get(metric) if latest else None
    if objective.direction(metric) == "max":
        chance = chance_level(metric, exp.dataset)
        if chance is None and value is None:
            return 0.5, f"dataset '{exp.dataset}' not prepared yet: its chance level is unknown"
        floor = 1.5 * chance if chance is not None else 0.0
        if value is None:
            return floor2(floor), f"1.5 x chance {chance:.3g}"
        threshold = max(value - 0.05, min(value, floor))
        return floor2(threshold), f"{metric} {value:.4g} of its latest run, less 0.05"
    where = "its latest run"
    if value is None:
        best = tracking.latest_run(exp.task, order_by=f"metrics.{metric} ASC")
        value, where = (best.data.metrics.get(metric) if best else None), f"the best run of {exp.task}"
    if value is None:
        return 1e6, f"no run of {exp.task} yet: set it after the first run"
    return float(f"{1.1 * value:.3g}"), f"{metric} {value:.4g} of {where}, plus 10 %"


def floor2(value: float) -> float:
    """`value` rounded down to two decimals (0.6 - 0.05 is 0.55, not 0.54)."""
    return math.floor(round(100 * value, 6)) / 100


def chance_level(metric: str, dataset: str) -> float | None:
    """What guessing scores on `metric`: 0.5 for a ROC AUC, 1/classes for an accuracy (the classes
    of the prepared dataset; None when it is not prepared yet)."""
    from pipeline import data

    if "accuracy" not in metric:
        return 0.5
    manifest = data.read_manifest(dataset)
    return 1 / len(manifest.class_names) if manifest and manifest.class_names else None


def reported_exactly(objective: Objective, metric: str) -> bool:
    """`metric` is `test_<name>` for a name the objective scores, or `test_<name>_<k>` for one of
    its per-k metrics (`precision_at`): a typo such as test_accuracy2 is refused before training."""
    base = metric.removeprefix("test_")
    stem, _, k = base.rpartition("_")
    per_k = k.isdigit() and stem.endswith("_at") and stem in objective.directions
    return base in objective.directions or per_k


def train_schema(kind: str, own: type | None = None) -> type:
    """The shape of an experiment's `train:` section: the family's own schema (Family.train_params)
    when it declares one, else the default for its kind."""
    return own or (TrainParams if kind == "keras" else SeedParams)


# an experiment's keys besides config.EXPERIMENT_KEYS
OPTIONAL_KEYS = ("objective", "register_as")
# train keys a family without them ignores (shared defaults such as train.epochs for a baseline)
SHARED_TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(TrainParams))


def check_unimported(params: dict, name: str, overrides: list[str] | None = None) -> None:
    """Every key of the experiment but its `objective:` section, checked against what FAMILIES
    declares, without importing the family (which imports TensorFlow): the commonest typos answer
    at once. make_plan checks everything again."""
    exp = config.resolve_experiment(params, name, overrides)
    checked_sections(exp, models.declaration(exp.family, f"experiments.{name}."))


def checked_sections(exp: config.Experiment, declared: models.Declared) -> tuple[Any, Any]:
    """The experiment's `model:` and `train:` sections, checked against its family's schemas (and
    no key unknown)."""
    where = f"experiments.{exp.name}"
    unknown = sorted(set(exp.extra) - set(OPTIONAL_KEYS))
    if unknown:
        known = [*config.EXPERIMENT_KEYS, *OPTIONAL_KEYS]
        raise UserError(
            f"{PARAMS_FILE}: unknown key '{where}.{unknown[0]}'{config.suggest(unknown[0], known)}"
        )
    model_params = parse_section(declared.params, exp.model, f"{where}.model")
    schema = train_schema(declared.kind, declared.train_params)
    return model_params, parse_section(schema, exp.train, f"{where}.train", SHARED_TRAIN_KEYS)


def make_plan(params: dict, name: str, overrides: list[str] | None = None) -> Plan:
    """Resolve one experiment and check every key before any data is read or run started."""
    exp = config.resolve_experiment(params, name, overrides)
    where = f"experiments.{name}"
    model_params, train_params = checked_sections(exp, models.declaration(exp.family, f"{where}."))
    family = models.get(exp.family)
    objective = objectives.get(family.objective)
    extra = dict(exp.extra)
    objective_params = None
    if objective.params is not None:  # the `objective:` section, e.g. forecasting's horizon
        objective_params = parse_section(objective.params, extra.pop("objective", None), f"{where}.objective")
    register_as, gate = extra.pop("register_as", None), None
    if register_as is not None:
        config.check_name(register_as, f"{PARAMS_FILE}: {where}.register_as")
        gate = gate_for(params, register_as, objective, name)
    return Plan(exp, family, objective, model_params, train_params, objective_params, register_as, gate)


def params_to_log(plan: Plan, dataset, train_examples: int) -> dict[str, Any]:
    """Every resolved hyperparameter, named as in params.yaml (model.*, train.*, data.*, ...)."""
    sections = ("model.", "train.", "objective.")  # logged below from the validated values
    logged = {
        k: v
        for k, v in config.flatten(plan.exp.raw).items()
        if k != "description" and not k.startswith(sections)
    }
    logged.update({f"model.{k}": v for k, v in dataclasses.asdict(plan.model).items()})
    logged.update({f"train.{k}": v for k, v in dataclasses.asdict(plan.train).items()})
    if plan.objective_params is not None:
        logged.update({f"objective.{k}": v for k, v in dataclasses.asdict(plan.objective_params).items()})
    logged.update({f"data.{k}": v for k, v in dataset.manifest.params.items() if k != "source"})
    logged.update({"data.source": dataset.manifest.source, "data.train_examples": train_examples})
    # sibling runs of the same task log the same param names, so the UI's columns line up
    for name in sibling_params(plan) - set(logged):
        logged[name] = "n/a"
    return logged


def sibling_params(plan: Plan) -> set[str]:
    params = config.load_params()
    names: set[str] = set()
    for other in config.experiment_names(params):
        exp = config.resolve_experiment(params, other)
        if exp.task == plan.exp.task and other != plan.exp.name:
            names |= {k for k in config.flatten(exp.raw) if k.startswith(("model.", "objective."))}
    return names


def run_tags(plan: Plan, dataset, git_commit: str) -> dict[str, str]:
    return {
        "model_family": plan.exp.family,
        "dataset": plan.exp.dataset,
        "git_commit": git_commit,
        "data_hash": dataset.sha256,
        "objective": plan.objective.name,
        "problem": plan.objective.problem(dataset, plan.objective_params),
        **plan.family.tags(plan.model),  # e.g. transfer learning's hub_handle and transfer_mode
    }
