"""Workflows that drive the training core: one experiment with its promotion gate (train_and_gate),
many at once (fanout, over Ray with ray_session), hyperparameter sweeps (sweep), the transfer
learning curve (transfer_curve) and scheduled retraining on new batches (retrain)."""

# train-all's executors, the default first: fanout runs them, the CLI's --executor offers them and the
# generated makefile hands them to make's EXECUTOR check
EXECUTORS = ("processes", "sequential", "ray")
