"""``train``: one TRL training run, written atomically as a checkpoint with its provenance.

Steps, each with its inputs and outputs:

1. :func:`plan_training` (config -> :class:`TrainPlan`): resolve the model paths, read and check the
   rows, fingerprint the base model, the reference and the data, and derive the run's key. No model
   is loaded, so every config and data error surfaces here.
2. If ``output_dir`` already holds a finished run with the same key, nothing is done.
3. Train in this process or on Ray Train workers (:mod:`cluster._train`), saving the final weights into
   a temporary directory beside ``output_dir``.
4. :func:`_publish`: write ``provenance.json`` into it and rename it to ``output_dir``.

A reader of a checkpoint therefore never sees a half-written one, and each checkpoint says what it was
trained from: the next round passes it by path as both the policy and the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judge.core._errors import ConfigError
from rlaif._datasets import TrainingData, load_training_rows
from rlaif._train_config import TrainConfig
from rlaif._trainer import RankReport, TrainSpec

__all__ = ["PROVENANCE", "TrainPlan", "TrainResult", "plan_training", "train"]

PROVENANCE = "provenance.json"


@dataclass
class TrainPlan:
    """A checked run: resolved paths, the rows, and what identifies the run."""

    cfg: TrainConfig
    model_dir: str
    model_fingerprint: str
    ref_dir: str | None
    ref_fingerprint: str | None
    data: TrainingData
    run_key: str

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.output_dir)

    def spec(self, progress: bool) -> TrainSpec:
        lora = self.cfg.lora.model_dump() if self.cfg.lora is not None else None
        return TrainSpec(
            algorithm=self.cfg.algorithm,
            model_dir=self.model_dir,
            ref_dir=self.ref_dir,
            rows=self.data.rows,
            trl_kwargs=self.cfg.trl_kwargs(),
            lora=lora,
            progress=progress,
        )


@dataclass
class TrainResult:
    """What a run did (or that it had nothing to do)."""

    output_dir: str
    skipped: bool
    steps: int
    loss_first: float | None
    loss_last: float | None
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    ranks: list[RankReport] = field(default_factory=list)

    def table(self) -> str:
        if self.skipped:
            return f"{self.output_dir}: already trained with this config and data; nothing to do"
        loss = (
            f"{self.loss_first:.4f} -> {self.loss_last:.4f}" if self.loss_first is not None and self.loss_last is not None else "-"
        )
        rows = [
            ("checkpoint", self.output_dir),
            ("steps", str(self.steps)),
            ("loss (first -> last)", loss),
            ("workers", str(len(self.ranks))),
            ("wall time", f"{self.wall_s:.1f} s"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "skipped": self.skipped,
            "steps": self.steps,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "wall_s": self.wall_s,
            "metrics": self.metrics,
            "ranks": [r.to_dict() for r in self.ranks],
        }


def _resolve_model(path: str, what: str) -> str:
    if path == "bundled":
        from judge.backends._models import bundled_model_dir

        path = str(bundled_model_dir())
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"{what}: {path} is not a model directory (no config.json)")
    return str(Path(path).resolve())


def plan_training(cfg: TrainConfig) -> TrainPlan:
    """Check the run and fingerprint its inputs, without loading a model."""
    from judge.backends._base import fingerprint_model_dir

    model_dir = _resolve_model(cfg.model, "model")
    ref_dir = _resolve_model(cfg.ref_model, "ref_model") if cfg.ref_model else None
    data = load_training_rows(cfg.data, cfg.algorithm, cfg.split)
    model_fp = fingerprint_model_dir(model_dir)
    ref_fp = fingerprint_model_dir(ref_dir) if ref_dir else None
    identity = {
        "config": cfg.model_dump(mode="json", exclude={"output_dir"}),
        "model": model_fp,
        "ref_model": ref_fp,
        "data": data.fingerprint,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return TrainPlan(cfg, model_dir, model_fp, ref_dir, ref_fp, data, "sha256:" + key)


def _finished(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def train(cfg: TrainConfig, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Run one training job end to end (see the module docstring for the steps).

    Args:
        cfg: the run.
        progress: print one line per step on stderr.
        overwrite: replace a checkpoint in ``output_dir`` that was trained from something else.

    Raises:
        ConfigError: ``output_dir`` holds another run's checkpoint (and not ``overwrite``), or is not ours.
        DataError: the training rows cannot be read.
    """
    plan = plan_training(cfg)
    out = plan.output_dir
    done = _finished(out)
    if done is not None and done.get("run_key") == plan.run_key:
        if progress:
            print(f"train: {out} already holds this run (run key {plan.run_key[:19]}); nothing to do", file=sys.stderr)
        return TrainResult(str(out), True, int(done.get("steps", 0)), done.get("loss_first"), done.get("loss_last"), 0.0)
    if out.exists() and not overwrite:
        why = "a checkpoint trained from another config, model or data" if done else "files that are not a judgeloop checkpoint"
        raise ConfigError(f"output_dir {out} holds {why}; choose another output_dir or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    # The work directory is named by the run key, so an interrupted run resumes from its own
    # intermediate checkpoints (trl.save_steps) and never from another run's.
    work = out.parent / f".{out.name}.work-{plan.run_key[7:19]}"
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    spec = plan.spec(progress)
    if cfg.ray is not None:
        from cluster._train import run_ray_training

        ranks = run_ray_training(spec, cfg.ray.model_dump(), str(work), str(tmp))
        if progress:  # the workers' own step lines stay in Ray's worker logs
            for k in sorted(ranks, key=lambda r: r.rank):
                loss = f"{k.losses[0]:.4f} -> {k.losses[-1]:.4f}" if k.losses else "-"
                print(f"train: rank {k.rank}/{k.world_size}: {k.steps} steps, loss {loss}", file=sys.stderr)
    else:
        from rlaif._trainer import run_training

        ranks = [run_training(spec, str(work / "trl"), str(tmp))]
    wall = time.monotonic() - t0
    zero = min(ranks, key=lambda r: r.rank)
    result = TrainResult(
        output_dir=str(out),
        skipped=False,
        steps=zero.steps,
        loss_first=zero.losses[0] if zero.losses else None,
        loss_last=zero.losses[-1] if zero.losses else None,
        wall_s=wall,
        metrics=zero.metrics,
        ranks=sorted(ranks, key=lambda r: r.rank),
    )
    _publish(plan, result, tmp, out, started)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _versions(ray: bool) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["trl", "transformers", "torch", "datasets", "peft", "accelerate"] + (["ray"] if ray else [])
    found = {}
    for n in names:
        try:
            found[n] = version(n)
        except PackageNotFoundError:
            pass
    return found


def _publish(plan: TrainPlan, result: TrainResult, tmp: Path, out: Path, started: datetime) -> None:
    cfg = plan.cfg
    record = {
        "status": "finished",
        "run_key": plan.run_key,
        "algorithm": cfg.algorithm,
        "base_model": {"path": plan.model_dir, "fingerprint": plan.model_fingerprint},
        "ref_model": {"path": plan.ref_dir, "fingerprint": plan.ref_fingerprint} if plan.ref_dir else None,
        "dataset": {
            "source": plan.data.source,
            "fingerprint": plan.data.fingerprint,
            "rows": len(plan.data.rows),
            "cards": plan.data.cards,
        },
        "config": cfg.model_dump(mode="json"),
        "trl_config": cfg.trl_kwargs(),
        "versions": _versions(cfg.ray is not None),
        "seed": cfg.seed,
        "steps": result.steps,
        "loss_first": result.loss_first,
        "loss_last": result.loss_last,
        "metrics": result.metrics,
        "workers": len(result.ranks),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "wall_s": round(result.wall_s, 3),
    }
    (tmp / PROVENANCE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():  # --overwrite: move the old one aside first, so a crash leaves one of them whole
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
