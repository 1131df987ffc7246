"""Workflows that drive the training core: one experiment with its promotion gate (experiment),
many at once (fanout, over Ray with scaleout), hyperparameter sweeps (sweep), the transfer
learning curve (transfer_curve) and scheduled retraining on new batches (retrain)."""
