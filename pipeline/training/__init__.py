"""The training core: plan (params → a checked Plan), run (one experiment → one MLflow run),
keras_loop (fit, seeds, strategies, backups), tracking (store, runs, params, datasets),
artifacts (model and table logging), rendering (figures, drawn by a helper process) and registry
(versions, aliases, the promotion gate).

This package's __init__ imports nothing: `tracking` and `registry` stay usable without TensorFlow.
"""
