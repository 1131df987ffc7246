"""Registered models as MLflow serves them: models-from-code files, one per kind of task.

Each file here is what `mlflow.pyfunc.load_model("models:/<name>@champion")` runs: a PythonModel
that wraps the trained Keras model (loaded in safe mode from the model's artifacts) with the task's
pre- and post-processing, so a client sends raw inputs (an encoded image, a dated history) and gets
answers in the task's terms (a class name, dated forecasts). They import nothing from the pipeline:
the logged model carries a copy of its file (and of pipeline/images.py), checked by sha256 against
the installed ones before the pipeline runs it (pipeline/training/loading.py), and loads in a plain
Python session with numpy, pandas, Pillow, Keras and MLflow.
"""
