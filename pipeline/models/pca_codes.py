"""PCA's logged model (MLflow models-from-code): images in, their principal-component codes out.

scikit-learn's PCA has no `predict`, so MLflow's scikit-learn flavour cannot serve it as a pyfunc.
MLflow runs this file instead: it loads the fitted pipeline (flatten + PCA) from the model's skops
file, with the one extra type it may trust written here (not read from the model), and answers
`transform`. It imports nothing from the pipeline: the model loads with scikit-learn and skops.
"""

from __future__ import annotations

import mlflow
import numpy as np

# what the fitted pipeline holds beyond scikit-learn's own types: the flatten step's function
TRUSTED_TYPES = ["numpy.reshape"]


def save(pipeline, path) -> None:
    import skops.io

    skops.io.dump(pipeline, path)


class Codes(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import skops.io

        self.pipeline = skops.io.load(context.artifacts["pipeline"], trusted=TRUSTED_TYPES)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        return self.pipeline.transform(np.asarray(model_input, dtype=np.float32))


mlflow.models.set_model(Codes())
