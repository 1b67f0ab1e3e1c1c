"""The shipped cluster configs: `ray up` config, KubeRay RayJob, and the local cluster job config."""

from __future__ import annotations

from pathlib import Path

import yaml

from judge.core._config import JobConfig
from judge.core._load import load_job_config

ROOT = Path(__file__).resolve().parents[2]


def test_ray_up_config_is_valid_for_ray_autoscaler():
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((ROOT / "cluster" / "cluster.yaml").read_text())
    validate_config(fillout_defaults(config))  # raises on any schema error
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}


def test_kuberay_rayjob_runs_a_valid_cluster_job():
    docs = list(yaml.safe_load_all((ROOT / "cluster" / "kuberay-rayjob.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "RayJob"}
    job = JobConfig.model_validate(yaml.safe_load(kinds["ConfigMap"]["data"]["job.yaml"]))
    assert job.cluster.enabled and job.cluster.address == "auto"
    rayjob = kinds["RayJob"]
    assert rayjob["apiVersion"] == "ray.io/v1"
    assert "--config /config/job.yaml" in rayjob["spec"]["entrypoint"]
    spec = rayjob["spec"]["rayClusterSpec"]
    gpus = sum(
        g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for g in spec["workerGroupSpecs"]
    )
    assert gpus == job.cluster.workers * job.cluster.num_gpus  # one judge worker per GPU
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"/models", "/data", "/config"} <= {m["mountPath"] for m in head["volumeMounts"]}


def test_local_cluster_config_loads():
    cfg = load_job_config(ROOT / "configs" / "cluster.yaml")
    assert cfg.cluster.enabled and cfg.cluster.address is None
    assert cfg.cluster.workers == 2 and cfg.cluster.num_cpus == 1 and cfg.judge.backend == "vllm"
