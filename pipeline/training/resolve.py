"""Which model a user means: one resolver for `predict`, `serve`, `retrieve` and `pipeline.load_model`.

    models:/…, runs:/…, a path    the URI as given (an alias read once: models:/<name>/<version>)
    a registered model's name     its version at the alias (champion)
    an experiment of params.yaml  its latest finished run (runs:/<id>/model)
    6 or more hex digits          the run whose id starts with them (the training line's `run 258545ff`)

The first reading that exists wins, in that order; another reading of the same name is said in a
note, and a prefix of several runs is refused naming each. Nothing here imports TensorFlow: a model
that does not exist is one line before that import.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pipeline import config
from pipeline.errors import UserError, first_line
from pipeline.training import loading, tracking

RUN_PREFIX = re.compile(r"[0-9a-f]{6,32}")  # what the training line prints is 8 of a run id's 32
LISTED = 5  # runs named when a prefix is ambiguous


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A model name resolved: the URI to load and what it is."""

    given: str  # what the user typed
    uri: str  # what loading.load reads (an alias already pinned to its version)
    kind: str  # uri | registered | experiment | run
    name: str = ""  # the registered model (kind registered)
    experiment: str = ""  # the params.yaml experiment (kind experiment)
    run_id: str = ""  # the run (kinds experiment and run)
    notes: tuple[str, ...] = ()  # other things the name could mean

    def shown(self) -> str:
        """How the resolution reads in a line, e.g. `cnn-same (its latest run 258545ff)`."""
        if self.kind == "experiment":
            return f"{self.given} (experiment: its latest finished run {self.run_id[:8]})"
        if self.kind == "run":
            return f"run {self.run_id[:8]}"
        return self.given


def resolve(given: str, alias: str = "champion", said: str = "") -> Resolved:
    """The model `given` names (see the module's docstring); `said` is how the user gave it, for
    the messages (`--model x`, `MODEL=x`; default `model 'x'`)."""
    said = said or f"model '{given}'"
    tracking.configure()
    if not config.NAME_PATTERN.fullmatch(given) or (Path(given) / "MLmodel").is_file():
        uri = loading.pinned(given)
        return Resolved(given, uri, "uri", run_id=run_of_uri(uri))
    readings = [found for found in (registered(given, alias), experiment(given)) if found]
    if not readings:  # a run id prefix only when the name is nothing else
        readings = [found for found in (run(given),) if found]
    if not readings:
        raise UserError(unknown(given, said))
    # another reading is noted, unless it is the experiment that registers this very model
    others = [o for o in readings[1:] if o.run_id and experiment_registering(given) != o.experiment]
    first = readings[0]
    notes = tuple(f"'{given}' could also mean {other.shown()}: give {other.uri}" for other in others)
    if first.kind == "registered":  # the alias is read once: what is loaded is what is recorded
        return dataclasses.replace(pinned(first, alias, said), notes=notes)
    if not first.run_id:
        raise UserError(
            f"{said}: experiment '{given}' has no finished run in {tracking.shown_uri()}: "
            f"train it first (make train-{given})"
        )
    return first


def run_of_uri(uri: str) -> str:
    """The run a models:/<name>/<version> or runs:/<id>/… URI names ('' for other URIs)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    match = loading.VERSION_URI.fullmatch(uri)
    if match:
        try:
            return mlflow.MlflowClient().get_model_version(match[1], match[2]).run_id
        except MlflowException:
            return ""  # loading says what is wrong
    return uri.removeprefix("runs:/").split("/")[0] if uri.startswith("runs:/") else ""


def registered_name(given: str, said: str) -> str:
    """The registered model `given` names, for what follows an alias (`serve`): a registered model,
    or an experiment's register_as; anything else is one line with what to paste (register_as and a
    gate) or to type instead."""
    tracking.configure()
    if registered(given, "champion") or experiment_registering(given):  # the latter: not trained yet
        return given
    found = experiment(given) or run(given)
    if found is None:
        raise UserError(unknown(given, said))
    params = config.load_params()
    name = found.experiment if found.experiment in params["experiments"] else ""
    target = config.resolve_experiment(params, name).extra.get("register_as") if name else None
    if found.kind == "experiment" and target:
        return target
    if found.kind == "run":
        instead = f"give its experiment's registered model ({target})" if target else "register one"
        raise UserError(
            f"{said}: run {found.run_id[:8]} ({found.experiment}) is one run, not a registered model whose "
            f"alias can be followed; predict with it (make predict MODEL={given}), or {instead}"
            + (f": {registration_example(params, name)}" if name and not target else "")
        )
    raise UserError(
        f"{said}: experiment '{name}' registers no model (no register_as), so nothing follows it; "
        + registration_example(params, name)
    )


def registration_example(params: dict, name: str) -> str:
    """plan.registration_example for the params.yaml experiment `name` (its objective looked up
    without importing its family)."""
    from pipeline import models, objectives
    from pipeline.training import plan

    family = config.resolve_experiment(params, name).family
    objective = objectives.get(models.declaration(family, f"experiments.{name}.").objective)
    return plan.registration_example(params, name, objective)


def registered(name: str, alias: str) -> Resolved | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise UserError(
            f"model '{name}': {tracking.shown_uri()} could not be read: {first_line(exc)}"
        ) from None
    return Resolved(name, f"models:/{name}@{alias}", "registered", name=name)


def pinned(found: Resolved, alias: str, said: str) -> Resolved:
    """A registered model at the version `alias` names now (models:/<name>/<version> and its run),
    or one line saying what to do."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(found.name, alias)
    except MlflowException:
        raise no_alias(found.name, alias, said) from None
    return dataclasses.replace(found, uri=f"models:/{found.name}/{version.version}", run_id=version.run_id)


def no_alias(name: str, alias: str, said: str) -> UserError:
    """The error for a registered model without a version at `alias`: its versions, and what to type."""
    import mlflow

    versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'", max_results=LISTED)
    listed = ", ".join(sorted((str(v.version) for v in versions), key=int, reverse=True)) or "none"
    source = experiment_registering(name)
    train = f"make train-{source} trains one and gates it" if source else "train one and gate it"
    return UserError(
        f"{said}: registered model '{name}' has no version with alias '{alias}' in "
        f"{tracking.shown_uri()} (versions: {listed}); {train}, or give models:/{name}/<version>"
    )


def experiment(name: str) -> Resolved | None:
    """The latest finished run of the params.yaml experiment `name` (run_id '' when it has none), or
    None when there is no such experiment."""
    try:
        params = config.load_params()
    except UserError:
        return None
    if name not in params["experiments"]:
        return None
    found = tracking.latest_run(config.resolve_experiment(params, name).task, name)
    run_id = found.info.run_id if found else ""  # '' when it has no finished run
    return Resolved(name, f"runs:/{run_id}/model", "experiment", experiment=name, run_id=run_id)


def run(prefix: str) -> Resolved | None:
    """The one run whose id starts with `prefix` (6 to 32 hex digits), None when none does; a prefix
    of several runs is refused, naming them."""
    import mlflow

    if not RUN_PREFIX.fullmatch(prefix):
        return None
    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = (
        client.search_runs(ids, f"attributes.run_id LIKE '{prefix}%'", max_results=LISTED + 1) if ids else []
    )
    if len(runs) > 1:
        names = {e.experiment_id: e.name for e in client.search_experiments()}
        listed = ", ".join(
            f"{r.info.run_id[:12]} ({r.info.run_name} in {names.get(r.info.experiment_id, '?')})"
            for r in sorted(runs, key=lambda r: r.info.run_id)[:LISTED]
        )
        more = " and more" if len(runs) > LISTED else ""
        raise UserError(f"run id prefix '{prefix}' is ambiguous: {listed}{more}; give more of the id")
    if not runs:
        return None
    found = runs[0]
    return Resolved(
        prefix,
        f"runs:/{found.info.run_id}/model",
        "run",
        experiment=found.info.run_name or "",
        run_id=found.info.run_id,
    )


def experiment_registering(name: str) -> str:
    """The params.yaml experiment whose register_as is `name` ('' when none is)."""
    try:
        experiments = config.load_params()["experiments"]
    except UserError:
        return ""
    return next(
        (
            e
            for e, entry in experiments.items()
            if isinstance(entry, dict) and entry.get("register_as") == name
        ),
        "",
    )


def unknown(given: str, said: str) -> str:
    """The line for a name that is no model: what it was tried as, and what is known."""
    import mlflow

    models = [m.name for m in mlflow.MlflowClient().search_registered_models(max_results=50)]
    try:
        experiments = config.experiment_names(config.load_params())
    except UserError as exc:
        experiments, why = [], f" (params.yaml not read: {first_line(exc)})"
    else:
        why = ""
    close = config.suggest(given, [*models, *experiments])
    hex_note = (
        "" if not RUN_PREFIX.fullmatch(given) else f", nor the start of a run id in {tracking.shown_uri()}"
    )
    return (
        f"{said}: not a registered model ({', '.join(models) or 'none yet'}) nor an experiment "
        f"of params.yaml{why}{hex_note}{close}; give a registered model, an experiment, a run id "
        "(6+ hex digits) or a models:/… or runs:/… URI"
    )
