"""A Keras 3 / TensorFlow deep-learning pipeline with MLflow experiment tracking.

Its Python API (docs/api.md) is `pipeline.train`, `pipeline.fit`, `pipeline.show`,
`pipeline.example`, `pipeline.runs`, `pipeline.load_model`, `pipeline.link`, `pipeline.complete`
and `pipeline.memory`, from pipeline/api.py: imported on first use, so `import pipeline` stays
cheap (no TensorFlow, no MLflow) and changes nothing in the process.
"""

__version__ = "0.1.0"
API = ("train", "fit", "show", "example", "runs", "load_model", "link", "complete", "memory")
__all__ = list(API)


def __getattr__(name: str):
    """`pipeline.train` and the other API names, imported from pipeline/api.py when first asked for;
    any other name is an AttributeError (so `from pipeline import config` imports the module)."""
    if name in API:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute '{name}'")
