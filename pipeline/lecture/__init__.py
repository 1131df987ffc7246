"""The lecture's worked examples (`python -m pipeline lecture`, docs/lecture.md): each computed by
the product's own builders and Keras layers (examples), printed and logged as MLflow runs (run)."""
