"""params.yaml: loading, `--set` overrides, and strict validation against typed schemas.

Every knob lives in params.yaml; code holds the *shape* of each section (a dataclass; a field
with a default is an optional key), so a misspelt or missing key is an error that names the key
and where it is.
This module imports neither TensorFlow nor MLflow: `make` and `pipeline data` stay fast.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import json
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import UserError

PARAMS_FILE = "params.yaml"


class YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's when PyYAML has it
    """PyYAML's safe loader plus YAML 1.2's float rule, which editors follow: `1e-4` and `1.0e4`
    are numbers (YAML 1.1 wants a dot and a signed exponent, else reads a string)."""


# after the int rule, so an integer stays an int
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def project_root() -> Path:
    """The folder holding params.yaml, data/ and mlruns/ (PIPELINE_ROOT, else the cwd)."""
    return Path(os.environ.get("PIPELINE_ROOT") or os.getcwd()).resolve()


def params_path() -> Path:
    return Path(os.environ.get("PIPELINE_PARAMS") or project_root() / PARAMS_FILE)


# --------------------------------------------------------------------------- schemas


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """The `train:` section shared by every Keras model family."""

    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"]
    patience: int  # EarlyStopping on val_loss; best weights restored
    seed: int
    limit: int | None  # use at most this many training examples (quick tries, tests)
    # mirrored: one replica per visible GPU (or logical CPU device) in this process;
    # batch_size is then per replica (global batch = batch_size x replicas)
    strategy: Literal["default", "mirrored"]


@dataclasses.dataclass(frozen=True)
class SeedParams:
    """The `train:` section of non-Keras baselines: they have no epochs or optimiser."""

    seed: int
    limit: int | None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One named experiment of params.yaml, resolved (defaults merged, overrides applied)."""

    name: str
    task: str  # the MLflow experiment its runs go to
    family: str
    dataset: str
    description: str
    model: dict[str, Any]
    train: dict[str, Any]
    extra: dict[str, Any]  # family-specific top-level keys (validated by the family)
    raw: dict[str, Any]  # the resolved mapping, as logged to MLflow
    needs: tuple[str, ...] = ()  # upstream experiments whose outputs this one reads (make order)
    search: SearchParams | None = None  # the `search:` block (`pipeline sweep`); not part of `raw`

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """An experiment's `search:` block: a Ray Tune sweep over `--set` keys (`pipeline sweep`)."""

    metric: str  # what Tune optimises, reported per epoch (e.g. val_accuracy)
    num_samples: int  # trials; with grid entries, each grid point is repeated this many times
    max_concurrent: int  # trials at once
    scheduler: Literal["asha", "fifo"]  # asha stops bad trials early; fifo runs every trial to the end
    grace_period: int  # asha: epochs every trial gets before it can be stopped
    space: dict[str, Any]  # dotted key (as for --set) -> {sampler: arguments}
    # max | min; optional: the experiment's objective knows which way its metrics improve
    mode: Literal["max", "min"] | None = None


@dataclasses.dataclass(frozen=True)
class RetrainParams:
    """The `retrain:` section: where batches arrive and go, when they count, and the gates."""

    incoming: str = "data/incoming"  # new batches: <incoming>/<dataset>/<batch-id>/
    quarantine: str = "data/quarantine"  # refused batches, each with REASON.txt
    consumed: str = "data/consumed"  # ingested batches, as they arrived
    # a batch without an empty READY file counts once none of its files changed for this long
    settle_seconds: float = 60.0
    # refuse larger images (width x height, read from the header): pipeline/images.py's MAX_PIXELS
    max_image_pixels: int = 4096 * 4096
    gates: dict[str, Any] | None = None  # registered model → its promotion rule (training/plan.Gate)


# names that become folders, files, make targets and MLflow run names: experiments, datasets,
# registered models and batch ids
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"


def check_name(name: Any, what: str) -> str:
    """`name` if it fits NAME_PATTERN, else a one-line error naming `what`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UserError(f"{what} {str(name)!r} is not a valid name ({NAME_RULE})")
    return name


def retrain_params(params: dict[str, Any]) -> RetrainParams:
    """The checked `retrain:` section (every key optional; a misspelt one is an error)."""
    section = params.get("retrain") or {}
    if not isinstance(section, dict):
        raise UserError(
            f"{PARAMS_FILE}: retrain must be a mapping, not {type(section).__name__} "
            "(e.g. retrain: {settle_seconds: 60, gates: {…}})"
        )
    found = parse_section(RetrainParams, section, "retrain")
    if found.settle_seconds < 0 or found.max_image_pixels < 1:
        raise UserError(
            f"{PARAMS_FILE}: retrain.settle_seconds must be >= 0 and retrain.max_image_pixels >= 1"
        )
    return found


# grid/choice take a list of values; uniform, loguniform and randint take [low, high]
SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")

EXAMPLE_NAMES = {"task": "digits-classification", "family": "cnn", "dataset": "digits"}  # for the messages
TOP_LEVEL = ("data", "defaults", "experiments", "retrain", "transfer_curve")
EXPERIMENT_KEYS = {"task", "family", "dataset", "description", "model", "train", "needs", "search"}


# --------------------------------------------------------------------------- loading


def load_params(path: Path | None = None) -> dict[str, Any]:
    path = path or params_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(
            f"{path}: parameter file not found; run in the project folder, "
            "or set PIPELINE_ROOT=<project folder>"
        ) from None
    try:
        params = yaml.load(text, Loader=YamlLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{path}{where}: {problem}") from None
    if not isinstance(params, dict):
        raise UserError(
            f"{path}: expected a mapping at the top level (data:, experiments:, …), "
            f"not {type(params).__name__}"
        )
    unknown = set(params) - set(TOP_LEVEL)
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{path}: unknown top-level key '{key}'{suggest(key, TOP_LEVEL)}")
    for section in ("data", "experiments"):
        if not isinstance(params.get(section), dict) or not params[section]:
            raise UserError(
                f"{path}: section '{section}' is missing or empty (docs/configuration.md shows one)"
            )
        for name in params[section]:  # before any training: names become paths, targets, run names
            check_name(name, f"{path}: {section[:-1] if section == 'experiments' else 'dataset'}")
    retrain_params(params)
    return params


def experiment_names(params: dict[str, Any]) -> list[str]:
    return list(params["experiments"])


def dataset_names(params: dict[str, Any]) -> list[str]:
    return list(params["data"])


def resolve_experiment(params: dict[str, Any], name: str, overrides: list[str] | None = None) -> Experiment:
    experiments = params["experiments"]
    if name not in experiments:
        raise UserError(
            f"unknown experiment '{name}' in {PARAMS_FILE}{suggest(name, experiments)}; "
            f"known: {', '.join(experiments)}"
        )
    entry = experiments[name]
    where = f"experiments.{name}"
    if not isinstance(entry, dict):
        raise UserError(f"{PARAMS_FILE}: {where} must be a mapping")
    resolved = copy.deepcopy(entry)
    for key, value in (params.get("defaults") or {}).items():
        # defaults fill gaps only; a family's schema later rejects what it cannot use,
        # so defaults are merged for the sections an experiment already has or needs.
        if isinstance(value, dict):
            section = resolved.setdefault(key, {})
            for k, v in value.items():
                section.setdefault(k, copy.deepcopy(v))
        else:
            resolved.setdefault(key, copy.deepcopy(value))
    for override in overrides or []:
        apply_override(resolved, override, where)
    for key in ("task", "family", "dataset"):
        if not isinstance(resolved.get(key), str):
            raise UserError(f"{PARAMS_FILE}: {where}.{key} is missing (e.g. {key}: {EXAMPLE_NAMES[key]})")
    if resolved["dataset"] not in params["data"]:
        raise UserError(
            f"{PARAMS_FILE}: {where}.dataset '{resolved['dataset']}' is not defined under data:"
            f"{suggest(resolved['dataset'], params['data'])}"
        )
    for key in ("model", "train"):
        if not isinstance(resolved.setdefault(key, {}), dict):
            raise UserError(f"{PARAMS_FILE}: {where}.{key} must be a mapping (e.g. {key}: {{epochs: 5}})")
    needs = resolved.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise UserError(f"{PARAMS_FILE}: {where}.needs must list experiments (e.g. needs: [pretrain])")
    for upstream in needs:
        if upstream not in experiments or upstream == name:
            raise UserError(
                f"{PARAMS_FILE}: {where}.needs: '{upstream}' is not another experiment"
                f"{suggest(upstream, experiments)}"
            )
    search = resolved.pop("search", None)
    return Experiment(
        name=name,
        task=resolved["task"],
        family=resolved["family"],
        dataset=resolved["dataset"],
        description=str(resolved.get("description", "")),
        model=resolved["model"],
        train=resolved["train"],
        extra={k: v for k, v in resolved.items() if k not in EXPERIMENT_KEYS},
        raw=resolved,
        needs=tuple(needs),
        search=None if search is None else parse_search(search, f"{where}.search"),
    )


def upstream_first(experiments: dict[str, Experiment], names) -> list[str]:
    """`names` plus everything they need, each after what it needs. A `needs:` loop is an error
    (make would only warn and drop the edge)."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            loop = " -> ".join((*path[path.index(name) :], name))
            raise UserError(f"{PARAMS_FILE}: experiments' needs form a loop: {loop}")
        if name in ordered:  # done, with all it needs: a loop through it would have shown
            return
        for upstream in experiments[name].needs:
            visit(upstream, (*path, name))
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


def parse_search(section: Any, where: str) -> SearchParams:
    """Check a `search:` block strictly: every key, the samplers and their bounds."""
    if not isinstance(section, dict):
        raise UserError(f"{PARAMS_FILE}: {where} must be a mapping")
    search = parse_section(SearchParams, section, where)
    for key in ("num_samples", "max_concurrent", "grace_period"):
        if getattr(search, key) < 1:
            raise UserError(f"{PARAMS_FILE}: {where}.{key} = {getattr(search, key)} must be >= 1")
    if not search.space:
        example = "train.learning_rate: {loguniform: [0.0001, 0.01]}"
        raise UserError(f"{PARAMS_FILE}: {where}.space is empty (e.g. {example})")
    for key, spec in search.space.items():
        check_sampler(key, spec, f"{where}.space.{key}")
    return search


def check_sampler(key: str, spec: Any, where: str) -> None:
    if not isinstance(key, str) or "." not in key:
        raise UserError(f"{PARAMS_FILE}: {where}: keys are dotted as for --set, e.g. train.learning_rate")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(
            f"{PARAMS_FILE}: {where} must be one sampler, e.g. {{choice: [16, 32]}} ({', '.join(SAMPLERS)})"
        )
    ((sampler, args),) = spec.items()
    if sampler not in SAMPLERS:
        raise UserError(
            f"{PARAMS_FILE}: {where}: unknown sampler '{sampler}'{suggest(sampler, SAMPLERS)}; "
            f"known: {', '.join(SAMPLERS)}"
        )
    if sampler in ("grid", "choice"):
        if not isinstance(args, list) or not args:
            raise UserError(f"{PARAMS_FILE}: {where}.{sampler} must be a non-empty list of values")
        return
    number = int if sampler == "randint" else float
    if not isinstance(args, list) or len(args) != 2:
        raise UserError(f"{PARAMS_FILE}: {where}.{sampler} must be [low, high]")
    low, high = (check_type(v, number, f"{where}.{sampler}[{i}]") for i, v in enumerate(args))
    if not low < high:
        raise UserError(f"{PARAMS_FILE}: {where}.{sampler} = {args}: low must be below high")
    if sampler == "loguniform" and low <= 0:
        raise UserError(f"{PARAMS_FILE}: {where}.loguniform = {args}: bounds must be > 0")


def apply_override(mapping: dict[str, Any], override: str, where: str) -> None:
    """Apply one `--set a.b.c=value` (value parsed as YAML) to a nested mapping."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise UserError(f"--set '{override}': expected key=value, e.g. --set train.epochs=5")
    try:
        value = yaml.load(text, Loader=YamlLoader) if text else None
    except yaml.YAMLError:
        raise UserError(
            f"--set '{override}': value is not valid YAML "
            "(e.g. --set train.epochs=5, --set 'model.filters=[16, 32]')"
        ) from None
    parts = key.split(".")
    node = mapping
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            dotted = ".".join(parts[: i + 1])
            raise UserError(
                f"--set '{override}': {where}.{dotted} is a value, not a section (set it: --set {dotted}=…)"
            )
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------- validation


def parse_section(
    schema: type, mapping: dict[str, Any] | None, where: str, drop_unknown: frozenset[str] = frozenset()
):
    """Build `schema` (a dataclass) from `mapping`, naming any unknown, missing or mistyped key.

    Keys in `drop_unknown` are ignored when the schema lacks them (shared defaults such as
    `train.epochs` that a non-Keras baseline has no use for).
    """
    names = {f.name for f in dataclasses.fields(schema)}
    return check_type(
        {k: v for k, v in (mapping or {}).items() if k in names or k not in drop_unknown}, schema, where
    )


def check_type(value: Any, hint: Any, where: str) -> Any:
    """`value` validated against `hint` by pydantic in strict mode, unknown keys forbidden, as JSON
    data (a list is a tuple, an int a float: what params.schema.json says); an error is one line."""
    import pydantic

    try:
        return checker(hint).model_validate_json(json.dumps({"value": value}, default=str)).value
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        unknown = [e for e in errors if e["type"] in UNKNOWN]
        raise UserError(f"{PARAMS_FILE}: {explain((unknown or errors)[0], hint, where)}") from None


UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")  # pydantic's error types for an unknown key


@functools.cache
def checker(hint: Any) -> type:
    """A pydantic model holding one `value: hint`: its config reaches nested dataclasses, and the
    same model gives params.schema.json (pipeline/tools/schema.py)."""
    import pydantic

    strict = pydantic.ConfigDict(strict=True, extra="forbid")
    return pydantic.create_model("Checked", __config__=strict, value=(hint, ...))


def explain(error: dict, hint: Any, where: str) -> str:
    """One pydantic error as the line a user reads: the key's dotted name, what it should be."""
    loc, kind = error["loc"][1:], error["type"]  # past the holder's `value`
    keyed = kind in UNKNOWN or (kind == "missing" and isinstance(loc[-1], str))  # about a key
    path, found = "", hint
    # down the fields and items to the one at fault (a key's or an item's container if that is missing);
    # a union member's tag ends the walk, unless it names the union's mapping (e.g. augment's Augment)
    for part in loc[:-1] if kind in (*UNKNOWN, "missing") else loc:
        section = section_of(found)
        if section is not None and part == section.__name__ and section is not found:
            found = section
            continue
        inner = member(found, part)
        if inner is None:
            break
        path, found = path + (f".{part}" if isinstance(part, str) else f"[{part}]"), inner
    if kind in UNKNOWN:
        known = [f.name for f in dataclasses.fields(section_of(found))] if section_of(found) else []
        return f"unknown key '{where}{path}.{loc[-1]}'{suggest(loc[-1], known)}"
    if keyed:
        return f"missing key '{where}{path}.{loc[-1]}'"
    value = error["input"]
    literals = [a for a in (found, *typing.get_args(found)) if typing.get_origin(a) is Literal]
    close = suggest(value, [w for a in literals for w in typing.get_args(a)])
    return f"{where}{path} = {value!r} is not {describe(found)}{close}"


def section_of(hint: Any) -> type | None:
    """The dataclass in `hint` (itself, or a member of `X | None`), if any."""
    return next((a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)), None)


def member(hint: Any, part: str | int) -> Any:
    """The type of field `part` of a section, or of item `part` of a list; None if `part` is neither."""
    section = section_of(hint)
    if isinstance(part, str) and section and part in {f.name for f in dataclasses.fields(section)}:
        return typing.get_type_hints(section)[part]
    args = typing.get_args(hint)
    if isinstance(part, int) and typing.get_origin(hint) in (list, tuple) and args:
        return args[0] if len(args) == 1 or args[-1] is Ellipsis else args[part]
    return None


def describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        return (
            f"a list of {len(args)} items"
            if fixed
            else "a list" + (f" of {describe(args[0])}" if args else "")
        )
    if hint is type(None):
        return "null"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'model': {'filters': [32]}} -> {'model.filters': [32]}: MLflow param names."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
