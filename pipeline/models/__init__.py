"""Model families. Each module defines:

  KIND       "keras" (trained by pipeline.train.fit) or "sklearn" (a baseline)
  OBJECTIVE  the module that prepares its data and evaluates it (e.g. "classification")
  Params     a dataclass: the shape of the experiment's `model:` section in params.yaml
  build(params, spec)  -> an uncompiled keras.Model, or an unfitted scikit-learn estimator

Add a family: write pipeline/models/<name>.py and list it here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from pipeline.config import PARAMS_FILE, suggest
from pipeline.errors import UserError

FAMILIES = {
    "mlp": "pipeline.models.mlp",
    "cnn": "pipeline.models.cnn",
    "svc": "pipeline.models.svc",
}


def source_file(family: str) -> Path:
    """The family's module file, without importing it (make uses it as a prerequisite)."""
    return Path(*FAMILIES[family].split(".")).with_suffix(".py")


def get(family: str, where: str = "") -> ModuleType:
    if family not in FAMILIES:
        raise UserError(
            f"{PARAMS_FILE}: {where}family '{family}' is unknown{suggest(family, FAMILIES)}; "
            f"known: {', '.join(FAMILIES)}"
        )
    return importlib.import_module(FAMILIES[family])
