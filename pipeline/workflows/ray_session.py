"""Ray: one session for `train-all --executor ray` and `sweep`, local or on a cluster.

Locally, `ray.init(num_cpus=<this machine's CPUs>)` starts a throw-away Ray instance; with
RAY_ADDRESS set (e.g. `ray://head:10001` or `auto`), ray.init joins that cluster instead. Tasks
receive the project root and the resolved tracking URI as arguments (`worker_env`), so every
task logs to the store the driver uses, on this machine or another one that shares it.
"""

from __future__ import annotations

import logging
import os

from pipeline import config, startup
from pipeline.errors import PipelineError, first_line
from pipeline.training import tracking


def worker_env() -> dict[str, str]:
    """What a task needs to see the driver's project and tracking store."""
    env = {"PIPELINE_ROOT": str(config.project_root()), "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    if os.environ.get("PIPELINE_PARAMS"):
        env["PIPELINE_PARAMS"] = str(config.params_path().resolve())
    return env


def enter_worker(env: dict[str, str], cpus: int | None = None) -> None:
    """In a Ray worker: the driver's project and store; TensorFlow limited to `cpus` threads.

    `cpus=None` leaves TensorFlow's default (every core of the node), which is what a sequential
    run uses: the thread count changes the order of float reductions (convolutions), so only the
    same count gives bit-identical metrics.
    """
    os.environ.update(env)
    if cpus is None:
        return
    import tensorflow as tf

    try:  # only possible before TensorFlow's runtime starts (a reused worker already set it)
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def init(num_cpus: int | None = None) -> bool:
    """Start (or join, with RAY_ADDRESS) Ray unless it is running; True when this call started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage report
    import ray

    if ray.is_initialized():
        return False
    kwargs = {}
    if not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    env_vars = {
        **{name: os.environ.get(name, value) for name, value in startup.ENVIRONMENT.items()},
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    ray.init(
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": env_vars},
        **kwargs,
    )
    return True


def shutdown() -> None:
    import ray

    ray.shutdown()


def cause(exc: BaseException) -> BaseException:
    """The exception a task raised, unwrapped from Ray's RayTaskError."""
    return getattr(exc, "cause", None) or exc


def one_line(exc: BaseException) -> str:
    exc = cause(exc)
    return first_line(exc, typed=not isinstance(exc, PipelineError))
