"""Placement on GPUs, as far as it can be checked without one: the bundles a worker reserves and
the options its engine gets. (The same code places CPU workers in the Ray tests.)"""

from __future__ import annotations

from cluster._pool import worker_options
from cluster._runtime import bundle_shapes
from judge.core._config import ClusterConfig


def test_one_gpu_worker_reserves_one_bundle_with_its_cpus():
    cc = ClusterConfig(enabled=True, workers=4, num_cpus=2, num_gpus=1)
    assert bundle_shapes(cc, 1) == [{"CPU": 2.0, "GPU": 1.0}]


def test_a_tensor_parallel_worker_reserves_a_gpu_bundle_per_rank():
    cc = ClusterConfig(enabled=True, workers=2, num_cpus=1, num_gpus=1)
    assert bundle_shapes(cc, 4) == [{"CPU": 1.0, "GPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}]


def test_cpu_workers_reserve_cpus_only():
    assert bundle_shapes(ClusterConfig(enabled=True, workers=2, num_cpus=1), 1) == [{"CPU": 1.0}]


def test_a_tensor_parallel_vllm_engine_starts_its_ranks_on_ray():
    opts = {"dtype": "bfloat16", "tensor_parallel_size": 2}
    assert worker_options("vllm", opts, 2) == {**opts, "distributed_executor_backend": "ray"}
    assert worker_options("vllm", {**opts, "distributed_executor_backend": "mp"}, 2)["distributed_executor_backend"] == "mp"
    assert worker_options("vllm", {"dtype": "float32"}, 1) == {"dtype": "float32"}
    assert worker_options("hf", {"dtype": "float32"}, 1) == {"dtype": "float32"}
    assert "distributed_executor_backend" not in opts  # the job's own options are left alone
