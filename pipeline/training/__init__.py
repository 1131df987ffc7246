"""The training core: plan (params → a checked Plan), run (one experiment → one MLflow run),
keras_loop (fit, seeds, strategies, backups), tracking (store, runs, params, datasets),
artifacts (model, table and figure logging) and registry (versions, aliases, the promotion gate).

This package's __init__ imports nothing: `tracking` and `registry` stay usable without TensorFlow.
"""
