"""MLflow Model Registry: versions, the `champion` / `challenger` aliases, and the lock around them.
The promotion gate that moves `champion` is training/gate.py.

A champion that cannot be read (a locked store, an unreachable server) is an error, never "no
champion". Every process that may move `champion` holds one lock (`alias_lock`, the file
layout.retrain_lock()): `make retrain` for its whole cycle, `make train-<exp>` / `train-all` around
the gate.
"""

from __future__ import annotations

import contextlib
import io

from pipeline import atomic, layout
from pipeline.errors import PipelineError, first_line

CHAMPION, CHALLENGER = "champion", "challenger"


def alias_lock(holder: str, wait: bool):
    """The lock around moving `champion` (atomic.file_lock on layout.retrain_lock()). wait=False
    (a retrain cycle): exit at once when another process holds it; wait=True (a training's gate,
    `pipeline data`): wait for it."""
    return atomic.file_lock(layout.retrain_lock(), holder, wait)


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
