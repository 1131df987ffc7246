"""Loading a logged or registered model safely: what `predict`, the promotion gate and a server use.

A model URI is untrusted input (a registry alias can point at anything someone logged), and
loading most MLflow models runs code stored in them: a pickled `python_model`, a pickle-format
scikit-learn model, a skops file whose trusted-type list comes from the model itself. So the
pipeline loads only the forms it logs itself (pipeline/training/artifacts.py):

  keras    the Keras flavour: a `.keras` file, loaded in Keras' safe mode
  sklearn  the scikit-learn flavour in skops format, with the trusted types listed in this package
  code     MLflow models-from-code whose code file (and every Python file the model holds) has the
           sha256 of a released version of the project module the metadata names (released_code.sha256,
           or the installed module); checked before anything runs, so a model logged by an earlier
           release keeps loading and runs its own copy, while code the project never shipped is refused
  served   a registered Keras model wrapped as code: its predictions on arrays (the gate, predict)
           come from the `.keras` file in safe mode, without running the wrapper

Anything else (a cloudpickle `python_model`, a pickle-format model, an unknown flavour) is refused
with one line naming the flavour, unless the user opts in with both `--allow-unsafe-model` and
PIPELINE_ALLOW_UNSAFE_MODELS=1: then MLflow loads it as it would, running whatever it contains.
Models are copied to a private folder first and read there; a symlink anywhere in one is refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import inference, startup
from pipeline.data import streams
from pipeline.errors import UserError, first_line
from pipeline.training import tracking

UNSAFE_ENV = "PIPELINE_ALLOW_UNSAFE_MODELS"
UNSAFE_FLAG = "--allow-unsafe-model"
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"  # MLflow's loader of models-from-code
ARRAY_METHODS = ("predict", "predict_proba")  # what a scikit-learn model's pyfunc may call
RELEASED = Path(__file__).with_name("released_code.sha256")  # every shipped version of the model code
ALIAS_URI = re.compile(r"models:/([^/@]+)@([^/@]+)")  # models:/<name>@<alias>
VERSION_URI = re.compile(r"models:/([^/@]+)/(\d+)")  # models:/<name>/<version>


class Predictor:
    """Arrays in, arrays out: the `predict(x, verbose=0)` the objectives call on a model. `whole`:
    the model takes whole arrays (images read on use are loaded first, refused beyond a cap)."""

    def __init__(self, predict, whole: bool = False):
        self._predict = predict
        self.whole = whole

    def predict(self, x, verbose=0) -> np.ndarray:
        return np.asarray(self._predict(streams.floats(x) if self.whole else x))


@dataclasses.dataclass(eq=False)
class Loaded:
    """A model copied and checked; what it predicts is loaded on first use."""

    uri: str
    form: str  # keras | sklearn | code | served | unsafe
    folder: Path  # the private local copy
    mlmodel: Any  # mlflow.models.Model
    keep: Any = dataclasses.field(repr=False, default=None)  # the copy's TemporaryDirectory
    cache: dict = dataclasses.field(repr=False, default_factory=dict)

    @property
    def metadata(self) -> dict:
        return self.mlmodel.metadata or {}

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    @property
    def run_id(self) -> str:
        """The run that logged the model ('' when MLmodel does not say)."""
        return self.mlmodel.run_id or ""

    @property
    def name(self) -> str:
        """The registered model's name ('' for a model that is not registered)."""
        return self.metadata.get("model_name") or ""

    @property
    def version(self) -> str:
        """The registered version of a `models:/<name>/<version>` URI (see `pinned`), else ''."""
        match = VERSION_URI.fullmatch(self.uri)
        return match[2] if match else ""

    @property
    def arrays(self) -> Predictor:
        """Arrays in, arrays out (class probabilities, forecasts): what the gate and predict score."""
        if "arrays" not in self.cache:
            if self.form in ("keras", "served"):
                model = self.keras()
                self.cache["arrays"] = Predictor(lambda x: inference.predict(model, x))
            elif self.form == "sklearn":
                self.cache["arrays"] = sklearn_predictor(self)
            else:
                self.cache["arrays"] = Predictor(self.pyfunc().predict, whole=True)
        return self.cache["arrays"]

    def predict(self, x, verbose=0) -> np.ndarray:
        return self.arrays.predict(x)

    def pyfunc(self):
        """The model as MLflow's pyfunc answers (a served model: raw records in, answers out)."""
        if "pyfunc" not in self.cache:
            if self.form in ("code", "served"):
                check_code(self)
            if self.form in ("code", "served", "unsafe"):
                import mlflow

                startup.quiet_tensorflow()  # what the model's code imports, without its start-up lines

                self.cache["pyfunc"] = mlflow.pyfunc.load_model(str(self.folder))
            else:
                self.cache["pyfunc"] = self.arrays
        return self.cache["pyfunc"]

    def keras(self):
        """The Keras model in safe mode (a Lambda layer or an unknown class is refused by Keras)."""
        if "keras" not in self.cache:
            families()  # their custom layers (HubLayer, MinPooling2D) register with Keras on import
            import keras

            path = keras_file(self)
            try:
                self.cache["keras"] = keras.saving.load_model(path, compile=False, safe_mode=True)
            except Exception as exc:  # Keras refuses unsafe content with ValueError/TypeError
                reason = first_line(exc)
                raise UserError(
                    f"model '{self.uri}': {path.name} is refused by Keras' safe mode: {reason}"
                ) from None
        return self.cache["keras"]

    def native(self):
        """The model object itself, loaded safely, for tools that need more than predict (retrieval's
        encoder, PCA's transform): the Keras model, or the scikit-learn estimator (skops)."""
        if self.form in ("keras", "served"):
            return self.keras()
        if self.form == "sklearn":
            return skops_model(self, self.mlmodel.flavors["sklearn"].get("pickled_model", "model.skops"))
        files = [a["path"] for a in (self.mlmodel.flavors["python_function"].get("artifacts") or {}).values()]
        skops_files = [f for f in files if f.endswith(".skops")] if self.form == "code" else []
        if len(skops_files) != 1:
            raise UserError(f"model '{self.uri}' ({self.form}) holds no Keras or scikit-learn model to load")
        return skops_model(self, skops_files[0])

    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input (without the batch axis)."""
        if self.form in ("keras", "served"):
            return tuple(self.keras().input_shape[1:])
        schema = self.mlmodel.get_input_schema()
        if schema is None or not schema.is_tensor_spec():
            raise UserError(
                f"model '{self.uri}' has no tensor input signature, so its input is unknown; give a model "
                "the pipeline logged (they all have one)"
            )
        return tuple(schema.inputs[0].shape[1:])


def load(uri: str, allow_unsafe: bool = False) -> Loaded:
    """Copy the model at `uri` and check its form (nothing of it runs yet); refuse what the
    pipeline did not log, unless `allow_unsafe` (the flag) and PIPELINE_ALLOW_UNSAFE_MODELS=1."""
    from mlflow.models import Model

    keep, folder = download(uri)
    try:
        mlmodel = Model.load(str(folder / "MLmodel"))
    except Exception as exc:  # a missing or malformed MLmodel: not an MLflow model
        raise UserError(f"model '{uri}' is not an MLflow model ({first_line(exc)})") from None
    form = form_of(mlmodel)
    if form is None:
        form = unsafe_opt_in(uri, describe(mlmodel), allow_unsafe)
    return Loaded(uri, form, folder, mlmodel, keep)


def pinned(uri: str) -> str:
    """`models:/<name>@<alias>` as the version the alias names now (`models:/<name>/<version>`), so
    what is loaded is what is recorded even when the alias moves meanwhile; other URIs unchanged."""
    import mlflow
    from mlflow.exceptions import MlflowException

    match = ALIAS_URI.fullmatch(uri)
    if not match:
        return uri
    tracking.configure()
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(match[1], match[2]).version
    except MlflowException as exc:
        where = tracking.shown_uri()
        raise UserError(f"model '{uri}' could not be loaded from {where}: {first_line(exc)}") from None
    return f"models:/{match[1]}/{version}"


def form_of(mlmodel) -> str | None:
    """Which of the pipeline's own forms the MLmodel says the model is, or None."""
    flavors = mlmodel.flavors
    if "keras" in flavors:
        return None if flavors["keras"].get("save_exported_model") else "keras"
    if "sklearn" in flavors:
        return "sklearn" if flavors["sklearn"].get("serialization_format") == "skops" else None
    conf = flavors.get("python_function") or {}
    if conf.get("loader_module") != CODE_LOADER or not conf.get("model_code_path"):
        return None
    if conf.get("code") or conf.get("python_model"):  # code_paths on sys.path, a pickle beside it
        return None
    return "served" if "keras_model" in (conf.get("artifacts") or {}) else "code"


def describe(mlmodel) -> str:
    """The flavour of a model the pipeline does not load, as the refusal names it."""
    flavors = mlmodel.flavors
    conf = flavors.get("python_function") or {}
    if "keras" in flavors:
        return "keras (an exported SavedModel)"
    if "sklearn" in flavors:
        return f"sklearn ({flavors['sklearn'].get('serialization_format', 'pickle')} format)"
    if conf.get("python_model"):
        return "python_function with a pickled python_model (cloudpickle)"
    if conf.get("loader_module") == CODE_LOADER:
        return "python_function models-from-code with code_paths"
    others = [name for name in flavors if name != "python_function"]
    return ", ".join(others) or f"python_function (loader {conf.get('loader_module', 'unknown')})"


def unsafe_opt_in(uri: str, flavor: str, allow_unsafe: bool) -> str:
    if allow_unsafe and os.environ.get(UNSAFE_ENV) == "1":
        return "unsafe"
    given = {UNSAFE_FLAG: allow_unsafe, f"{UNSAFE_ENV}=1": os.environ.get(UNSAFE_ENV) == "1"}
    missing = " and ".join(what for what, yes in given.items() if not yes)
    raise UserError(
        f"model '{uri}' is refused: flavor {flavor} is not one the pipeline logs, and loading it "
        f"would run code stored in the model; to load it anyway (only a model you trust) give {missing}"
    )


def download(uri: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    """A private copy of the model; a symlink anywhere in it (or in a local source) is refused."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.configure()
    local = Path(uri.removeprefix("file://"))
    if "://" not in uri.removeprefix("file://") and ":" not in uri.split("/")[0] and local.exists():
        refuse_links(uri, local)
    keep = tempfile.TemporaryDirectory(prefix="pipeline-model-")
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=keep.name))
    except (MlflowException, OSError) as exc:
        keep.cleanup()
        where = tracking.shown_uri()
        raise UserError(f"model '{uri}' could not be loaded from {where}: {first_line(exc)}") from None
    refuse_links(uri, folder)
    if not (folder / "MLmodel").is_file():
        keep.cleanup()
        raise UserError(
            f"model '{uri}' is not an MLflow model (no MLmodel file); give a registered model, an "
            "experiment, a run id, a models:/… or runs:/<id>/model URI, or a folder holding an MLmodel file"
        )
    return keep, folder


def refuse_links(uri: str, folder: Path) -> None:
    if folder.is_symlink():
        raise UserError(f"model '{uri}' is a symlink; models are not followed through links")
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if (Path(root) / name).is_symlink():
                link = Path(root, name).relative_to(folder)
                raise UserError(
                    f"model '{uri}' holds a symlink ({link}); models are not followed through links"
                )


def inside(loaded: Loaded, relative: str) -> Path:
    """A file the MLmodel names, which must lie inside the model's folder."""
    path = (loaded.folder / relative).resolve()
    if not path.is_relative_to(loaded.folder.resolve()) or not path.is_file():
        raise UserError(f"model '{loaded.uri}': '{relative}' is not a file inside the model; refused")
    return path


def keras_file(loaded: Loaded) -> Path:
    if loaded.form == "served":
        conf = loaded.mlmodel.flavors["python_function"]
        return inside(loaded, conf["artifacts"]["keras_model"]["path"])
    data = loaded.mlmodel.flavors["keras"].get("data", "data")
    return inside(loaded, f"{data}/model.keras")


def skops_model(loaded: Loaded, relative: str):
    """A skops file of the model, with the pipeline's own trusted types (not the list the model carries)."""
    import skops.io

    try:
        return skops.io.load(inside(loaded, relative), trusted=trusted_types())
    except UserError:
        raise
    except Exception as exc:  # an untrusted type, a corrupt file
        raise UserError(f"model '{loaded.uri}': its skops file was refused ({first_line(exc)})") from None


def sklearn_predictor(loaded: Loaded) -> Predictor:
    model = skops_model(loaded, loaded.mlmodel.flavors["sklearn"].get("pickled_model", "model.skops"))
    method = (loaded.mlmodel.flavors.get("python_function") or {}).get("predict_fn", "predict")
    if method not in ARRAY_METHODS or not callable(getattr(model, method, None)):
        raise UserError(
            f"model '{loaded.uri}': predict function '{method}' is not one the pipeline calls "
            f"({' or '.join(ARRAY_METHODS)}); retrain it with the pipeline"
        )
    return Predictor(getattr(model, method), whole=True)


def families() -> list:
    """Every model family (importing them registers their custom Keras layers). They import
    TensorFlow: not before a model is accepted, so a refusal answers without that import."""
    from pipeline import models

    startup.quiet_tensorflow()

    return [models.get(name) for name in models.FAMILIES]


def trusted_types() -> list[str]:
    """What skops may load: numpy/scikit-learn types the families' models use, and the PCA code
    model's own list (pca_codes.TRUSTED_TYPES)."""
    from pipeline.models import pca_codes
    from pipeline.training import artifacts

    extra = {t for f in families() for t in f.logged.trusted_types}
    return sorted({*artifacts.SKOPS_TRUSTED, *pca_codes.TRUSTED_TYPES, *extra})


def trusted_code() -> dict[str, Path]:
    """{module name: installed file} of every module the pipeline logs as a model's code."""
    from pipeline import objectives

    found = [family.logged.code for family in families()]
    for name in objectives.OBJECTIVES:
        served = objectives.get(name).served
        if served is not None:
            found += [served.code, *served.helpers.values()]
    return {module.__name__: Path(module.__file__) for module in found if module is not None}


def released_code() -> dict[str, frozenset[str]]:
    """{module name: sha256 of each of its released versions}, from RELEASED (sha256sum format)."""
    found: dict[str, set[str]] = {}
    for line in RELEASED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            module = path.lstrip("*").removesuffix(".py").replace("/", ".")
            found.setdefault(module, set()).add(digest)
    return {module: frozenset(digests) for module, digests in found.items()}


def check_code(loaded: Loaded) -> None:
    """Every Python file in the model is a recorded project module's file, byte for byte (sha256),
    and a version of that module the project released (RELEASED) or the installed one: refused
    otherwise, before any of it runs. The model then runs its own copy (an earlier release's)."""
    from pipeline.training import artifacts

    conf = loaded.mlmodel.flavors["python_function"]
    records = (loaded.metadata.get(artifacts.PIPELINE_KEY) or {}).get("code") or {}
    code_file = Path(conf["model_code_path"]).name
    python = {
        p.relative_to(loaded.folder).as_posix()
        for p in loaded.folder.rglob("*")
        if p.suffix in (".py", ".pyc", ".pth", ".so") or p.name == "__pycache__"
    }
    unlisted = sorted((python | {code_file}) - set(records))
    if unlisted:
        raise UserError(
            f"model '{loaded.uri}': code file {unlisted[0]} has no sha256 in its metadata, so it is not run; "
            "retrain the model with the pipeline"
        )
    installed, released = trusted_code(), released_code()
    for relative, record in records.items():
        module = record.get("module", "")
        if module not in installed and module not in released:
            raise UserError(
                f"model '{loaded.uri}': its code is '{module}', not a module the pipeline logs, so it is not "
                "run; retrain the model with the pipeline"
            )
        actual = artifacts.sha256(inside(loaded, relative))
        shipped = released.get(module, frozenset())
        if module in installed:
            shipped |= {artifacts.sha256(installed[module])}
        if not (actual == record.get("sha256") and actual in shipped):
            raise UserError(
                f"model '{loaded.uri}': code file {relative} (sha256 {actual[:12]}) is no released version "
                f"of {module}: the project never shipped it; retrain the model, or load it anyway with "
                f"{UNSAFE_FLAG} and {UNSAFE_ENV}=1"
            )
