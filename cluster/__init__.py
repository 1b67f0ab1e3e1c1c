"""Ray glue: judge worker actors and the pool that feeds them. No judging logic lives here.

>>> from judge.core._load import load_job_config
>>> from cluster import run_cluster_job
>>> summary = run_cluster_job(load_job_config("configs/cluster.yaml"))   # doctest: +SKIP

Importing ``cluster`` does not import Ray; connecting does.
"""

from cluster._job import run_cluster_job
from cluster._pool import JudgePool
from cluster._runtime import Connection, check_model_on_nodes, check_resources, connect
from cluster._train import run_ray_training
from cluster._worker import JudgeWorker

__all__ = [
    "Connection",
    "JudgePool",
    "JudgeWorker",
    "check_model_on_nodes",
    "check_resources",
    "connect",
    "run_cluster_job",
    "run_ray_training",
]
