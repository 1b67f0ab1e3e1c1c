"""Ray glue for training: the same TRL trainer on Ray Train's ``TorchTrainer`` workers.

One worker per GPU in production (NCCL); on CPU machines, CPU workers that talk over gloo. Each
worker runs :func:`rlaif._trainer.run_training` with Ray Train's report callback added and the
trainer prepared for Ray (``prepare_trainer``); rank 0 saves the weights. No training logic lives here.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cluster._runtime import connect, import_ray
from judge.core._config import ClusterConfig
from judge.core._errors import ClusterError

__all__ = ["run_ray_training"]


def _train_loop(config: dict[str, Any]) -> None:
    """Body of every Ray Train worker (runs in the worker process)."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    from rlaif._trainer import TrainSpec, run_training

    def prepare(trainer: Any) -> Any:
        trainer.add_callback(RayTrainReportCallback())
        return prepare_trainer(trainer)

    spec = TrainSpec(**config["spec"])
    ctx = ray.train.get_context()
    spec.progress = spec.progress and ctx.get_world_rank() == 0
    report = run_training(spec, config["work_dir"] + "/trl", config["save_to"], prepare=prepare)
    # Ray reports only rank 0's metrics; each rank writes its own report where the driver reads it.
    ranks = Path(config["work_dir"]) / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    (ranks / f"rank-{ctx.get_world_rank()}.json").write_text(json.dumps(report.to_dict()), encoding="utf-8")
    ray.train.report({"steps": report.steps, "loss_last": report.losses[-1] if report.losses else float("nan")})


def run_ray_training(spec: Any, settings: dict[str, Any], work_dir: str, save_to: str) -> list[Any]:
    """Train ``spec`` on ``settings['workers']`` Ray Train workers; returns every rank's report.

    Connects as ``settings['address']`` says (None: a private local Ray, stopped at the end). The
    work directory must be visible to every worker at the same path (one machine, or a shared
    filesystem), as must the model directories.

    Raises:
        ClusterError: the cluster cannot hold the workers, or training failed on a worker.
    """
    from rlaif._trainer import RankReport

    conn = connect(ClusterConfig(enabled=True, address=settings.get("address")))
    try:
        ray = import_ray()
        need_cpu = settings["workers"] * settings["cpus_per_worker"]
        have = ray.cluster_resources()
        if need_cpu > have.get("CPU", 0.0) + 1e-9:
            raise ClusterError(
                f"train.ray: {settings['workers']} workers x {settings['cpus_per_worker']:g} CPU need {need_cpu:g} "
                f"CPUs, but the Ray cluster has {have.get('CPU', 0.0):g}; lower ray.workers or ray.cpus_per_worker"
            )
        if settings["use_gpu"] and settings["workers"] > have.get("GPU", 0.0) + 1e-9:
            raise ClusterError(
                f"train.ray: {settings['workers']} GPU workers, but the Ray cluster has {have.get('GPU', 0.0):g} GPUs"
            )
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        Path(work_dir).mkdir(parents=True, exist_ok=True)
        for old in (Path(work_dir) / "ranks").glob("rank-*.json"):
            old.unlink()  # a report from an earlier attempt must not pass for this one's
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"spec": asdict(spec), "work_dir": work_dir, "save_to": save_to},
            scaling_config=ScalingConfig(
                num_workers=settings["workers"],
                use_gpu=settings["use_gpu"],
                resources_per_worker={"CPU": settings["cpus_per_worker"]},
            ),
            run_config=RunConfig(storage_path=str(Path(work_dir).resolve() / "ray"), name="train"),
        )
        try:
            trainer.fit()
        except Exception as exc:  # Ray wraps a worker's exception in its own error types
            raise ClusterError(f"training failed on a Ray Train worker: {exc}") from exc
        files = sorted((Path(work_dir) / "ranks").glob("rank-*.json"))
        if len(files) != settings["workers"]:
            raise ClusterError(f"{len(files)} of {settings['workers']} Ray Train workers reported; training is incomplete")
        return [RankReport(**json.loads(f.read_text(encoding="utf-8"))) for f in files]
    finally:
        conn.close()
