"""A Keras 3 / TensorFlow deep-learning pipeline with MLflow experiment tracking."""

import os

# Before TensorFlow or MLflow is imported: quiet TF's C++ log lines (TF_CPP_MIN_LOG_LEVEL=0
# shows them again) and turn off MLflow's telemetry.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
